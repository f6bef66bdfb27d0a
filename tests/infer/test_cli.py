"""``python -m app.infer.tts``: writes a wav; bad input exits 2, bad models exit 3, with a message."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from app.infer import tts
from tests.infer.tiny import GPT_NAME, SOVITS_NAME, voice

REPO_ROOT = Path(__file__).resolve().parents[2]


def _args(home, ref, out, *extra: str) -> list[str]:
    return [
        "--gpt", str(home / "GPT_weights" / GPT_NAME),
        "--sovits", str(home / "SoVITS_weights" / SOVITS_NAME),
        "--pretrained", str(home / "pretrained_models"),
        "--ref", str(ref), "--ref-text", "你好欢迎来到我们的节目", "--ref-lang", "all_zh",
        "--text", "The command line works. It writes a wave file.", "--lang", "en",
        "--out", str(out), "--seed", "3", "--threads", "1", *extra,
    ]  # fmt: skip


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_cli_writes_a_wav(tiny_home, ref_wav, tmp_path, stream):
    out = tmp_path / "out.wav"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "app.infer.tts", *_args(tiny_home, ref_wav, out, "--split", "cut4")]
    proc = subprocess.run(
        cmd + (["--stream"] if stream else []),
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    audio, sr = sf.read(out, dtype="int16")
    assert sr == 32000 and np.abs(audio).max() > 100
    assert f"wrote {out}: {len(audio) / sr:.2f} s, 2 segment(s), seed 3" in proc.stdout


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        (lambda a, t: [*a, "--text", "   "], 2, "the text is empty"),
        (lambda a, t: [*a, "--lang", "klingon"], 2, "unknown language mode 'klingon'"),
        (lambda a, t: [*a, "--text", "Привет, как дела?", "--lang", "auto"], 2, "cannot be read as auto"),
        (lambda a, t: [*a, "--ref", str(voice(t / "short.wav", 1.0))], 2, r"short.wav is 1\.0 s long"),
        (
            lambda a, t: [*a, "--ref", str(_corrupt(t))],
            2,
            "corrupt.wav: .*(not a readable audio file|damaged)",
        ),
        (lambda a, t: [*a, "--top-p", "0"], 2, "top_p must be in"),
        (lambda a, t: [*a, "--gpt", str(t / "none.ckpt")], 3, "none.ckpt: no such file"),
    ],
    ids=["empty", "language", "unreadable", "short-ref", "corrupt-ref", "top-p", "missing-model"],
)
def test_cli_bad_input_exits_with_a_message(tiny_home, ref_wav, tmp_path, capsys, change, code, message):
    out = tmp_path / "out.wav"
    assert tts.main(change(_args(tiny_home, ref_wav, out), tmp_path)) == code
    err = capsys.readouterr().err
    assert err.startswith("error: ") and re.search(message, err), err
    assert not out.exists()


def _corrupt(folder):
    path = folder / "corrupt.wav"
    path.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 8)
    return path


def test_cli_speaks_with_a_v2proplus_model(tmp_path, ref_wav, capsys):
    from tests.infer.tiny import PRO_SOVITS_NAME, build_pro_home

    home = build_pro_home(tmp_path / "home")
    out = tmp_path / "pro.wav"
    args = _args(home, ref_wav, out)
    args[args.index("--sovits") + 1] = str(home / "SoVITS_weights" / PRO_SOVITS_NAME)
    assert tts.main(args) == 0, capsys.readouterr().err
    audio, sr = sf.read(out, dtype="int16")
    assert sr == 32000 and np.abs(audio).max() > 100
    (home / "pretrained_models" / "sv" / "pretrained_eres2netv2w24s4ep4.ckpt").unlink()
    assert tts.main(args) == 3
    assert "download_models.py sv-eres2netv2" in capsys.readouterr().err


def test_cli_speaks_with_a_v4_model_at_the_asked_sample_steps(tmp_path, ref_wav, capsys, monkeypatch):
    from app.models.sovits.cfm_model import CfmSoVITS
    from tests.infer.tiny import CFM_SOVITS_NAMES, build_cfm_home

    home = build_cfm_home(tmp_path / "home", versions=("v4",))
    out = tmp_path / "v4.wav"
    args = _args(home, ref_wav, out, "--sample-steps", "4")
    args[args.index("--sovits") + 1] = str(home / "SoVITS_weights" / CFM_SOVITS_NAMES["v4"])
    steps: list[int] = []
    real = CfmSoVITS.decode_mel
    monkeypatch.setattr(
        CfmSoVITS, "decode_mel", lambda self, *a, **k: steps.append(a[3]) or real(self, *a, **k)
    )
    assert tts.main(args) == 0, capsys.readouterr().err
    audio, sr = sf.read(out, dtype="int16")
    assert sr == 48000 and np.abs(audio).max() > 100 and steps == [4]  # one segment (default split)
    assert tts.main([*args, "--sample-steps", "200"]) == 2
    assert "sample_steps must be between 4 and 128" in capsys.readouterr().err


def test_cli_prints_notes_to_stderr_with_a_result_or_an_error(tiny_home, ref_wav, tmp_path, capsys):
    clean, sr = sf.read(ref_wav, dtype="float32")
    clipped = tmp_path / "clipped.wav"
    sf.write(clipped, np.clip(clean * 8, -1, 1), sr, subtype="PCM_16")
    out = tmp_path / "out.wav"
    args = _args(tiny_home, clipped, out, "--text", "Hello Привет.", "--ref-free")
    assert tts.main(args) == 0
    captured = capsys.readouterr()
    assert "note: The reference clip is clipped (" in captured.err
    assert any(line.startswith("note: ") and "Привет" in line for line in captured.err.splitlines())
    assert "note:" not in captured.out and captured.out.startswith(f"wrote {out}")
    # A refused reference: the notes made before the refusal, then the error.
    constant = tmp_path / "constant.wav"
    sf.write(constant, np.full(4 * sr, 0.4, np.float32), sr)
    assert tts.main(_args(tiny_home, constant, out, "--text", "Hello Привет.")) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("note: ") and "Привет" in err[0], err  # the skipped letters
    assert err[-1].startswith("error: ") and "constant.wav holds no speech" in err[-1]
