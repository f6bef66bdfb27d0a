"""Multi-head attention with relative positions, the conv FFN, and the two transformer stacks.

Both GPT-SoVITS (``module/attentions.py``) and so-vits-svc 4.1 (``modules/attentions.py``) use the
same building blocks with different switches:

- :class:`TransformerEncoder` (upstream ``Encoder``): post-norm layers, relative-position
  self-attention (window 4 on either side, keys/values share one table across heads), FFN with a
  "same"-padded kernel; optional speaker conditioning through a gated ``cond_pre``/``cond_layer``
  pair applied before every layer (upstream's ``isflow`` switch).
- :class:`CausalTransformer` (so-vits-svc ``FFT``): no relative positions, ``proximal_init``, a
  causal (left-padded) FFN and a lower-triangular attention mask.

Layouts are channels-first, (B, C, T), because every neighbour in these models is a Conv1d.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from app.models.nn.masks import causal_mask, gated_tanh_sigmoid
from app.models.nn.norm import ChannelLayerNorm, WNConv1d

# Masked logits get this value rather than -inf so that fully masked rows stay finite (upstream).
MASKED_SCORE = -1e4


class MultiHeadAttention(nn.Module):
    """Multi-head attention on (B, C, T) tensors with 1x1-conv projections.

    Args:
        channels: model width C (split into ``n_heads`` heads).
        out_channels: width of the output projection.
        n_heads: number of heads.
        p_dropout: dropout on the attention weights.
        window_size: relative-position window on either side (``None`` = no relative positions).
        heads_share: one relative table shared by all heads (else one per head).
        proximal_bias: add ``-log(1 + |i - j|)`` to the scores.
        proximal_init: start ``conv_k`` as a copy of ``conv_q``.
    """

    def __init__(
        self,
        channels: int,
        out_channels: int,
        n_heads: int,
        p_dropout: float = 0.0,
        window_size: int | None = None,
        heads_share: bool = True,
        proximal_bias: bool = False,
        proximal_init: bool = False,
    ) -> None:
        super().__init__()
        if channels % n_heads:
            raise ValueError(f"channels ({channels}) must be divisible by n_heads ({n_heads})")
        self.n_heads = n_heads
        self.k_channels = channels // n_heads
        self.window_size = window_size
        self.proximal_bias = proximal_bias

        self.conv_q = nn.Conv1d(channels, channels, 1)
        self.conv_k = nn.Conv1d(channels, channels, 1)
        self.conv_v = nn.Conv1d(channels, channels, 1)
        self.conv_o = nn.Conv1d(channels, out_channels, 1)
        self.drop = nn.Dropout(p_dropout)

        if window_size is not None:
            n_tables = 1 if heads_share else n_heads
            std = self.k_channels**-0.5
            # Relative offsets -window..+window: 2*window + 1 rows per table.
            self.emb_rel_k = nn.Parameter(torch.randn(n_tables, 2 * window_size + 1, self.k_channels) * std)
            self.emb_rel_v = nn.Parameter(torch.randn(n_tables, 2 * window_size + 1, self.k_channels) * std)

        nn.init.xavier_uniform_(self.conv_q.weight)
        nn.init.xavier_uniform_(self.conv_k.weight)
        nn.init.xavier_uniform_(self.conv_v.weight)
        if proximal_init:
            with torch.no_grad():
                self.conv_k.weight.copy_(self.conv_q.weight)
                self.conv_k.bias.copy_(self.conv_q.bias)

    def forward(
        self, x: torch.Tensor, c: torch.Tensor, attn_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Attend from ``x`` (queries) to ``c`` (keys and values).

        Args:
            x: (B, C, T_q)
            c: (B, C, T_k)
            attn_mask: broadcastable to (B, H, T_q, T_k); 0 marks pairs that may not attend.

        Returns:
            (B, out_channels, T_q)
        """
        q, k, v = self.conv_q(x), self.conv_k(c), self.conv_v(c)
        b, d, t_k = k.shape
        t_q = q.size(2)
        h, dk = self.n_heads, self.k_channels
        q = q.view(b, h, dk, t_q).transpose(2, 3) / math.sqrt(dk)  # (B, H, T_q, dk), pre-scaled
        k = k.view(b, h, dk, t_k).transpose(2, 3)  # (B, H, T_k, dk)
        v = v.view(b, h, dk, t_k).transpose(2, 3)  # (B, H, T_k, dk)

        scores = q @ k.transpose(-2, -1)  # (B, H, T_q, T_k)
        if self.window_size is not None:
            if t_q != t_k:
                raise ValueError("relative positions need self-attention (T_q == T_k)")
            rel_k = self._relative_table(self.emb_rel_k, t_k)  # (1|H, 2T-1, dk)
            rel_logits = q @ rel_k.unsqueeze(0).transpose(-2, -1)  # (B, H, T, 2T-1)
            scores = scores + _relative_to_absolute(rel_logits)
        if self.proximal_bias:
            if t_q != t_k:
                raise ValueError("proximal bias needs self-attention (T_q == T_k)")
            scores = scores + _proximal_bias(t_k).to(device=scores.device, dtype=scores.dtype)
        if attn_mask is not None:
            scores = scores.masked_fill(attn_mask == 0, MASKED_SCORE)
        p_attn = self.drop(F.softmax(scores, dim=-1))  # (B, H, T_q, T_k)
        out = p_attn @ v  # (B, H, T_q, dk)
        if self.window_size is not None:
            rel_v = self._relative_table(self.emb_rel_v, t_k)  # (1|H, 2T-1, dk)
            out = out + _absolute_to_relative(p_attn) @ rel_v.unsqueeze(0)
        out = out.transpose(2, 3).reshape(b, d, t_q)  # (B, H, dk, T_q) -> (B, C, T_q)
        return self.conv_o(out)

    def _relative_table(self, table: torch.Tensor, length: int) -> torch.Tensor:
        """Rows for offsets -(length-1)..(length-1), zero outside the learned window.

        (n_tables, 2W+1, dk) -> (n_tables, 2*length-1, dk)
        """
        w = self.window_size
        assert w is not None
        pad = max(length - (w + 1), 0)
        start = max((w + 1) - length, 0)
        if pad > 0:
            table = F.pad(table, (0, 0, pad, pad))
        return table[:, start : start + 2 * length - 1]


