"""Frame volume: length, centring and values on simple signals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from app.audio.volume import frame_volume


def test_constant_and_sine_levels() -> None:
    assert torch.allclose(frame_volume(np.full(1000, 0.5, np.float32), 100), torch.full((10,), 0.5))
    t = np.arange(44100) / 44100
    rms = frame_volume((0.8 * np.sin(2 * np.pi * 441 * t)).astype(np.float32), 500)
    assert rms.shape == (88,)
    assert torch.allclose(rms[1:-1], torch.full((86,), 0.8 / np.sqrt(2)), atol=1e-3)


def test_frames_are_centred_on_their_start() -> None:
    wav = np.zeros(1000, np.float32)
    wav[500:] = 1.0  # a step at frame 5's start (hop 100)
    rms = frame_volume(wav, 100) ** 2
    assert rms[3].item() == 0.0 and rms[4].item() == 0.0
    assert rms[5].item() == pytest.approx(0.5)  # half of frame 5's window is before the step
    assert rms[6].item() == pytest.approx(1.0)


def test_too_short() -> None:
    with pytest.raises(ValueError, match="shorter than one frame"):
        frame_volume(np.zeros(10, np.float32), 100)
