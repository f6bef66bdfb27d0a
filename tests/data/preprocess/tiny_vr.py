"""Tiny UVR VR-architecture files: bare float16 state dicts, as the published ``.pth`` files are.

The networks are the real ones at small widths (the same keys; only channel counts differ) with
random weights, except the last decoder of the full-band stage: its convolution is zeroed and its
BatchNorm made the identity plus a bias, so every mask the file produces is one known constant
whatever the input. Tests can then check the whole path (bands, windows, mask, way back) against
``constant * mix``.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from app.models.upstream.uvr_vr import ASPP
from app.models.uvr.nets import AsppNet, AsppNetConfig, CascadedNet, CascadedNetConfig

TINY_ASPP = AsppNetConfig(width=2)
TINY_CASCADED = CascadedNetConfig(nout=4, nout_lstm=8)


def tiny_vr_state(kind: str, mask: float, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict of a tiny ``kind`` network whose mask is ``mask`` everywhere (float16)."""
    torch.manual_seed(seed)
    net = AsppNet(TINY_ASPP) if kind == ASPP else CascadedNet(TINY_CASCADED)
    state = net.state_dict()
    for key, value in state.items():  # random BatchNorm statistics: the loader must carry them
        if key.endswith("running_mean"):
            value.copy_(torch.randn(value.shape) * 0.1)
        elif key.endswith("running_var"):
            value.copy_(torch.rand(value.shape) + 0.5)
    last = "stg3_full_band_net.dec1.conv" if kind == ASPP else "stg3_full_band_net.dec1.conv1"
    state[f"{last}.conv.0.weight"].zero_()  # the decoder's output is its BatchNorm's bias...
    state[f"{last}.conv.1.weight"].fill_(1.0)
    state[f"{last}.conv.1.bias"].fill_(1.0)
    state[f"{last}.conv.1.running_mean"].zero_()
    state[f"{last}.conv.1.running_var"].fill_(1.0 - 1e-5)  # ...exactly 1 after sqrt(var + eps)
    out = state["out.weight"]  # (2, channels, 1, 1): logit = channels * w
    out.fill_(math.log(mask / (1 - mask)) / out.shape[1])
    return {k: v.half() if v.is_floating_point() else v for k, v in state.items()}


def tiny_vr(path: Path, kind: str, mask: float, seed: int = 0) -> Path:
    """Write :func:`tiny_vr_state` to ``path`` with ``torch.save`` (the published layout)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(tiny_vr_state(kind, mask, seed), path)
    return path
