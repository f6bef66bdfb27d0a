"""Pitch range of a voice: percentiles of its voiced f0, note names, and the report file.

Singing conversion goes hoarse when the input's pitch sits far outside what the model heard in
training (so-vits-svc / RVC users' most common complaint). The preprocessing measures each
speaker's range from the training f0 and writes ``pitch_report.json``; conversion compares the
(transposed) input against it and suggests a transpose in semitones.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from app.config_io import save as save_json
from app.messages import Message

REPORT_FILE = "pitch_report.json"
A4_HZ = 440.0
A4_MIDI = 69
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


@dataclass(frozen=True)
class PitchRange:
    """Voiced-f0 statistics of one voice, in Hz."""

    voiced_seconds: float  # how much voiced audio the numbers come from
    median: float
    p5: float  # 5th percentile: the low end a voice reaches comfortably
    p25: float
    p75: float
    p95: float  # 95th percentile: the high end

    def describe(self) -> Message:
        """e.g. ``"median 220 Hz (A3), 5-95 %: 180-300 Hz (F#3-D4)"`` (a Message: the page says it in its language)."""
        return Message(
            "pitch.range",
            "median {median:.0f} Hz ({median_note}), 5-95 %: {low:.0f}-{high:.0f} Hz ({low_note}-{high_note})",
            median=self.median,
            median_note=note_name(self.median),
            low=self.p5,
            high=self.p95,
            low_note=note_name(self.p5),
            high_note=note_name(self.p95),
        )


def measure(f0: np.ndarray, uv: np.ndarray | None, frame_seconds: float) -> PitchRange | None:
    """Statistics of the voiced frames of ``f0`` (Hz, (T,)); None when nothing is voiced.

    ``uv`` marks voiced frames (1); without it every frame with f0 > 0 counts.
    """
    f0 = np.asarray(f0, dtype=np.float64).reshape(-1)
    voiced = f0 > 0 if uv is None else (np.asarray(uv).reshape(-1) > 0.5) & (f0 > 0)
    values = f0[voiced]
    if values.size == 0:
        return None
    p5, p25, median, p75, p95 = np.percentile(values, [5, 25, 50, 75, 95])
    return PitchRange(
        voiced_seconds=float(values.size * frame_seconds),
        median=float(median),
        p5=float(p5),
        p25=float(p25),
        p75=float(p75),
        p95=float(p95),
    )


def semitones(from_hz: float, to_hz: float) -> float:
    """Interval from ``from_hz`` to ``to_hz`` in semitones (12 = an octave up)."""
    return 12.0 * math.log2(to_hz / from_hz)


def note_name(hz: float) -> str:
    """Nearest equal-tempered note, e.g. 440 -> ``"A4"``, 261.6 -> ``"C4"``."""
    if not hz > 0:
        return "-"
    midi = round(A4_MIDI + semitones(A4_HZ, hz))
    return f"{NOTE_NAMES[midi % 12]}{midi // 12 - 1}"


def write_report(path: Path, ranges: Mapping[str, PitchRange]) -> Path:
    """Write ``{speaker: PitchRange}`` as JSON."""
    return save_json({name: asdict(r) for name, r in ranges.items()}, path)


def read_report(path: Path) -> dict[str, PitchRange]:
    """Read a report written by :func:`write_report`; {} when the file is absent or unreadable."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return {str(name): PitchRange(**values) for name, values in data.items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}
