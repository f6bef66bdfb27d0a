"""HiFi-GAN discriminators: one on the raw waveform (scale) and one per period."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from app.models.nn.hifigan import LRELU_SLOPE
from app.models.nn.masks import same_padding
from app.models.nn.norm import WNConv1d, WNConv2d

# Periods of the VITS multi-period discriminator; GPT-SoVITS v2Pro adds 17 and 23.
DEFAULT_PERIODS = (2, 3, 5, 7, 11)


class DiscriminatorP(nn.Module):
    """Period discriminator: folds the waveform into (T/p, p) and runs 2-D convs along time.

    Args:
        period: p.
        kernel_size, stride: temporal kernel and stride of the first four convs.
        width_divisor: divides every hidden width (1 = upstream's layout, the only one its files fit).
    """

    def __init__(self, period: int, kernel_size: int = 5, stride: int = 3, width_divisor: int = 1) -> None:
        super().__init__()
        self.period = period
        pad = (same_padding(kernel_size), 0)
        widths = (1, *(max(1, w // width_divisor) for w in (32, 128, 512, 1024, 1024)))
        self.convs = nn.ModuleList(
            WNConv2d(widths[i], widths[i + 1], (kernel_size, 1), (stride if i < 4 else 1, 1), padding=pad)
            for i in range(5)
        )
        self.conv_post = WNConv2d(widths[-1], 1, (3, 1), 1, padding=(1, 0))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B, 1, T) -> (scores (B, N), feature maps of every layer)."""
        fmap = []
        b, c, t = x.shape
        if t % self.period:
            n_pad = self.period - t % self.period
            x = F.pad(x, (0, n_pad), "reflect")
            t += n_pad
        x = x.view(b, c, t // self.period, self.period)  # (B, 1, T/p, p)
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            fmap.append(x)
        x = self.conv_post(x)
        fmap.append(x)
        return torch.flatten(x, 1, -1), fmap


class DiscriminatorS(nn.Module):
    """Scale discriminator on the raw waveform: grouped strided 1-D convs.

    ``width_divisor`` divides every width and group count (1 = upstream's layout).
    """

    def __init__(self, width_divisor: int = 1) -> None:
        super().__init__()

        def w(n: int) -> int:
            return max(1, n // width_divisor)

        self.convs = nn.ModuleList(
            [
                WNConv1d(1, w(16), 15, 1, padding=7),
                WNConv1d(w(16), w(64), 41, 4, groups=w(4), padding=20),
                WNConv1d(w(64), w(256), 41, 4, groups=w(16), padding=20),
                WNConv1d(w(256), w(1024), 41, 4, groups=w(64), padding=20),
                WNConv1d(w(1024), w(1024), 41, 4, groups=w(256), padding=20),
                WNConv1d(w(1024), w(1024), 5, 1, padding=2),
            ]
        )
        self.conv_post = WNConv1d(w(1024), 1, 3, 1, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B, 1, T) -> (scores (B, N), feature maps of every layer)."""
        fmap = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            fmap.append(x)
        x = self.conv_post(x)
        fmap.append(x)
        return torch.flatten(x, 1, -1), fmap


class MultiPeriodDiscriminator(nn.Module):
    """``discriminators.0`` = :class:`DiscriminatorS`, then one :class:`DiscriminatorP` per period.

    ``width_divisor`` > 1 builds a narrower discriminator (tests, experiments); upstream's files
    fit only the default.
    """

    def __init__(self, periods: Sequence[int] = DEFAULT_PERIODS, width_divisor: int = 1) -> None:
        super().__init__()
        if width_divisor < 1:
            raise ValueError(f"width_divisor must be >= 1, got {width_divisor}")
        self.discriminators = nn.ModuleList(
            [
                DiscriminatorS(width_divisor),
                *(DiscriminatorP(p, width_divisor=width_divisor) for p in periods),
            ]
        )

    def forward(
        self, y: torch.Tensor, y_hat: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[list[torch.Tensor]], list[list[torch.Tensor]]]:
        """Real y and generated y_hat (B, 1, T) -> (real scores, fake scores, real fmaps, fake fmaps)."""
        real_scores, fake_scores, real_fmaps, fake_fmaps = [], [], [], []
        for d in self.discriminators:
            score_r, fmap_r = d(y)
            score_g, fmap_g = d(y_hat)
            real_scores.append(score_r)
            fake_scores.append(score_g)
            real_fmaps.append(fmap_r)
            fake_fmaps.append(fmap_g)
        return real_scores, fake_scores, real_fmaps, fake_fmaps
