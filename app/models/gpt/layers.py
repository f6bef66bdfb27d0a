"""The building blocks of the GPT (:mod:`app.models.gpt.model`), named as upstream's so its weights load.

Shared with the decoding engine (:mod:`app.models.gpt.engine`), which runs the same maths on packed
kernels: the sine table and the LayerNorm epsilon live here so that both read one definition.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from app.models.gpt.config import GPTConfig

# nn.LayerNorm's default, which upstream's layers keep.
LAYER_NORM_EPS = 1e-5


@lru_cache(maxsize=8)
def sine_table(length: int, dim: int) -> torch.Tensor:
    """``(length, dim)`` float32 sine/cosine table, computed with upstream's float32 arithmetic."""
    position = torch.arange(0, length, dtype=torch.float32).unsqueeze(1)
    rate = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * -(math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * rate)
    table[:, 1::2] = torch.cos(position * rate)
    return table


class TokenEmbedding(nn.Module):
    """Embedding table with dropout; the table is named ``word_embeddings`` as upstream."""

    def __init__(self, vocab_size: int, dim: int, dropout: float) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` ids -> ``(B, T, dim)``."""
        return self.dropout(self.word_embeddings(ids))


class ScaledSinePosition(nn.Module):
    """Adds ``alpha * PE[positions]`` (``alpha`` a learnt scalar), then dropout."""

    def __init__(self, dropout: float) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, D)`` -> same, positions ``0..T-1``."""
        pe = sine_table(max(x.shape[1], 1), x.shape[2])[: x.shape[1]].to(x.device, x.dtype)
        return self.dropout(x + self.alpha * pe)


class SelfAttention(nn.Module):
    """Multi-head self-attention with the packed ``in_proj`` ([q; k; v] rows) of ``nn.MultiheadAttention``."""

    def __init__(self, dim: int, n_head: int, dropout: float) -> None:
        super().__init__()
        self.n_head = n_head
        self.dropout = dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """``x (B, T, D)``, ``allowed (B or 1, 1, T, T)`` bool (True = may attend) -> ``(B, T, D)``."""
        B, T, D = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = qkv.view(B, T, 3, self.n_head, D // self.n_head).permute(2, 0, 3, 1, 4)  # 3 x (B, H, T, hd)
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p)
        return self.out_proj(out.transpose(1, 2).reshape(B, T, D))


class DecoderLayer(nn.Module):
    """Post-norm transformer layer (upstream ``TransformerEncoderLayer`` with ``norm_first=False``)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        d, p = config.dim, config.layer_dropout
        self.self_attn = SelfAttention(d, config.n_head, p)
        self.linear1 = nn.Linear(d, config.ffn_dim)
        self.linear2 = nn.Linear(config.ffn_dim, d)
        self.norm1 = nn.LayerNorm(d, eps=LAYER_NORM_EPS)
        self.norm2 = nn.LayerNorm(d, eps=LAYER_NORM_EPS)
        self.dropout = nn.Dropout(p)
        self.dropout1 = nn.Dropout(p)
        self.dropout2 = nn.Dropout(p)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """``(B, T, D)`` -> ``(B, T, D)``."""
        x = self.norm1(x + self.dropout1(self.self_attn(x, allowed)))
        ffn = self.linear2(self.dropout(F.relu(self.linear1(x))))
        return self.norm2(x + self.dropout2(ffn))


class LayerStack(nn.Module):
    """The ``h`` of upstream: a list of layers under ``h.layers``."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.n_layer))

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, allowed)
        return x
