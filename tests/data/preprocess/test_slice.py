"""app.data.preprocess.slice: the library on files and folders, in parallel, and the real CLI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from app.audio.slicer import SlicerOptions
from app.data.preprocess.slice import clip_name, collect_inputs, slice_files
from tests.synth import SENTENCES, silence, tone

REPO_ROOT = Path(__file__).resolve().parents[3]
NAME = re.compile(r"^(?P<src>.+)_(?P<start>\d{10})_(?P<end>\d{10})\.wav$")


def recording(path: Path, sr: int = 44_100, bursts: int = 3) -> Path:
    parts = [silence(1.0, sr)]
    for _ in range(bursts):
        parts += [tone(4.5, sr), silence(1.0, sr)]
    sf.write(path, np.concatenate(parts), sr)
    return path


def test_clips_are_32k_int16_named_by_source_and_offsets(tmp_path):
    src = recording(tmp_path / "talk.flac")
    report = slice_files([src], tmp_path / "out")
    assert not report.errors
    assert len(report.clips) == 3
    previous_end = -1
    for clip in report.clips:
        m = NAME.match(clip.name)
        assert m and m["src"] == "talk.flac"
        start, end = int(m["start"]), int(m["end"])
        info = sf.info(clip)
        assert info.samplerate == 32_000 and info.subtype == "PCM_16" and info.channels == 1
        assert info.frames == end - start, "names carry the 32 kHz sample offsets of the clip"
        assert start >= previous_end
        previous_end = end
        peak = np.abs(sf.read(clip)[0]).max()
        # 0.5-amplitude tone mixed with its peak-normalised copy: 0.9*0.25 + 0.75*0.5 = 0.6
        assert abs(peak - 0.6) < 0.01
    assert clip_name(src, 5, 70) == "talk.flac_0000000005_0000000070.wav"


def test_long_and_odd_source_names_give_clips_that_fit(tmp_path):
    # Up to 255-byte source names in any script, and names with spaces, quotes, dashes, shell characters.
    folder = tmp_path / "in"
    folder.mkdir()
    names = ["語" * 83 + ".wav", "a" * 251 + ".wav", "-x 'q' \"d\" $(y); `z`.wav"]
    for name in names:
        recording(folder / name, bursts=1)
    report = slice_files([folder], tmp_path / "out")
    assert not report.errors and len(report.clips) == 3
    assert all(len(c.name.encode()) <= 255 and c.is_file() for c in report.clips)
    odd = [c for c in report.clips if c.name.startswith("-x")]
    assert odd and NAME.match(odd[0].name)["src"] == names[2]  # short names stay upstream's
    assert len({c.name for c in report.clips}) == 3


def test_folder_in_parallel_with_a_bad_file_reported(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        recording(folder / f"rec{i}.wav", bursts=2)
    (folder / "broken.wav").write_bytes(b"RIFF not really")
    (folder / "notes.txt").write_text("ignored: not audio")
    seen = []
    report = slice_files(
        [folder],
        tmp_path / "out",
        SlicerOptions(),
        workers=2,
        progress=lambda d, t, n: seen.append((d, t, n)),
    )
    assert [f.source.name for f in report.files] == ["broken.wav", "rec0.wav", "rec1.wav", "rec2.wav"]
    assert len(report.errors) == 1 and "broken.wav" in report.errors[0].error
    assert len(report.clips) == 6
    assert sorted(d for d, _, _ in seen) == [1, 2, 3, 4] and all(t == 4 for _, t, _ in seen)


def test_collect_inputs(tmp_path):
    (tmp_path / "b.mp3").write_bytes(b"x")
    (tmp_path / "a.wav").write_bytes(b"x")
    (tmp_path / ".hidden.wav").write_bytes(b"x")
    (tmp_path / "readme.md").write_text("x")
    assert [p.name for p in collect_inputs(tmp_path)] == ["a.wav", "b.mp3"]
    try:
        collect_inputs(tmp_path / "missing")
    except FileNotFoundError as exc:
        assert "missing" in str(exc)
    else:
        raise AssertionError("a missing input must raise")


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "app.data.preprocess.slice", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_slices_for_real(tmp_path, espeak_wav):
    out = tmp_path / "clips"
    proc = _cli(str(espeak_wav), str(out), "--min-length", "1000", "--max", "0.8")
    assert proc.returncode == 0, proc.stderr
    clips = sorted(out.glob("*.wav"))
    assert len(clips) == len(SENTENCES)
    assert all(NAME.match(c.name)["src"] == "speech.wav" for c in clips)
    assert f"{len(clips)} clips from 1 file(s)" in proc.stdout


def test_cli_rejects_bad_settings_and_reports_failures(tmp_path):
    proc = _cli(str(tmp_path), str(tmp_path / "o"), "--min-length", "100", "--min-interval", "300")
    assert proc.returncode == 2 and "min_length >= min_interval" in proc.stderr
    proc = _cli(str(tmp_path / "nowhere"), str(tmp_path / "o"))
    assert proc.returncode == 2 and "nowhere" in proc.stderr
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"\x00" * 64)
    proc = _cli(str(bad), str(tmp_path / "o"))
    assert proc.returncode == 1 and "bad.wav" in proc.stderr
