"""Rotary position embedding with x-transformers' conventions (the F5-TTS DiT of GPT-SoVITS v3/v4).

Same maths as ``x_transformers.RotaryEmbedding`` / ``apply_rotary_pos_emb`` (no xpos scaling,
interpolation factor 1), written here so the model needs no x-transformers install:

- ``inv_freq[i] = 1 / 10000 ** (2i / dim)``, a persistent buffer: upstream files store it (in
  fp16), and the stored values are the ones used.
- angles ``a[n, i] = n * inv_freq[i]``, each repeated for an adjacent channel pair:
  ``freqs[n] = [a0, a0, a1, a1, ...]`` (width ``dim``).
- rotation of an adjacent pair ``(x0, x1) -> (x0 cos a - x1 sin a, x1 cos a + x0 sin a)``.
- only the first ``dim`` channels of the input are rotated, the rest pass unchanged ("partial
  rotary"). The F5-TTS attention rotates queries and keys *before* splitting them into heads, so
  with ``dim = dim_head`` only the first head gets positions; that is upstream's behaviour.
"""

from __future__ import annotations

import torch
from torch import nn

# RoPE base (x-transformers default, not rescaled).
ROTARY_BASE = 10000.0


class RotaryEmbedding(nn.Module):
    """Angles of the rotary embedding for positions ``0 .. N-1``.

    Args:
        dim: rotated width (even); ``inv_freq`` has ``dim // 2`` entries.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"rotary dim must be even, got {dim}")
        inv_freq = 1.0 / (ROTARY_BASE ** (torch.arange(0, dim, 2).float() / dim))
        self.register_buffer("inv_freq", inv_freq)

    def forward(self, seq_len: int) -> torch.Tensor:
        """-> (1, seq_len, dim) float32 angles, pairs interleaved ``[a0, a0, a1, a1, ...]``."""
        inv_freq = self.inv_freq.float()
        positions = torch.arange(seq_len, device=inv_freq.device, dtype=torch.float32)
        angles = torch.outer(positions, inv_freq)  # (N, dim/2)
        return angles.repeat_interleave(2, dim=-1).unsqueeze(0)  # (1, N, dim)


def rotate_pairs(x: torch.Tensor) -> torch.Tensor:
    """(..., 2k) -> (..., 2k): every adjacent pair ``(x0, x1)`` becomes ``(-x1, x0)``."""
    pairs = x.unflatten(-1, (-1, 2))  # (..., k, 2)
    x0, x1 = pairs.unbind(-1)
    return torch.stack((-x1, x0), dim=-1).flatten(-2)


def apply_rotary(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Rotate the first ``freqs.shape[-1]`` channels of ``x`` by the angles ``freqs``.

    Args:
        x: (B, N, C) with C >= rotated width (queries or keys before the head split).
        freqs: (1, N', D) angles from :class:`RotaryEmbedding`, N' >= N (the last N are used).

    Returns:
        (B, N, C) in x's dtype; the rotation is computed in float32.
    """
    width = freqs.shape[-1]
    freqs = freqs[:, -x.shape[-2] :, :]
    rotated, rest = x[..., :width], x[..., width:]
    rotated = rotated.float()
    rotated = rotated * freqs.cos() + rotate_pairs(rotated) * freqs.sin()
    return torch.cat((rotated.to(x.dtype), rest), dim=-1)
