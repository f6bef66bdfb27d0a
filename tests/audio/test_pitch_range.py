"""Pitch range statistics, note names and the report file."""

from __future__ import annotations

import numpy as np

from app.audio.pitch_range import PitchRange, measure, note_name, read_report, semitones, write_report


def test_note_names_and_intervals() -> None:
    assert note_name(440.0) == "A4"
    assert note_name(261.63) == "C4"
    assert note_name(110.0 * 2 ** (1 / 12)) == "A#2"
    assert note_name(0.0) == "-"
    assert semitones(220.0, 440.0) == 12.0
    assert round(semitones(440.0, 330.0), 3) == round(12 * np.log2(0.75), 3)


def test_measure_uses_only_voiced_frames() -> None:
    f0 = np.array([100.0, 200.0, 300.0, 999.0, 0.0])
    uv = np.array([1, 1, 1, 0, 0])
    r = measure(f0, uv, frame_seconds=0.01)
    assert r is not None and r.median == 200.0 and r.voiced_seconds == 0.03
    assert r.p5 < r.p25 < r.median < r.p75 < r.p95 < 300.0 + 1e-9
    assert measure(np.zeros(4), None, 0.01) is None
    assert "median 200 Hz (G3)" in r.describe()


def test_report_round_trip_and_unreadable_file(tmp_path) -> None:
    ranges = {"alto": PitchRange(3.0, 300.0, 200.0, 250.0, 350.0, 400.0)}
    path = write_report(tmp_path / "pitch_report.json", ranges)
    assert read_report(path) == ranges
    path.write_text("{not json")
    assert read_report(path) == {}
    assert read_report(tmp_path / "absent.json") == {}
