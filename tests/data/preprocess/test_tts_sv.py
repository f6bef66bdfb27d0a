"""Formatting step 2-get-sv (v2Pro/v2ProPlus): upstream's 7-sv_cn/ files, skip-if-done, resume, errors."""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import torch
from scipy.io import wavfile

from app.data.experiment import ExperimentFiles
from app.data.preprocess.tts_dataset import BaseModelMissing, FormatError
from app.data.preprocess.tts_features import run_format
from app.models.encoders.sv import SpeakerEncoder
from app.runconfig import FORMAT_STEPS, SV_STEP, FormatRunConfig, format_steps
from tests.tts_data import TINY_SV_DIM, write_dataset_list

CLIPS = 4  # the first three (Piper) clips and the last (Mandarin espeak-ng) one


@pytest.fixture
def pro(tmp_path, tts_experiment, tts_dataset, tts_pretrained) -> FormatRunConfig:
    """A v2ProPlus formatting config on a copy of the formatted experiment, for four of its clips."""
    audio_dir, clips, _ = tts_dataset
    exp_dir = tmp_path / "voice"
    shutil.copytree(tts_experiment, exp_dir)  # copy2: 1b's ledger still sees its inputs unchanged
    list_path = write_dataset_list(tmp_path / "voice.list", [*clips[:3], clips[-1]])
    return FormatRunConfig(
        list_path=list_path, audio_dir=audio_dir, exp_dir=exp_dir, bert_dir=tts_pretrained.bert,
        hubert_dir=tts_pretrained.hubert, pretrained_s2g=tts_pretrained.s2g_pro["v2ProPlus"],
        version="v2ProPlus", steps=("1b",), workers=1, sv_path=tts_pretrained.sv,
    )  # fmt: skip


def names(config: FormatRunConfig) -> list[str]:
    return [line.split("|")[0] for line in config.list_path.read_text(encoding="utf-8").splitlines()]


def test_1b_of_a_pro_version_writes_upstreams_speaker_embeddings(pro, tts_pretrained) -> None:
    seen: set[str] = set()
    report = run_format(pro, progress=lambda step, done, total, name: seen.add(step))
    assert [(s.step, s.processed, s.skipped) for s in report.steps] == [("1b", 0, CLIPS), (SV_STEP, CLIPS, 0)]
    assert seen == {"1b", SV_STEP} and not report.problems
    files = ExperimentFiles(pro.exp_dir)
    # upstream 2-get-sv.py: "%s/%s.pt" % (sv_cn_dir, wav_name), one per clip of the list
    assert sorted(p.name for p in files.sv_dir.iterdir()) == sorted(f"{n}.pt" for n in names(pro))
    encoder = SpeakerEncoder(tts_pretrained.sv)
    for name in names(pro)[::3]:
        stored = torch.load(files.sv(name), weights_only=True)
        assert stored.dtype == torch.float32 and tuple(stored.shape) == (1, TINY_SV_DIM)
        rate, pcm = wavfile.read(files.wav32k(name))  # what torchaudio.load returns: int16 / 32768
        assert rate == 32000 and pcm.dtype == np.int16
        expected = encoder.embed_32k(torch.from_numpy(pcm.astype(np.float32) / 32768.0)[None])
        torch.testing.assert_close(stored, expected, rtol=1e-5, atol=1e-6)
        assert stored.abs().sum() > 0


def test_done_clips_are_skipped_changed_ones_redone_and_a_stop_resumes(pro) -> None:
    config = replace(pro, steps=(SV_STEP,))
    done: list[int] = []
    report = run_format(config, progress=lambda s, d, t, n: done.append(d), should_stop=lambda: len(done) > 2)
    assert report.stopped and (report.steps[0].processed, report.steps[0].skipped) == (2, 0)
    files = ExperimentFiles(pro.exp_dir)
    assert len(list(files.sv_dir.glob("*.pt"))) == 2 and not list(files.sv_dir.glob(".*tmp"))
    report = run_format(config)
    assert (report.steps[0].processed, report.steps[0].skipped) == (CLIPS - 2, 2)
    report = run_format(config)
    assert (report.steps[0].processed, report.steps[0].skipped) == (0, CLIPS)

    # 1b rewrote one clip (here: a quieter copy): its embedding is recomputed, the others kept.
    changed = names(pro)[1]
    before = torch.load(files.sv(changed), weights_only=True)
    pcm, rate = sf.read(str(files.wav32k(changed)), dtype="int16")
    sf.write(str(files.wav32k(changed)), (pcm // 2).astype(np.int16), rate, subtype="PCM_16")
    report = run_format(config)
    assert (report.steps[0].processed, report.steps[0].skipped) == (1, CLIPS - 1)
    assert not torch.equal(torch.load(files.sv(changed), weights_only=True), before)

    # A clip without 5-wav32k/ audio is reported (with its line) and the rest kept.
    missing = names(pro)[0]
    files.wav32k(missing).unlink()
    report = run_format(config)
    (problem,) = report.problems
    assert problem.step == SV_STEP and problem.line_no == 1 and "run 1b" in problem.reason


def test_a_missing_speaker_model_names_the_download(pro, tmp_path) -> None:
    nowhere = tmp_path / "pretrained_models" / "sv" / "pretrained_eres2netv2w24s4ep4.ckpt"
    with pytest.raises(BaseModelMissing, match=r"download_models\.py sv-eres2netv2") as raised:
        run_format(replace(pro, sv_path=nowhere))
    assert str(nowhere) in str(raised.value)
    with pytest.raises(FormatError, match="sv_path"):
        run_format(replace(pro, sv_path=None))


def test_only_pro_versions_compute_speaker_embeddings(pro, tts_pretrained) -> None:
    assert format_steps("v2Pro", FORMAT_STEPS) == ("1a", "1b", SV_STEP, "1c")
    assert format_steps("v2ProPlus", ("1c", "1b")) == ("1b", SV_STEP, "1c")
    assert format_steps("v2", FORMAT_STEPS) == format_steps("v1", FORMAT_STEPS) == ("1a", "1b", "1c")
    v2 = replace(pro, version="v2", sv_path=None, steps=FORMAT_STEPS, pretrained_s2g=tts_pretrained.s2g)
    report = run_format(v2)
    assert [s.step for s in report.steps] == ["1a", "1b", "1c"]
    assert not ExperimentFiles(pro.exp_dir).sv_dir.exists()
    with pytest.raises(FormatError, match="v2Pro and v2ProPlus only"):
        run_format(replace(pro, version="v2", steps=(SV_STEP,)))


def test_cli_config_of_a_pro_version_points_at_upstreams_files(tmp_path, monkeypatch) -> None:
    from app.data.preprocess.tts_features import _config_from_args, _parser

    monkeypatch.setenv("STUDIO_HOME", str(tmp_path))
    args = _parser().parse_args(["--list", "x.list", "--exp", "voice", "--version", "v2Pro", "--steps", "1b"])
    config = _config_from_args(args)
    assert config.sv_path is not None and config.sv_path.parts[-2:] == (
        "sv",
        "pretrained_eres2netv2w24s4ep4.ckpt",
    )
    assert config.pretrained_s2g.parts[-2:] == ("v2Pro", "s2Gv2Pro.pth")
    assert _config_from_args(_parser().parse_args(["--list", "x", "--exp", "v"])).sv_path is None
