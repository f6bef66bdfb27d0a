"""Building blocks of the F5-TTS diffusion transformer (DiT) that GPT-SoVITS v3/v4 uses as its
flow-matching estimator (upstream ``GPT_SoVITS/f5_tts/model/modules.py``).

Parameter names equal upstream's, so ``cfm.estimator.*`` keys load as stored. Sequences are
``(B, N, D)`` (time second) throughout, as upstream's DiT; convolutions transpose internally.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from app.models.nn.rotary import apply_rotary

# Width of the sinusoidal time features fed to the timestep MLP (upstream freq_embed_dim).
TIME_FREQ_DIM = 256
# Time in [0, 1] is multiplied by this before the sinusoids (upstream SinusPositionEmbedding scale).
TIME_SCALE = 1000.0
# LayerNorm epsilon of every DiT norm.
NORM_EPS = 1e-6
# Convolutional position embedding: kernel 31, 16 groups.
POS_CONV_KERNEL, POS_CONV_GROUPS = 31, 16


def sinusoidal_time(t: torch.Tensor, dim: int = TIME_FREQ_DIM) -> torch.Tensor:
    """(B,) times -> (B, dim) ``[sin(1000 t f_i), cos(1000 t f_i)]``, f_i = 10000^(-i/(dim/2 - 1)), float32."""
    half = dim // 2
    step = math.log(10000) / (half - 1)
    freqs = torch.exp(torch.arange(half, device=t.device).float() * -step)
    angles = TIME_SCALE * t.unsqueeze(1) * freqs.unsqueeze(0)  # (B, half); upstream's product order
    return torch.cat((angles.sin(), angles.cos()), dim=-1)


class TimestepEmbedding(nn.Module):
    """Scalar per batch item (flow time t, or step size d) -> (B, dim) conditioning vector.

    ``time_mlp``: Linear(256, dim) -> SiLU -> Linear(dim, dim) on :func:`sinusoidal_time`.
    """

    def __init__(self, dim: int, freq_dim: int = TIME_FREQ_DIM) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.time_mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """(B,) -> (B, dim)"""
        return self.time_mlp(sinusoidal_time(t, self.freq_dim).to(t.dtype))


class GRN(nn.Module):
    """Global response normalisation (ConvNeXt-V2): ``gamma * (x * N) + beta + x`` with
    ``N = ||x||_time / mean_channels(||x||_time)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, D) -> (B, N, D)"""
        gx = torch.norm(x, p=2, dim=1, keepdim=True)  # (B, 1, D): L2 over time
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        return self.gamma * (x * nx) + self.beta + x


class ConvNeXtV2Block(nn.Module):
    """Residual ConvNeXt-V2 block: depthwise conv k7 -> LayerNorm -> Linear -> GELU -> GRN -> Linear.

    Args:
        dim: width D.
        intermediate_dim: width of the pointwise expansion.
    """

    def __init__(self, dim: int, intermediate_dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=NORM_EPS)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.act = nn.GELU()
        self.grn = GRN(intermediate_dim)
        self.pwconv2 = nn.Linear(intermediate_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, D) -> (B, N, D)"""
        h = self.dwconv(x.transpose(1, 2)).transpose(1, 2)  # conv over time on (B, D, N)
        h = self.pwconv2(self.grn(self.act(self.pwconv1(self.norm(h)))))
        return x + h


