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


def test_match_loudness_follows_the_source_envelope() -> None:
    import numpy as np

    from app.audio.volume import match_loudness

    sr = 8000
    t = np.arange(4 * sr) / sr
    source = (np.sin(2 * np.pi * 200 * t) * np.where(t < 2, 0.8, 0.1)).astype(np.float32)
    output = (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    same = match_loudness(source, output, sr, 1.0)
    np.testing.assert_array_equal(same, output)
    followed = match_loudness(source, output, sr, 0.0)
    loud, quiet = np.abs(followed[sr // 2 : sr]).max(), np.abs(followed[3 * sr : int(3.5 * sr)]).max()
    assert loud / quiet > 5  # the 8:1 step of the source's loudness is now in the output
    assert abs(loud - 0.8) < 0.15