def _relative_to_absolute(x: torch.Tensor) -> torch.Tensor:
    """Re-index scores by relative offset into scores by key position.

    (B, H, T, 2T-1), column j = offset j-(T-1) -> (B, H, T, T), column = key position.
    """
    b, h, t, _ = x.shape
    x = F.pad(x, (0, 1))  # (B, H, T, 2T)
    x = x.view(b, h, 2 * t * t)
    x = F.pad(x, (0, t - 1))  # (B, H, 2T*T + T-1) = (T+1) rows of 2T-1
    return x.view(b, h, t + 1, 2 * t - 1)[:, :, :t, t - 1 :]


def _absolute_to_relative(x: torch.Tensor) -> torch.Tensor:
    """Inverse re-indexing: (B, H, T, T) by key position -> (B, H, T, 2T-1) by relative offset."""
    b, h, t, _ = x.shape
    x = F.pad(x, (0, t - 1))  # (B, H, T, 2T-1)
    x = x.view(b, h, t * (2 * t - 1))
    x = F.pad(x, (t, 0))  # leading zeros skew each row by one after the reshape
    return x.view(b, h, t, 2 * t)[:, :, :, 1:]


def _proximal_bias(length: int) -> torch.Tensor:
    """(1, 1, T, T) bias ``-log(1 + |i - j|)`` favouring nearby positions."""
    r = torch.arange(length, dtype=torch.float32)
    diff = r.unsqueeze(0) - r.unsqueeze(1)
    return -torch.log1p(diff.abs()).unsqueeze(0).unsqueeze(0)


