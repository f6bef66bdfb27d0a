"""Generated test audio shared by the audio tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest


def tone(seconds: float, sr: int, freq: float = 220.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def silence(seconds: float, sr: int) -> np.ndarray:
    return np.zeros(round(seconds * sr), dtype=np.float32)


@pytest.fixture(scope="session")
def espeak_wav(tmp_path_factory) -> Path:
    """Real speech: three sentences from espeak-ng with long pauses, padded with 1 s / 2 s of silence."""
    exe = shutil.which("espeak-ng")
    assert exe, "espeak-ng is required for the speech tests (apt-get install espeak-ng)"
    out = tmp_path_factory.mktemp("speech")
    raw = out / "raw.wav"
    text = (
        "The quick brown fox jumps over the lazy dog near the river bank. [[_:_:]] "
        "A second sentence follows after a clear pause, and it is long enough. [[_:_:]] "
        "Finally the third sentence closes this short recording of synthetic speech."
    )
    subprocess.run([exe, "-g", "40", "-w", str(raw), text], check=True, capture_output=True, timeout=60)
    import soundfile as sf

    wav, sr = sf.read(raw, dtype="float32")
    padded = np.concatenate([silence(1.0, sr), wav, silence(2.0, sr)])
    path = out / "speech.wav"
    sf.write(path, padded, sr)
    return path