class ConvPositionEmbedding(nn.Module):
    """Two grouped convolutions (k31, 16 groups) with Mish: a relative position signal, (B, N, D)."""

    def __init__(self, dim: int, kernel_size: int = POS_CONV_KERNEL, groups: int = POS_CONV_GROUPS) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.conv1d = nn.Sequential(
            nn.Conv1d(dim, dim, kernel_size, groups=groups, padding=pad),
            nn.Mish(),
            nn.Conv1d(dim, dim, kernel_size, groups=groups, padding=pad),
            nn.Mish(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, D) -> (B, N, D)"""
        return self.conv1d(x.transpose(1, 2)).transpose(1, 2)


class AdaLayerNormZero(nn.Module):
    """LayerNorm modulated by the time vector; also returns the gates and the FFN's shift/scale.

    ``linear(silu(emb))`` splits into shift/scale/gate for attention, then shift/scale/gate for
    the feed-forward (upstream order).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.silu = nn.SiLU()
        self.linear = nn.Linear(dim, dim * 6)
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=NORM_EPS)

    def forward(
        self, x: torch.Tensor, emb: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, N, D), emb (B, D) -> modulated x (B, N, D), gate_msa, shift_mlp, scale_mlp, gate_mlp (B, D)"""
        params = self.linear(self.silu(emb))
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = torch.chunk(params, 6, dim=1)
        x = self.norm(x) * (1 + scale_msa[:, None]) + shift_msa[:, None]
        return x, gate_msa, shift_mlp, scale_mlp, gate_mlp


class AdaLayerNormZeroFinal(nn.Module):
    """Final modulated LayerNorm: ``linear(silu(emb))`` gives scale then shift (upstream order)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.silu = nn.SiLU()
        self.linear = nn.Linear(dim, dim * 2)
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=NORM_EPS)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """x (B, N, D), emb (B, D) -> (B, N, D)"""
        scale, shift = torch.chunk(self.linear(self.silu(emb)), 2, dim=1)
        return self.norm(x) * (1 + scale)[:, None, :] + shift[:, None, :]


class FeedForward(nn.Module):
    """Linear -> GELU (tanh approximation) -> dropout -> Linear; keys ``ff.0.0`` and ``ff.2``."""

    def __init__(self, dim: int, mult: int, dropout: float = 0.0) -> None:
        super().__init__()
        inner = int(dim * mult)
        self.ff = nn.Sequential(
            nn.Sequential(nn.Linear(dim, inner), nn.GELU(approximate="tanh")),
            nn.Dropout(dropout),
            nn.Linear(inner, dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, D) -> (B, N, D)"""
        return self.ff(x)


class Attention(nn.Module):
    """Multi-head self-attention with rotary positions on the (pre-split) queries and keys.

    Args:
        dim: model width D.
        heads, dim_head: heads x width per head (the inner width, may differ from D).
        dropout: output dropout.
    """

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        inner = heads * dim_head
        self.to_q = nn.Linear(dim, inner)
        self.to_k = nn.Linear(dim, inner)
        self.to_v = nn.Linear(dim, inner)
        self.to_out = nn.ModuleList([nn.Linear(inner, dim), nn.Dropout(dropout)])

    def forward(
        self, x: torch.Tensor, rope: torch.Tensor | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x (B, N, D), rope (1, N, dim_head) angles, mask (B, N) True at valid frames -> (B, N, D)"""
        b, n, _ = x.shape
        q, k, v = self.to_q(x), self.to_k(x), self.to_v(x)  # (B, N, inner)
        if rope is not None:
            # Upstream rotates before the head split: only the first dim_head channels move.
            q, k = apply_rotary(q, rope), apply_rotary(k, rope)
        q, k, v = (y.view(b, n, self.heads, -1).transpose(1, 2) for y in (q, k, v))  # (B, H, N, dh)
        attn_mask = None if mask is None else mask[:, None, None, :].expand(b, self.heads, n, n)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, H, N, dh)
        out = out.transpose(1, 2).reshape(b, n, -1)  # (B, N, inner)
        out = self.to_out[1](self.to_out[0](out))
        if mask is not None:
            out = out.masked_fill(~mask.unsqueeze(-1), 0.0)
        return out


class DiTBlock(nn.Module):
    """adaLN-Zero transformer block: gated attention and gated feed-forward, both time-modulated.

    Args:
        dim: width D; heads, dim_head: attention shape; ff_mult: FFN width factor; dropout.
    """

    def __init__(self, dim: int, heads: int, dim_head: int, ff_mult: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.attn_norm = AdaLayerNormZero(dim)
        self.attn = Attention(dim, heads, dim_head, dropout)
        self.ff_norm = nn.LayerNorm(dim, elementwise_affine=False, eps=NORM_EPS)
        self.ff = FeedForward(dim, ff_mult, dropout)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        rope: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (B, N, D), t (B, D) time vector, rope (1, N, dim_head), mask (B, N) -> (B, N, D)"""
        norm, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.attn_norm(x, t)
        x = x + gate_msa.unsqueeze(1) * self.attn(norm, rope, mask)
        norm = self.ff_norm(x) * (1 + scale_mlp[:, None]) + shift_mlp[:, None]
        return x + gate_mlp.unsqueeze(1) * self.ff(norm)
