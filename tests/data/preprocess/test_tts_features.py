"""Dataset formatting 1a/1b/1c: upstream's layout and formats, resumability, problems with line numbers."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch

from app import config_io
from app.audio.io import load_audio
from app.data.experiment import SEMANTIC_HEADER, ExperimentFiles, read_name2text, read_semantic
from app.data.preprocess.tts_dataset import BaseModelMissing
from app.data.preprocess.tts_features import run_format
from app.models.upstream.sovits import load_sovits
from app.runconfig import FormatRunConfig
from app.runstatus import read_status
from app.text import clean_text
from tests.tts_data import SPEAKER

REPO = Path(__file__).resolve().parents[3]


def make_config(pre, list_path: Path, audio_dir: Path, exp_dir: Path, **changes) -> FormatRunConfig:
    config = FormatRunConfig(
        list_path=list_path,
        audio_dir=audio_dir,
        exp_dir=exp_dir,
        bert_dir=pre.bert,
        hubert_dir=pre.hubert,
        pretrained_s2g=pre.s2g,
        workers=1,
    )
    return replace(config, **changes)


def test_layout_and_formats_are_upstreams(tts_experiment, tts_dataset, tts_pretrained) -> None:
    from transformers import HubertModel

    audio_dir, clips, _ = tts_dataset
    exp = ExperimentFiles(tts_experiment)
    text = exp.name2text.read_text(encoding="utf-8")
    assert text.endswith("\n") and not text.endswith("\n\n")
    lines = text[:-1].split("\n")
    assert [line.split("\t")[0] for line in lines] == [c.name for c in clips]  # list order
    for clip, line in zip(clips, lines, strict=True):
        name, phones, word2ph, norm_text = line.split("\t")
        expected = clean_text(clip.text, clip.language, "v2")
        assert phones == " ".join(expected.phones) and norm_text == expected.norm_text
        if clip.language == "zh":
            assert word2ph == repr(list(expected.word2ph))
            bert = torch.load(exp.bert(name), weights_only=True)
            assert bert.dtype == torch.float32 and tuple(bert.shape) == (1024, len(expected.phones))
        else:
            assert word2ph == "None" and not exp.bert(name).exists()

    hubert = HubertModel.from_pretrained(str(tts_pretrained.hubert), local_files_only=True).eval()
    semantic_model, _ = load_sovits(tts_pretrained.s2g)
    semantic_lines = exp.semantic.read_text(encoding="utf-8").split("\n")
    assert semantic_lines[0] == SEMANTIC_HEADER and semantic_lines[-1] == ""
    codes = read_semantic(exp.semantic)
    assert list(codes) == [c.name for c in clips]
    for clip in (clips[0], clips[-1]):  # a Piper and a Mandarin espeak-ng clip
        x = load_audio(audio_dir / clip.name, 32000)
        peak = np.abs(x).max()
        # upstream 2-get-hubert-wav32k.py: two mixes of the peak-normalised and the original clip
        stored = (x / peak * (0.95 * 0.5 * 32768) + 0.5 * 32768 * x).astype(np.int16)
        info = sf.info(str(exp.wav32k(clip.name)))
        assert (info.format, info.subtype, info.samplerate) == ("WAV", "PCM_16", 32000)
        got, _ = sf.read(str(exp.wav32k(clip.name)), dtype="int16")
        np.testing.assert_array_equal(got, stored)
        mix = x / peak * (0.95 * 0.5 * 1145.14) + 0.5 * 1145.14 * x
        wav16 = librosa.resample(mix.astype(np.float32), orig_sr=32000, target_sr=16000, res_type="soxr_hq")
        with torch.no_grad():
            expected = hubert(torch.from_numpy(wav16)[None]).last_hidden_state.transpose(1, 2)
        features = torch.load(exp.hubert(clip.name), weights_only=True)
        assert features.shape == expected.shape and features.shape[:2] == (1, 768)
        torch.testing.assert_close(features, expected, rtol=1e-4, atol=1e-4)
        assert list(codes[clip.name]) == semantic_model.extract_codes(features)[0, 0].tolist()


def test_rerun_skips_what_is_done_and_redoes_what_changed(
    tmp_path, tts_experiment, tts_dataset, tts_pretrained
) -> None:
    source_audio, clips, list_path = tts_dataset
    exp_dir = tmp_path / "voice"
    shutil.copytree(tts_experiment, exp_dir)
    audio_dir = tmp_path / "clips"
    shutil.copytree(source_audio, audio_dir)  # copy2: sizes and times kept, so nothing looks changed
    config = make_config(tts_pretrained, list_path, audio_dir, exp_dir)
    report = run_format(config)
    assert [(s.step, s.processed, s.skipped) for s in report.steps] == [
        (s, 0, 20) for s in ("1a", "1b", "1c")
    ]

    # Proofreading changed one line's text and re-recorded another clip.
    edited = list_path.read_text(encoding="utf-8").replace("I like green apples.", "I like red apples.")
    (tmp_path / "voice.list").write_text(edited, encoding="utf-8")
    rerecorded = clips[5].name
    wav, sr = sf.read(str(audio_dir / rerecorded))
    sf.write(str(audio_dir / rerecorded), wav[: len(wav) * 3 // 4], sr)
    before = torch.load(exp_dir / "4-cnhubert" / f"{rerecorded}.pt", weights_only=True)
    seen: list[tuple[str, int, int]] = []
    report = run_format(
        replace(config, list_path=tmp_path / "voice.list"), progress=lambda s, d, t, n: seen.append((s, d, t))
    )
    assert [(s.step, s.processed, s.skipped) for s in report.steps] == [
        ("1a", 1, 19),
        ("1b", 1, 19),
        ("1c", 1, 19),
    ]
    assert read_name2text(exp_dir / "2-name2text.txt")[clips[1].name].norm_text == "I like red apples."
    after = torch.load(exp_dir / "4-cnhubert" / f"{rerecorded}.pt", weights_only=True)
    assert after.shape[-1] < before.shape[-1]
    assert len(read_semantic(exp_dir / "6-name2semantic.tsv")[rerecorded]) == after.shape[-1] // 2
    assert seen[-1] == ("1c", 20, 20) and {s for s, _, _ in seen} == {"1a", "1b", "1c"}


def test_a_stopped_step_continues_where_it_stopped(
    tmp_path, tts_experiment, tts_dataset, tts_pretrained
) -> None:
    audio_dir, _, list_path = tts_dataset
    exp_dir = tmp_path / "voice"
    config = make_config(tts_pretrained, list_path, audio_dir, exp_dir, steps=("1a",))
    done: list[int] = []
    report = run_format(config, progress=lambda s, d, t, n: done.append(d), should_stop=lambda: len(done) > 5)
    assert report.stopped and report.steps[0].processed == 5
    assert not (exp_dir / "2-name2text.txt").exists()  # only complete files carry upstream's name
    report = run_format(config)
    assert (report.steps[0].processed, report.steps[0].skipped) == (15, 5)
    assert (exp_dir / "2-name2text.txt").read_bytes() == (tts_experiment / "2-name2text.txt").read_bytes()
    assert not list(exp_dir.glob(".*partial"))


def test_bad_lines_and_audio_are_reported_with_line_numbers(tmp_path, tts_dataset, tts_pretrained) -> None:
    """Through the CLI, as a formatting job runs it: status.json and problems.txt beside run.yaml."""
    source_audio, clips, _ = tts_dataset
    audio_dir = tmp_path / "clips"
    audio_dir.mkdir()
    for clip in (clips[0], clips[1], clips[-1]):
        shutil.copy2(source_audio / clip.name, audio_dir / clip.name)
    (audio_dir / "broken.wav").write_bytes(b"this is not audio at all" * 100)
    lines = [
        f"{clips[0].name}|{SPEAKER}|EN|{clips[0].text}",  # 1 ok
        "only|three|fields",  # 2 malformed
        f"{clips[1].name}|{SPEAKER}|EN|{clips[1].text}",  # 3 ok
        f"missing.wav|{SPEAKER}|EN|Nobody recorded this.",  # 4 no audio
        f"{clips[0].name}|{SPEAKER}|EN|The same file again.",  # 5 duplicate name
        f"broken.wav|{SPEAKER}|EN|Not audio at all.",  # 6 unreadable audio
        f"other.wav|{SPEAKER}|XX|Unknown language.",  # 7 unknown language code
        f"{clips[-1].name}|{SPEAKER}|ZH|{clips[-1].text}",  # 8 ok (Mandarin)
    ]
    list_path = tmp_path / "voice.list"
    list_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    run_dir = tmp_path / "voice" / "format"
    config = make_config(tts_pretrained, list_path, audio_dir, tmp_path / "voice")
    config_io.save(config, run_dir / "run.yaml")
    proc = subprocess.run(
        [sys.executable, "-m", "app.data.preprocess.tts_features", "--config", str(run_dir / "run.yaml")],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    status = read_status(run_dir / "status.json")
    assert status.state == "done" and status.stage == "format:1c" and status.progress == 1.0
    problems = (run_dir / "problems.txt").read_text(encoding="utf-8").splitlines()
    # The status line keeps its key, so the Train tab words it in the reader's language.
    assert status.message.key == "format.note.done" and status.message.params["problems"] == len(problems)
    problems = (run_dir / "problems.txt").read_text(encoding="utf-8").splitlines()
    by_line = {int(p.split("line ")[1].split()[0].rstrip(":")): p for p in problems}
    assert sorted(by_line) == [2, 4, 5, 6, 7]
    assert "expected 4 fields" in by_line[2] and "not found" in by_line[4]
    assert "line 1 already uses" in by_line[5] and "XX" in by_line[7]
    assert sum("broken.wav" in p for p in problems) == 2  # 1b cannot read it, so 1c has no features
    assert "[1b]" in next(p for p in problems if "broken.wav" in p)
    exp = ExperimentFiles(tmp_path / "voice")
    assert list(read_semantic(exp.semantic)) == [clips[0].name, clips[1].name, clips[-1].name]
    assert "line 2" in proc.stderr  # the job log names them too
    kinds = (run_dir / "problems-by-kind.txt").read_text(encoding="utf-8").splitlines()
    assert len([k for k in kinds if k.startswith("[list]")]) == 4  # fields, missing, duplicate, language


def test_a_missing_base_model_names_the_download(tmp_path, tts_dataset, tts_pretrained) -> None:
    audio_dir, _, list_path = tts_dataset
    nowhere = tmp_path / "pretrained_models"
    config = make_config(
        tts_pretrained, list_path, audio_dir, tmp_path / "voice",
        steps=("1b",), hubert_dir=nowhere / "chinese-hubert-base",
    )  # fmt: skip
    with pytest.raises(BaseModelMissing, match=r"tools/download_models\.py chinese-hubert-base"):
        run_format(config)
    config = replace(
        config, steps=("1c",), pretrained_s2g=nowhere / "gsv-v2final-pretrained" / "s2G2333k.pth"
    )
    (tmp_path / "voice" / "4-cnhubert").mkdir(parents=True, exist_ok=True)
    torch.save(torch.zeros(1, 768, 10), tmp_path / "voice" / "4-cnhubert" / "piper_00.wav.pt")
    with pytest.raises(BaseModelMissing, match=r"download_models\.py gpt-sovits-v2"):
        run_format(config)


@pytest.mark.slow
def test_worker_processes_phonemise_the_same(
    tmp_path, monkeypatch, tts_experiment, tts_dataset, tts_pretrained
) -> None:
    from app.data.preprocess import tts_steps

    monkeypatch.setattr(tts_steps, "MIN_ITEMS_PER_PROCESS", 1)  # use the pool even for 20 lines
    audio_dir, _, list_path = tts_dataset
    config = make_config(tts_pretrained, list_path, audio_dir, tmp_path / "voice", steps=("1a",), workers=2)
    report = run_format(config)
    assert report.steps[0].processed == 20 and not report.problems
    assert (tmp_path / "voice" / "2-name2text.txt").read_bytes() == (
        tts_experiment / "2-name2text.txt"
    ).read_bytes()
