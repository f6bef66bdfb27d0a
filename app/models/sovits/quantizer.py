"""Semantic-token codebook: residual vector quantisation with EMA-trained codebooks.

GPT-SoVITS uses one codebook of 1024 entries over the 768-wide projected HuBERT features; the
GPT predicts indices into it. Keys follow upstream (``vq.layers.0._codebook.embed`` ...), including
the EMA buffers ``inited``, ``cluster_size`` and ``embed_avg`` that training updates.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# EMA settings of upstream's ResidualVectorQuantizer (decay 0.99, dead codes below 2 hits).
EMA_DECAY = 0.99
EMA_EPSILON = 1e-5
DEAD_CODE_THRESHOLD = 2


class EuclideanCodebook(nn.Module):
    """One codebook: nearest entry by squared Euclidean distance; EMA updates in training.

    Args:
        dim: vector width D.
        size: number of entries K.
    """

    def __init__(self, dim: int, size: int) -> None:
        super().__init__()
        self.size = size
        # Upstream builds with k-means init pending (inited = 0, zero codebook); files hold real values.
        self.register_buffer("inited", torch.zeros(1))
        self.register_buffer("cluster_size", torch.zeros(size))
        self.register_buffer("embed", torch.zeros(size, dim))
        self.register_buffer("embed_avg", torch.zeros(size, dim))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (N,) index of the nearest entry."""
        embed = self.embed.t()  # (D, K)
        # -||x - e||^2 without the constant-per-row ||x||^2 changing the argmax.
        neg_dist = -(x.pow(2).sum(1, keepdim=True) - 2 * x @ embed + embed.pow(2).sum(0, keepdim=True))
        return neg_dist.max(dim=-1).indices

    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """(...) indices -> (..., D) vectors."""
        return F.embedding(indices, self.embed)

    @torch.no_grad()
    def ema_update(self, x: torch.Tensor, indices: torch.Tensor) -> None:
        """Move entries towards the mean of the vectors assigned to them (VQ-VAE EMA, eq. 6-8).

        Args:
            x: (N, D) vectors of this batch.
            indices: (N,) their assigned entries.
        """
        if not bool(self.inited):
            # Stand-in for upstream's k-means init: entries drawn from the first batch.
            pick = torch.randint(0, x.size(0), (self.size,), device=x.device)
            self.embed.copy_(x[pick])
            self.embed_avg.copy_(x[pick])
            self.inited.fill_(1)
            return
        onehot = F.one_hot(indices, self.size).type(x.dtype)  # (N, K)
        self.cluster_size.mul_(EMA_DECAY).add_(onehot.sum(0), alpha=1 - EMA_DECAY)
        self.embed_avg.mul_(EMA_DECAY).add_((x.t() @ onehot).t(), alpha=1 - EMA_DECAY)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + EMA_EPSILON) / (n + self.size * EMA_EPSILON) * n  # Laplace
        self.embed.copy_(self.embed_avg / smoothed.unsqueeze(1))
        dead = self.cluster_size < DEAD_CODE_THRESHOLD
        if dead.any():
            # Re-seed rarely used entries with random vectors of this batch.
            pick = torch.randint(0, x.size(0), (int(dead.sum()),), device=x.device)
            self.embed[dead] = x[pick]


class VectorQuantization(nn.Module):
    """Quantise (B, D, T) features with one codebook (key ``_codebook``)."""

    def __init__(self, dim: int, size: int) -> None:
        super().__init__()
        self._codebook = EuclideanCodebook(dim, size)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D, T) -> (B, T) indices."""
        b, d, t = x.shape
        return self._codebook.encode(x.transpose(1, 2).reshape(b * t, d)).view(b, t)

    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, T) indices -> (B, D, T)."""
        return self._codebook.decode(indices).transpose(1, 2)


class _Layers(nn.Module):
    def __init__(self, dim: int, size: int, n_q: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(VectorQuantization(dim, size) for _ in range(n_q))


class ResidualVectorQuantizer(nn.Module):
    """Residual VQ: quantiser i encodes what quantisers < i left over (``n_q`` = 1 here).

    Args:
        dim: feature width D (768).
        size: entries per codebook K (1024).
        n_q: number of codebooks.
    """

    def __init__(self, dim: int, size: int, n_q: int = 1) -> None:
        super().__init__()
        self.vq = _Layers(dim, size, n_q)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D, T) -> (n_q, B, T) indices."""
        codes = []
        residual = x
        for layer in self.vq.layers:
            idx = layer.encode(residual)
            residual = residual - layer.decode(idx)
            codes.append(idx)
        return torch.stack(codes)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """(n_q, B, T) indices -> (B, D, T) summed vectors."""
        out = self.vq.layers[0].decode(codes[0])
        for layer, idx in zip(self.vq.layers[1:], codes[1:], strict=False):
            out = out + layer.decode(idx)
        return out

    def forward(
        self, x: torch.Tensor, update: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Quantise for training.

        Args:
            x: (B, D, T) features.
            update: run the EMA codebook update (only when the quantiser is being trained).

        Returns:
            (quantized (B, D, T) with a straight-through gradient when updating,
             codes (n_q, B, T), commitment loss (scalar, 0 when not updating))
        """
        codes = self.encode(x)
        quantized = self.decode(codes)
        if not update:
            return quantized, codes, torch.zeros((), device=x.device)
        residual = x
        for layer, idx in zip(self.vq.layers, codes, strict=True):
            b, d, t = residual.shape
            layer._codebook.ema_update(residual.detach().transpose(1, 2).reshape(b * t, d), idx.reshape(-1))
            residual = residual - layer.decode(idx)
        quantized = self.decode(codes)
        commit = F.mse_loss(quantized.detach(), x)
        return x + (quantized - x).detach(), codes, commit
