"""``python -m app.infer.longform``: a job killed mid-way resumes where it stopped; errors exit 2 or 3."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf

from app.infer.longform import cli
from app.infer.longform.state import load
from tests.infer.tiny import GPT_NAME, SOVITS_NAME

REPO_ROOT = Path(__file__).resolve().parents[3]


def _args(home: Path, ref: Path, *extra: str) -> list[str]:
    return [
        "--gpt", str(home / "GPT_weights" / GPT_NAME), "--sovits", str(home / "SoVITS_weights" / SOVITS_NAME),
        "--pretrained", str(home / "pretrained_models"), "--device", "cpu", "--threads", "1",
        "--ref", str(ref), "--ref-text", "你好欢迎来到我们的节目", "--ref-lang", "all_zh", "--lang", "en", *extra,
    ]  # fmt: skip


def _wait_for(condition, seconds: float = 240.0) -> None:
    end = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def test_a_killed_job_resumes_from_its_last_take(tiny_home, ref_wav, tmp_path):
    source = tmp_path / "book.txt"
    source.write_text("\n\n".join(f"Paragraph number {i}." for i in range(4)), encoding="utf-8")
    job = tmp_path / "job"
    cmd = [
        sys.executable,
        "-m",
        "app.infer.longform",
        str(source),
        "--job",
        str(job),
        *_args(tiny_home, ref_wav),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, start_new_session=True, stderr=subprocess.PIPE)
    try:
        _wait_for(
            lambda: ((job / "job.json").is_file() and load(job).done_lines >= 1) or proc.poll() is not None
        )
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    killed = load(job)
    assert killed.state == "running" and 1 <= killed.done_lines < 4, proc.stderr.read().decode()
    kept = {t.file: (job / t.file).stat().st_mtime_ns for s in killed.lines for t in s.takes}
    assert cli.main(["--resume", str(job), "--threads", "1"]) == 0
    resumed = load(job)
    assert resumed.state == "done" and resumed.done_lines == 4
    assert all((job / f).stat().st_mtime_ns == t for f, t in kept.items())  # nothing made twice
    audio, rate = sf.read(job / "out" / "longform.wav", dtype="int16")
    assert len(audio) / rate > 4 * 0.5 and len(list((job / "out" / "lines").glob("*.wav"))) == 4


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        (lambda a, t: ["missing.txt", "--job", str(t / "j"), *a], 2, "missing.txt: cannot read the file"),
        (lambda a, t: [str(t / "s.srt"), "--job", str(t / "j"), *a], 2, "cue 1 .* no 'start --> end'"),
        (lambda a, t: [str(t / "cast.list"), "--job", str(t / "j"), *a], 2, "names voice 'bob': define it"),
        (
            lambda a, t: [str(t / "b.txt"), "--job", str(t / "j"), "--dub", *a],
            2,
            "--dub needs a subtitle source",
        ),
        (
            lambda a, t: [str(t / "b.txt"), "--job", str(t / "j"), *a, "--gpt", str(t / "no.ckpt")],
            3,
            "no.ckpt",
        ),
        (lambda a, t: ["--resume", str(t / "nothing")], 2, "cannot read the job file"),
        (lambda a, t: [str(t / "b.txt"), "--resume", str(t / "j")], 2, "or --resume FOLDER alone"),
        (
            lambda a, t: ["--resume", str(t / "j"), "--takes", "3", "--precision", "fast"],
            2,
            "keeps the voices and options .* leave out --precision, --takes",
        ),
    ],
    ids=[
        "missing",
        "bad-srt",
        "unknown-voice",
        "dub-text",
        "missing-model",
        "resume-nothing",
        "resume-and-source",
        "resume-with-options",
    ],
)
def test_bad_input_exits_with_a_message(tiny_home, ref_wav, tmp_path, capsys, change, code, message):
    (tmp_path / "s.srt").write_text("1\nnot a time\nHello\n", encoding="utf-8")
    (tmp_path / "cast.list").write_text("bob|Hello.\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text("Hello.\n", encoding="utf-8")
    assert cli.main(change(_args(tiny_home, ref_wav), tmp_path)) == code
    err = capsys.readouterr().err
    assert err.startswith("error: ") and __import__("re").search(message, err), err


def test_word_timestamps_are_written_when_asked(tiny_home, ref_wav, tmp_path, capsys):
    (tmp_path / "b.txt").write_text("Hello there, my friend.\n", encoding="utf-8")
    job = tmp_path / "j"
    assert (
        cli.main(
            [str(tmp_path / "b.txt"), "--job", str(job), "--word-timestamps", *_args(tiny_home, ref_wav)]
        )
        == 0
    )
    assert "4 timed word(s)" in capsys.readouterr().out
    words = (job / "out" / "longform.words.srt").read_text(encoding="utf-8")
    assert [ln for ln in words.splitlines() if ln.isalpha()] == ["Hello", "there", "my", "friend"]
    assert load(job).options.word_timestamps
    assert cli.main(["--resume", str(job), "--word-timestamps"]) == 2
    assert "leave out --word-timestamps" in capsys.readouterr().err
