"""The three encoders of the so-vits-svc synthesizer.

- :class:`PriorEncoder` (upstream ``TextEncoder``, key ``enc_p`` / ``enc_p_``): content + coarse
  pitch -> mean and log-std of the prior over the latent.
- :class:`PosteriorEncoder` (``enc_q``, training only): linear spectrogram -> latent sample.
- :class:`F0Decoder` (``f0_decoder``, 4.1 auto pitch): content + normalised log-f0 -> log-f0.
"""

from __future__ import annotations

import torch
from torch import nn

from app.models.nn.attention import CausalTransformer, TransformerEncoder
from app.models.nn.masks import length_mask
from app.models.nn.wavenet import WaveNet

PITCH_BINS = 256  # rows of the coarse-pitch embedding


class PriorEncoder(nn.Module):
    """Content frames (+ coarse pitch) -> prior statistics ``m_p``, ``logs_p``.

    Args:
        out_channels: latent width (inter_channels).
        hidden_channels, filter_channels, n_heads, n_layers, kernel_size, p_dropout: transformer.
        in_channels: if set, a Conv1d(in -> hidden, k1) pre-net inside this module (innnky 32k
            layout); 4.1 applies its pre-net outside.
    """

    def __init__(
        self,
        out_channels: int,
        hidden_channels: int,
        filter_channels: int,
        n_heads: int,
        n_layers: int,
        kernel_size: int,
        p_dropout: float,
        in_channels: int | None = None,
    ) -> None:
        super().__init__()
        self.out_channels = out_channels
        if in_channels is not None:
            self.pre = nn.Conv1d(in_channels, hidden_channels, 1)
        self.proj = nn.Conv1d(hidden_channels, 2 * out_channels, 1)
        self.f0_emb = nn.Embedding(PITCH_BINS, hidden_channels)
        self.enc_ = TransformerEncoder(
            hidden_channels, filter_channels, n_heads, n_layers, kernel_size, p_dropout
        )

    def forward(
        self, x: torch.Tensor, x_mask: torch.Tensor, coarse_f0: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C, T), x_mask (B, 1, T), coarse_f0 (B, T) int64 -> m_p, logs_p (B, inter, T)."""
        if hasattr(self, "pre"):
            x = self.pre(x) * x_mask
        x = x + self.f0_emb(coarse_f0).transpose(1, 2)  # (B, T, C) -> (B, C, T)
        x = self.enc_(x * x_mask, x_mask)
        stats = self.proj(x) * x_mask
        m, logs = torch.split(stats, self.out_channels, dim=1)
        return m, logs


class PosteriorEncoder(nn.Module):
    """Linear spectrogram -> latent ``z = m + eps * exp(logs)`` (VITS posterior; WaveNet 16 x k5).

    Args:
        in_channels: spectrogram bins.
        out_channels: latent width.
        hidden_channels: WaveNet width.
        gin_channels: speaker conditioning width.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hidden_channels: int,
        gin_channels: int,
        kernel_size: int = 5,
        n_layers: int = 16,
    ) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.pre = nn.Conv1d(in_channels, hidden_channels, 1)
        self.enc = WaveNet(hidden_channels, kernel_size, 1, n_layers, gin_channels=gin_channels)
        self.proj = nn.Conv1d(hidden_channels, 2 * out_channels, 1)

    def forward(
        self, spec: torch.Tensor, lengths: torch.Tensor, g: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """spec (B, F, T), lengths (B,), g (B, gin, 1) -> z, m, logs (B, inter, T), mask (B, 1, T)."""
        mask = length_mask(lengths, spec.size(2), spec.dtype)
        x = self.enc(self.pre(spec) * mask, mask, g=g)
        stats = self.proj(x) * mask
        m, logs = torch.split(stats, self.out_channels, dim=1)
        z = (m + torch.randn_like(m) * torch.exp(logs)) * mask
        return z, m, logs, mask


class F0Decoder(nn.Module):
    """Predicts normalised-mel log-f0 from the content pre-net output (4.1 auto pitch).

    ``forward(x, norm_lf0, mask, g)``: ``x`` is detached (the pitch loss must not shape the
    content path), the speaker and the mean-removed input pitch are added, then Conv1d k3 ->
    causal transformer -> Conv1d(hidden -> 1).
    """

    def __init__(
        self,
        hidden_channels: int,
        filter_channels: int,
        n_heads: int,
        n_layers: int,
        kernel_size: int,
        p_dropout: float,
        spk_channels: int,
    ) -> None:
        super().__init__()
        self.prenet = nn.Conv1d(hidden_channels, hidden_channels, 3, padding=1)
        self.decoder = CausalTransformer(
            hidden_channels, filter_channels, n_heads, n_layers, kernel_size, p_dropout
        )
        self.proj = nn.Conv1d(hidden_channels, 1, 1)
        self.f0_prenet = nn.Conv1d(1, hidden_channels, 3, padding=1)
        self.cond = nn.Conv1d(spk_channels, hidden_channels, 1)

    def forward(
        self, x: torch.Tensor, norm_lf0: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None
    ) -> torch.Tensor:
        """x (B, hidden, T), norm_lf0 (B, 1, T), x_mask (B, 1, T), g (B, gin, 1|T) -> (B, 1, T)."""
        x = x.detach()
        if g is not None:
            x = x + self.cond(g)
        x = x + self.f0_prenet(norm_lf0)
        x = self.prenet(x) * x_mask
        x = self.decoder(x * x_mask, x_mask)
        return self.proj(x) * x_mask


def f0_to_lf0(f0: torch.Tensor) -> torch.Tensor:
    """Hz (B, T) -> the F0 decoder's target scale (B, 1, T): mel(f0) / 500, mel = 2595 log10(1 + f/700)."""
    return 2595.0 * torch.log10(1.0 + f0.unsqueeze(1) / 700.0) / 500.0


def lf0_to_f0(lf0: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`f0_to_lf0`: (B, 1, T) -> Hz (B, T)."""
    return (700.0 * (torch.pow(10.0, lf0 * 500.0 / 2595.0) - 1.0)).squeeze(1)


def normalize_lf0(
    lf0: torch.Tensor, x_mask: torch.Tensor, uv: torch.Tensor, random_scale: bool = False
) -> torch.Tensor:
    """Remove each item's mean log-f0 over voiced frames (B, 1, T); training also scales by U(0.8, 1.2).

    An item without voiced frames keeps its values (the mean is taken as ~0: sum / 9999, upstream).
    """
    voiced = uv.sum(dim=1, keepdim=True)  # (B, 1)
    voiced = torch.where(voiced == 0, torch.full_like(voiced, 9999.0), voiced)
    means = (lf0[:, 0, :] * uv).sum(dim=1, keepdim=True) / voiced  # (B, 1)
    if random_scale:
        factor = torch.empty(lf0.size(0), 1, device=lf0.device).uniform_(0.8, 1.2)
    else:
        factor = torch.ones(lf0.size(0), 1, device=lf0.device)
    return (lf0 - means.unsqueeze(-1)) * factor.unsqueeze(-1) * x_mask
