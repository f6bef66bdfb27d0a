"""Masks and small sequence helpers shared by the VITS-family models."""

from __future__ import annotations

import torch


def sequence_mask(lengths: torch.Tensor, max_length: int | None = None) -> torch.Tensor:
    """Boolean mask of valid positions.

    Args:
        lengths: (B,) integer lengths.
        max_length: width of the mask; defaults to ``lengths.max()``.

    Returns:
        (B, max_length) bool, True where ``position < length``.
    """
    if max_length is None:
        max_length = int(lengths.max())
    positions = torch.arange(max_length, dtype=lengths.dtype, device=lengths.device)
    return positions.unsqueeze(0) < lengths.unsqueeze(1)


def length_mask(lengths: torch.Tensor, max_length: int, dtype: torch.dtype) -> torch.Tensor:
    """(B, 1, max_length) float mask in ``dtype``: the channel-broadcastable form models multiply by."""
    return sequence_mask(lengths, max_length).unsqueeze(1).to(dtype)


def causal_mask(length: int, device: torch.device | None = None) -> torch.Tensor:
    """(1, 1, length, length) lower-triangular float mask: row i sees positions <= i."""
    return torch.tril(torch.ones(length, length, device=device)).unsqueeze(0).unsqueeze(0)


def same_padding(kernel_size: int, dilation: int = 1) -> int:
    """Padding that keeps the length of a stride-1 convolution with an odd kernel."""
    return (kernel_size * dilation - dilation) // 2


def gated_tanh_sigmoid(a: torch.Tensor, b: torch.Tensor, channels: int) -> torch.Tensor:
    """WaveNet gate: ``tanh(x[:, :C]) * sigmoid(x[:, C:])`` with ``x = a + b``.

    Args:
        a, b: (B, 2C, T), broadcastable against each other.
        channels: C.

    Returns:
        (B, C, T)
    """
    x = a + b
    return torch.tanh(x[:, :channels]) * torch.sigmoid(x[:, channels:])


def slice_segments(x: torch.Tensor, starts: torch.Tensor, segment_size: int) -> torch.Tensor:
    """Cut one window per batch item.

    Args:
        x: (B, C, T)
        starts: (B,) start index per item.
        segment_size: window length S.

    Returns:
        (B, C, S)
    """
    out = torch.zeros_like(x[:, :, :segment_size])
    for i in range(x.size(0)):
        start = int(starts[i])
        out[i] = x[i, :, start : start + segment_size]
    return out


def rand_slice_segments(
    x: torch.Tensor, lengths: torch.Tensor | None = None, segment_size: int = 4
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random training windows inside each item's valid length.

    Args:
        x: (B, C, T)
        lengths: (B,) valid lengths; defaults to T for all.
        segment_size: window length S (must not exceed any length).

    Returns:
        ((B, C, S) windows, (B,) start indices)
    """
    b, _, t = x.shape
    if lengths is None:
        lengths = torch.full((b,), t, device=x.device)
    max_start = lengths - segment_size + 1
    starts = (torch.rand(b, device=x.device) * max_start).to(torch.long)
    return slice_segments(x, starts, segment_size), starts