class FFN(nn.Module):
    """Two convolutions with a ReLU (or fast GELU) between, masked before each conv.

    Args:
        in_channels, out_channels, filter_channels: widths (in -> filter -> out).
        kernel_size: temporal kernel of both convs.
        p_dropout: dropout after the activation.
        activation: ``None`` for ReLU, ``"gelu"`` for ``x * sigmoid(1.702 x)``.
        causal: pad on the left only (so-vits-svc ``FFT``); else "same" padding.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        filter_channels: int,
        kernel_size: int,
        p_dropout: float = 0.0,
        activation: str | None = None,
        causal: bool = False,
    ) -> None:
        super().__init__()
        self.activation = activation
        if causal:
            self.pad = (kernel_size - 1, 0)
        else:
            self.pad = ((kernel_size - 1) // 2, kernel_size // 2)
        self.conv_1 = nn.Conv1d(in_channels, filter_channels, kernel_size)
        self.conv_2 = nn.Conv1d(filter_channels, out_channels, kernel_size)
        self.drop = nn.Dropout(p_dropout)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        """(B, C_in, T), mask (B, 1, T) -> (B, C_out, T)"""
        x = self.conv_1(F.pad(x * x_mask, self.pad))
        if self.activation == "gelu":
            x = x * torch.sigmoid(1.702 * x)
        else:
            x = torch.relu(x)
        x = self.drop(x)
        x = self.conv_2(F.pad(x * x_mask, self.pad))
        return x * x_mask


class _Stack(nn.Module):
    """Post-norm transformer layers shared by the two stacks below."""

    attn_name = "attn_layers"
    norm1_name = "norm_layers_1"
    norm2_name = "norm_layers_2"

    def __init__(
        self,
        hidden_channels: int,
        filter_channels: int,
        n_heads: int,
        n_layers: int,
        kernel_size: int,
        p_dropout: float,
        gin_channels: int,
        attention: dict,
        causal_ffn: bool,
    ) -> None:
        super().__init__()
        self.hidden_channels = hidden_channels
        self.n_layers = n_layers
        self.drop = nn.Dropout(p_dropout)
        if gin_channels and self.attn_name == "self_attn_layers":
            # so-vits-svc FFT registers the conditioning layers before the stack.
            self._add_conditioning(hidden_channels, n_layers, gin_channels)
        attn = nn.ModuleList(
            MultiHeadAttention(hidden_channels, hidden_channels, n_heads, p_dropout=p_dropout, **attention)
            for _ in range(n_layers)
        )
        norm1 = nn.ModuleList(ChannelLayerNorm(hidden_channels) for _ in range(n_layers))
        ffn = nn.ModuleList(
            FFN(hidden_channels, hidden_channels, filter_channels, kernel_size, p_dropout, causal=causal_ffn)
            for _ in range(n_layers)
        )
        norm2 = nn.ModuleList(ChannelLayerNorm(hidden_channels) for _ in range(n_layers))
        setattr(self, self.attn_name, attn)
        setattr(self, self.norm1_name, norm1)
        self.ffn_layers = ffn
        setattr(self, self.norm2_name, norm2)
        if gin_channels and self.attn_name == "attn_layers":
            self._add_conditioning(hidden_channels, n_layers, gin_channels)
        self.conditioned = gin_channels > 0

    def _add_conditioning(self, hidden: int, n_layers: int, gin_channels: int) -> None:
        # Before layer i: x = gate(cond_pre(x) + cond_layer(g)[slice i]) (upstream ``isflow``).
        self.cond_pre = nn.Conv1d(hidden, 2 * hidden, 1)
        self.cond_layer = WNConv1d(gin_channels, 2 * hidden * n_layers, 1)

    def _run(
        self, x: torch.Tensor, x_mask: torch.Tensor, attn_mask: torch.Tensor, g: torch.Tensor | None
    ) -> torch.Tensor:
        attn = getattr(self, self.attn_name)
        norm1 = getattr(self, self.norm1_name)
        norm2 = getattr(self, self.norm2_name)
        if g is not None:
            if not self.conditioned:
                raise ValueError("this stack was built without gin_channels; pass g=None")
            g = self.cond_layer(g)  # (B, 2*C*n_layers, 1)
        x = x * x_mask
        c = self.hidden_channels
        for i in range(self.n_layers):
            if g is not None:
                x = gated_tanh_sigmoid(self.cond_pre(x), g[:, 2 * c * i : 2 * c * (i + 1)], c)
            x = norm1[i](x + self.drop(attn[i](x, x, attn_mask)))
            x = norm2[i](x + self.drop(self.ffn_layers[i](x, x_mask)))
        return x * x_mask


class TransformerEncoder(_Stack):
    """Post-norm encoder with relative-position attention (upstream ``attentions.Encoder``).

    Args:
        hidden_channels: model width C.
        filter_channels: FFN width.
        n_heads: attention heads.
        n_layers: layers.
        kernel_size: FFN kernel ("same" padding).
        p_dropout: dropout after attention/FFN and on attention weights.
        window_size: relative-position window (4 upstream).
        gin_channels: >0 adds the gated speaker conditioning before every layer.
    """

    def __init__(
        self,
        hidden_channels: int,
        filter_channels: int,
        n_heads: int,
        n_layers: int,
        kernel_size: int = 1,
        p_dropout: float = 0.0,
        window_size: int | None = 4,
        gin_channels: int = 0,
    ) -> None:
        super().__init__(
            hidden_channels,
            filter_channels,
            n_heads,
            n_layers,
            kernel_size,
            p_dropout,
            gin_channels,
            attention={"window_size": window_size},
            causal_ffn=False,
        )

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, C, T), x_mask (B, 1, T), g (B, gin, 1) or None -> (B, C, T)"""
        attn_mask = x_mask.unsqueeze(2) * x_mask.unsqueeze(-1)  # (B, 1, T, T)
        return self._run(x, x_mask, attn_mask, g)


class CausalTransformer(_Stack):
    """Causal post-norm stack (so-vits-svc ``attentions.FFT``): each step sees only the past.

    Keys: ``self_attn_layers``, ``norm_layers_0``, ``ffn_layers``, ``norm_layers_1``. Arguments as
    :class:`TransformerEncoder`, plus the attention switches upstream passes.
    """

    attn_name = "self_attn_layers"
    norm1_name = "norm_layers_0"
    norm2_name = "norm_layers_1"

    def __init__(
        self,
        hidden_channels: int,
        filter_channels: int,
        n_heads: int,
        n_layers: int = 1,
        kernel_size: int = 1,
        p_dropout: float = 0.0,
        proximal_bias: bool = False,
        proximal_init: bool = True,
        gin_channels: int = 0,
    ) -> None:
        super().__init__(
            hidden_channels,
            filter_channels,
            n_heads,
            n_layers,
            kernel_size,
            p_dropout,
            gin_channels,
            attention={"proximal_bias": proximal_bias, "proximal_init": proximal_init},
            causal_ffn=True,
        )

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, C, T), x_mask (B, 1, T), g (B, gin, 1) or None -> (B, C, T)"""
        # Upstream masks attention by causality only (padding is masked in FFN and at the end).
        attn_mask = causal_mask(x.size(2), device=x.device).to(x.dtype)
        return self._run(x, x_mask, attn_mask, g)
