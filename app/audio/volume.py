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
