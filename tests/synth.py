"""Generated test audio: tones, silence, and espeak-ng speech (no downloads)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf


def tone(seconds: float, sr: int, freq: float = 220.0, amp: float = 0.5) -> np.ndarray:
    """A sine of ``freq`` Hz, float32 shape ``(round(seconds * sr),)``."""
    t = np.arange(round(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def silence(seconds: float, sr: int) -> np.ndarray:
    """Digital silence, float32 shape ``(round(seconds * sr),)``."""
    return np.zeros(round(seconds * sr), dtype=np.float32)


def espeak(text: str, path: Path, *, voice: str = "en") -> Path:
    """Speak ``text`` with espeak-ng into a 22.05 kHz WAV at ``path``."""
    exe = shutil.which("espeak-ng")
    assert exe, "espeak-ng is required for speech tests (apt-get install espeak-ng)"
    subprocess.run([exe, "-v", voice, "-w", str(path), text], check=True, capture_output=True, timeout=60)
    return path


SENTENCES = (
    "The quick brown fox jumps over the lazy dog near the river bank",
    "A second sentence follows after a clear pause and it is long enough",
    "Finally the third sentence closes this short recording of synthetic speech",
)


def padded_speech(path: Path, lead_s: float = 1.0, gap_s: float = 1.0, tail_s: float = 2.0) -> Path:
    """The three :data:`SENTENCES` spoken by espeak-ng, ``gap_s`` of silence between them and
    ``lead_s`` / ``tail_s`` before and after, written to ``path`` (22.05 kHz)."""
    parts = []
    sr = 0
    for i, sentence in enumerate(SENTENCES):
        raw = espeak(sentence, path.with_name(f"{path.stem}_{i}.wav"))
        wav, sr = sf.read(raw, dtype="float32")
        raw.unlink()
        parts += [wav, silence(gap_s, sr)]
    parts[-1] = silence(tail_s, sr)
    sf.write(path, np.concatenate([silence(lead_s, sr), *parts]), sr)
    return path
