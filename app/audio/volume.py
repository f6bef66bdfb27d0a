"""Frame volume (RMS per synth frame), the input of so-vits-svc's volume embedding."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def frame_volume(wav: np.ndarray | torch.Tensor, hop: int) -> torch.Tensor:
    """RMS of each ``hop``-sample frame of mono audio (so-vits-svc 4.1 ``Volume_Extractor``).

    Frame i covers samples ``[i*hop - hop//2, i*hop + (hop+1)//2)`` (reflect-padded at the ends),
    so it is centred on the frame's start like the f0 frames.

    Args:
        wav: (N,) audio.
        hop: samples per frame.

    Returns:
        (N // hop,) float32 RMS values.
    """
    x = torch.as_tensor(wav, dtype=torch.float32).reshape(-1)
    n_frames = x.numel() // hop
    if n_frames < 1:
        raise ValueError(f"audio of {x.numel()} samples is shorter than one frame of {hop}")
    power = F.pad((x * x)[None, None], (hop // 2, (hop + 1) // 2), mode="reflect")[0, 0]
    frames = power[: n_frames * hop].reshape(n_frames, hop)  # (T, hop)
    return frames.mean(dim=1).sqrt()


def match_loudness(source: np.ndarray, output: np.ndarray, sr: int, rate: float) -> np.ndarray:
    """Give ``output`` the loudness envelope of ``source`` by ``1 - rate`` (so-vits-svc 4.1 / RVC ``change_rms``).

    Both envelopes are RMS over half-second frames, linearly interpolated to every sample;
    ``output * rms_source^(1 - rate) * rms_output^(rate - 1)``. ``rate = 1`` keeps the output as
    it is, ``rate = 0`` follows the source's loudness fully.

    Args:
        source, output: (N,) audio at ``sr`` (same length).
    """
    from app.audio.slicer import frame_rms

    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"loudness mix must be between 0 and 1, got {rate}")
    output = np.asarray(output, dtype=np.float32)
    if rate == 1.0 or len(output) == 0:
        return output
    hop = sr // 2
    n = len(output)

    def envelope(x: np.ndarray) -> np.ndarray:
        rms = frame_rms(np.asarray(x, dtype=np.float32)[:n], 2 * hop, hop)
        return np.interp(np.arange(n), np.linspace(0, n - 1, len(rms)), rms)

    src, out = envelope(source), np.maximum(envelope(output), 1e-6)
    return (output * src ** (1.0 - rate) * out ** (rate - 1.0)).astype(np.float32)
