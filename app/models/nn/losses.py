"""GAN and VAE losses of VITS (LSGAN, feature matching, KL between posterior and flowed prior)."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def discriminator_loss(
    real_scores: Sequence[torch.Tensor], fake_scores: Sequence[torch.Tensor]
) -> tuple[torch.Tensor, list[float], list[float]]:
    """LSGAN discriminator loss: sum over discriminators of mean((1-D(y))^2) + mean(D(y_hat)^2).

    Returns (total, per-discriminator real losses, per-discriminator fake losses as floats).
    """
    if len(real_scores) != len(fake_scores):
        raise ValueError("need one real and one fake score per discriminator")
    r_terms = [torch.mean((1 - dr.float()) ** 2) for dr in real_scores]
    g_terms = [torch.mean(dg.float() ** 2) for dg in fake_scores]
    total = torch.stack(r_terms).sum() + torch.stack(g_terms).sum()
    r_losses = [t.item() for t in r_terms]
    g_losses = [t.item() for t in g_terms]
    return total, r_losses, g_losses


def generator_loss(fake_scores: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """LSGAN generator loss: sum over discriminators of mean((1-D(y_hat))^2)."""
    losses = [torch.mean((1 - dg.float()) ** 2) for dg in fake_scores]
    return torch.stack(losses).sum(), losses


def feature_loss(
    real_fmaps: Sequence[Sequence[torch.Tensor]], fake_fmaps: Sequence[Sequence[torch.Tensor]]
) -> torch.Tensor:
    """Feature matching: 2 x sum of mean |fmap_real - fmap_fake| over every layer of every D."""
    terms = [
        torch.mean(torch.abs(r.float().detach() - g.float()))
        for dr, dg in zip(real_fmaps, fake_fmaps, strict=True)
        for r, g in zip(dr, dg, strict=True)
    ]
    return torch.stack(terms).sum() * 2


def kl_loss(
    z_p: torch.Tensor, logs_q: torch.Tensor, m_p: torch.Tensor, logs_p: torch.Tensor, z_mask: torch.Tensor
) -> torch.Tensor:
    """KL term of VITS, averaged over valid frames.

    Args:
        z_p: (B, C, T) posterior sample mapped through the flow.
        logs_q: (B, C, T) posterior log-std.
        m_p, logs_p: (B, C, T) prior mean and log-std.
        z_mask: (B, 1, T).
    """
    z_p, logs_q, m_p, logs_p, z_mask = (t.float() for t in (z_p, logs_q, m_p, logs_p, z_mask))
    kl = logs_p - logs_q - 0.5 + 0.5 * ((z_p - m_p) ** 2) * torch.exp(-2.0 * logs_p)
    return torch.sum(kl * z_mask) / torch.sum(z_mask)
