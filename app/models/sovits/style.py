"""Reference (timbre) encoder: a spectrogram clip -> one global vector (upstream ``MelStyleEncoder``)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class _Linear(nn.Module):
    """``nn.Linear`` under ``.fc`` (upstream ``LinearNorm``; keeps the key names)."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class _Mish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.tanh(F.softplus(x))


class _ConvGLU(nn.Module):
    """Residual gated conv: ``x + a * sigmoid(b)`` with ``[a; b] = conv(x)`` (key ``conv1.conv``)."""

    def __init__(self, channels: int, kernel_size: int, dropout: float) -> None:
        super().__init__()
        self.channels = channels
        self.conv1 = nn.Module()
        self.conv1.conv = nn.Conv1d(channels, 2 * channels, kernel_size, padding=(kernel_size - 1) // 2)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) -> (B, C, T)"""
        a, b = torch.split(self.conv1.conv(x), self.channels, dim=1)
        return x + self.dropout(a * torch.sigmoid(b))


class _SelfAttention(nn.Module):
    """Multi-head self-attention with a residual (upstream ``modules.MultiHeadAttention``).

    Upstream scales scores by sqrt(d_model), not sqrt(d_head); kept for identical outputs.
    """

    def __init__(self, n_heads: int, d_model: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.d_head = d_model // n_heads
        self.temperature = math.sqrt(d_model)
        self.w_qs = nn.Linear(d_model, d_model)
        self.w_ks = nn.Linear(d_model, d_model)
        self.w_vs = nn.Linear(d_model, d_model)
        self.fc = nn.Linear(d_model, d_model)
        self.attn_drop = nn.Dropout(dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None) -> torch.Tensor:
        """x (B, T, C), pad_mask (B, T) True at padding -> (B, T, C)"""
        b, t, _ = x.shape
        h, dh = self.n_heads, self.d_head
        q = self.w_qs(x).view(b, t, h, dh).transpose(1, 2)  # (B, H, T, dh)
        k = self.w_ks(x).view(b, t, h, dh).transpose(1, 2)
        v = self.w_vs(x).view(b, t, h, dh).transpose(1, 2)
        scores = q @ k.transpose(-2, -1) / self.temperature  # (B, H, T, T)
        if pad_mask is not None:
            scores = scores.masked_fill(pad_mask[:, None, None, :], float("-inf"))
        out = self.attn_drop(torch.softmax(scores, dim=-1)) @ v  # (B, H, T, dh)
        out = out.transpose(1, 2).reshape(b, t, h * dh)
        return self.dropout(self.fc(out)) + x


class MelStyleEncoder(nn.Module):
    """Spectrogram frames -> timbre vector by MLP, gated convs, self-attention, masked mean.

    Args:
        in_bins: spectrogram bins read (1025 for v1, 704 after).
        out_channels: width of the vector (gin_channels).
        hidden: internal width (128 upstream).
        kernel_size: temporal conv kernel (5).
        n_heads: attention heads (2).
        dropout: dropout (0.1; inactive in eval).
    """

    def __init__(
        self,
        in_bins: int,
        out_channels: int,
        hidden: int = 128,
        kernel_size: int = 5,
        n_heads: int = 2,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        # Indices 0 and 3 hold the weights (keys spectral.0.fc / spectral.3.fc).
        self.spectral = nn.Sequential(
            _Linear(in_bins, hidden),
            _Mish(),
            nn.Dropout(dropout),
            _Linear(hidden, hidden),
            _Mish(),
            nn.Dropout(dropout),
        )
        self.temporal = nn.Sequential(
            _ConvGLU(hidden, kernel_size, dropout),
            _ConvGLU(hidden, kernel_size, dropout),
        )
        self.slf_attn = _SelfAttention(n_heads, hidden, dropout)
        self.fc = _Linear(hidden, out_channels)

    def forward(self, spec: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """spec (B, in_bins, T), mask (B, 1, T) with 1 at valid frames -> (B, out_channels, 1)"""
        x = spec.transpose(1, 2)  # (B, T, bins)
        pad = (mask.int() == 0).squeeze(1) if mask is not None else None  # (B, T) True at padding
        x = self.spectral(x)
        x = self.temporal(x.transpose(1, 2)).transpose(1, 2)  # convs run on (B, C, T)
        if pad is not None:
            x = x.masked_fill(pad.unsqueeze(-1), 0)
        x = self.fc(self.slf_attn(x, pad))  # (B, T, out)
        if pad is None:
            w = x.mean(dim=1)
        else:
            # Divide first, then sum (upstream order), in float32.
            n_valid = (~pad).sum(dim=1).view(-1, 1, 1)
            w = (x.masked_fill(pad.unsqueeze(-1), 0).float() / n_valid).sum(dim=1).to(x.dtype)
        return w.unsqueeze(-1)
