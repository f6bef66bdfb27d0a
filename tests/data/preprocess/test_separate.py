"""Vocal separation through the real path: a tiny random HTDemucs in a local demucs repository."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import soundfile as sf
import torch

from app.data.preprocess import separate as sep
from app.data.preprocess.separate import (
    MissingModelError,
    SeparateOptions,
    SeparationError,
    missing_demucs_files,
    separate_files,
)
from tests.data.preprocess.tiny_models import tiny_htdemucs

RATE = 44100


@pytest.fixture(scope="module")
def pretrained(tiny_demucs_root):
    return tiny_demucs_root


@pytest.fixture
def song(tmp_path):
    t = np.arange(int(2.5 * RATE)) / RATE
    left = 0.3 * np.sin(2 * np.pi * 220 * t)
    right = 0.2 * np.sin(2 * np.pi * 330 * t)
    folder = tmp_path / "songs"
    folder.mkdir()
    sf.write(folder / "song.wav", np.stack([left, right], 1).astype(np.float32), RATE)
    sf.write(folder / "mono.flac", (0.3 * np.sin(2 * np.pi * 440 * t[:22050] * 2)).astype(np.float32), 22050)
    (folder / "notes.txt").write_text("not audio")
    return folder


def test_separates_through_the_local_repository(pretrained, song, tmp_path):
    progress: list[float] = []
    result = separate_files(
        song,
        tmp_path / "out",
        pretrained,
        SeparateOptions(shifts=0, overlap=0.25),
        progress=lambda f, _msg: progress.append(f),
    )
    assert [f.source.name for f in result.files] == ["mono.flac", "song.wav"]
    assert result.failed == () and result.model == "htdemucs" and result.device == "cpu"
    assert progress[-1] == 1.0 and progress == sorted(progress)

    by_name = {f.source.name: f for f in result.files}
    vocals, rate = sf.read(by_name["song.wav"].vocals)
    accompaniment, _ = sf.read(by_name["song.wav"].accompaniment)
    assert rate == RATE and vocals.shape == (int(2.5 * RATE), 2) and accompaniment.shape == vocals.shape
    assert by_name["song.wav"].vocals == tmp_path / "out" / "vocals" / "song.wav"

    # Same numbers as demucs applied directly to the model we saved (normalised as demucs' CLI does).
    from demucs.apply import apply_model

    mix = torch.from_numpy(sf.read(song / "song.wav", dtype="float32")[0].T.copy())
    ref = mix.mean(0)
    expected = apply_model(tiny_htdemucs(), ((mix - ref.mean()) / ref.std())[None], shifts=0, overlap=0.25)[0]
    expected = expected * ref.std() + ref.mean()
    np.testing.assert_allclose(vocals, np.clip(expected[3].T.numpy(), -1, 1), atol=2e-4)
    np.testing.assert_allclose(accompaniment, np.clip(expected[:3].sum(0).T.numpy(), -1, 1), atol=4e-4)

    # The mono 22.05 kHz input comes out at the model's rate, duplicated to stereo before separation.
    mono_vocals, mono_rate = sf.read(by_name["mono.flac"].vocals)
    assert mono_rate == RATE and mono_vocals.shape == (RATE, 2)


def test_missing_model_names_files_and_the_download_command(tmp_path):
    assert [p.name for p in missing_demucs_files("htdemucs", tmp_path)] == [
        "htdemucs.yaml",
        "955717e8-8726e21a.th",
    ]
    with pytest.raises(MissingModelError) as err:
        sep.load_demucs_separator(SeparateOptions(), tmp_path)
    message = str(err.value)
    assert str(tmp_path / "demucs" / "htdemucs.yaml") in message
    assert "955717e8-8726e21a.th" in message
    assert "python tools/download_models.py demucs-htdemucs" in message
    with pytest.raises(MissingModelError, match="not a published demucs model"):
        sep.load_demucs_separator(SeparateOptions(model="mystery"), tmp_path)


def test_bag_with_a_missing_weight(tmp_path):
    (tmp_path / "demucs").mkdir()
    (tmp_path / "demucs" / "htdemucs_ft.yaml").write_text("models: ['f7e0c4bc', 'd12395a8']\n")
    missing = missing_demucs_files("htdemucs_ft", tmp_path)
    assert [p.name for p in missing] == ["f7e0c4bc-ba3fe64a.th", "d12395a8-e57c48e6.th"]


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_refuses_a_weight_file_that_would_run_code(tmp_path, capsys):
    repo = tmp_path / "demucs"
    repo.mkdir()
    with open(repo / "evilsig.th", "wb") as fh:
        torch.save({"klass": _Evil(), "args": (), "kwargs": {}, "state": {}}, fh, pickle_module=pickle)
    (repo / "htdemucs.yaml").write_text("models: ['evilsig']\n")
    sep._load_demucs.cache_clear()
    with pytest.raises(SeparationError, match="not a loadable demucs weight file"):
        sep.load_demucs_separator(SeparateOptions(), tmp_path)
    assert "pwned" not in capsys.readouterr().out


def test_options_are_checked(pretrained):
    with pytest.raises(SeparationError, match="overlap"):
        SeparateOptions(overlap=1.0)
    with pytest.raises(SeparationError, match="segment"):
        SeparateOptions(segment=0)
    with pytest.raises(SeparationError, match="allows"):
        sep.load_demucs_separator(SeparateOptions(segment=5.0), pretrained)
    with pytest.raises(SeparationError, match="unknown separation engine"):
        separate_files(pretrained, pretrained, pretrained, SeparateOptions(engine="uvr"))


def test_unreadable_inputs_are_reported_not_fatal(pretrained, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "broken.wav").write_bytes(b"RIFF not really")
    result = separate_files(folder, tmp_path / "out", pretrained, SeparateOptions(shifts=0))
    assert result.files == () and [p.name for p, _ in result.failed] == ["broken.wav"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(SeparationError, match="no audio files"):
        separate_files(tmp_path / "empty", tmp_path / "o2", pretrained)
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        separate_files(tmp_path / "nowhere", tmp_path / "o2", pretrained)


def test_cli(pretrained, song, tmp_path, capsys):
    code = sep.main(
        [
            str(song / "song.wav"),
            str(tmp_path / "cli"),
            "--pretrained",
            str(pretrained),
            "--shifts",
            "0",
            "--format",
            "flac",
        ]
    )
    assert code == 0
    assert sf.info(tmp_path / "cli" / "vocals" / "song.flac").samplerate == 44100
    assert "1 file(s) separated" in capsys.readouterr().out
    assert sep.main([str(song), str(tmp_path / "cli2"), "--pretrained", str(tmp_path / "none")]) == 2
    assert "download_models.py demucs-htdemucs" in capsys.readouterr().err
