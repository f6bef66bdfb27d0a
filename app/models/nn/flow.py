"""Normalising flow of VITS: affine coupling layers around a WaveNet, with channel flips."""

from __future__ import annotations

import torch
from torch import nn

from app.models.nn.wavenet import WaveNet


class Flip(nn.Module):
    """Reverse the channel order so the next coupling transforms the other half. No parameters."""

    def forward(
        self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None = None, reverse: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor] | torch.Tensor:
        """(B, C, T) -> (B, C, T); forward also returns a zero log-determinant (B,)."""
        x = torch.flip(x, [1])
        if reverse:
            return x
        return x, torch.zeros(x.size(0), dtype=x.dtype, device=x.device)


class ResidualCouplingLayer(nn.Module):
    """Affine coupling: the first half of the channels predicts a shift (and scale) of the second.

    Args:
        channels: C (even); each half has C/2 channels.
        hidden_channels: WaveNet width.
        kernel_size, dilation_rate, n_layers: WaveNet shape.
        p_dropout: WaveNet dropout.
        gin_channels: conditioning width (0 = none).
        mean_only: shift only (log-scale 0), as every VITS-family model here uses.
        wavenet: a WaveNet shared with other layers (so-vits-svc ``share_parameter``); built if None.
    """

    def __init__(
        self,
        channels: int,
        hidden_channels: int,
        kernel_size: int,
        dilation_rate: int,
        n_layers: int,
        p_dropout: float = 0.0,
        gin_channels: int = 0,
        mean_only: bool = False,
        wavenet: WaveNet | None = None,
    ) -> None:
        super().__init__()
        if channels % 2:
            raise ValueError(f"coupling channels must be even, got {channels}")
        self.half_channels = channels // 2
        self.mean_only = mean_only
        self.pre = nn.Conv1d(self.half_channels, hidden_channels, 1)
        self.enc = wavenet or WaveNet(
            hidden_channels,
            kernel_size,
            dilation_rate,
            n_layers,
            gin_channels=gin_channels,
            p_dropout=p_dropout,
        )
        self.post = nn.Conv1d(hidden_channels, self.half_channels * (1 if mean_only else 2), 1)
        # Zero init makes the untrained flow the identity.
        nn.init.zeros_(self.post.weight)
        nn.init.zeros_(self.post.bias)

    def forward(
        self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None = None, reverse: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor] | torch.Tensor:
        """x (B, C, T), x_mask (B, 1, T), g (B, gin, 1) or None.

        Forward returns (y (B, C, T), log-determinant (B,)); reverse returns the inverse (B, C, T).
        """
        x0, x1 = torch.split(x, [self.half_channels] * 2, 1)
        h = self.enc(self.pre(x0) * x_mask, x_mask, g=g)
        stats = self.post(h) * x_mask
        if self.mean_only:
            m, logs = stats, None
        else:
            m, logs = torch.split(stats, [self.half_channels] * 2, 1)
        if reverse:
            if logs is None:
                x1 = (x1 - m) * x_mask
            else:
                x1 = (x1 - m) * torch.exp(-logs) * x_mask
            return torch.cat([x0, x1], 1)
        if logs is None:
            x1 = m + x1 * x_mask
            logdet = torch.zeros(x.size(0), dtype=x.dtype, device=x.device)
        else:
            x1 = m + x1 * torch.exp(logs) * x_mask
            logdet = torch.sum(logs, [1, 2])
        return torch.cat([x0, x1], 1), logdet


class ResidualCouplingBlock(nn.Module):
    """``n_flows`` mean-only coupling layers, each followed by a :class:`Flip` (keys ``flows.{2i}``).

    Args:
        channels: C of the latent.
        hidden_channels, kernel_size, dilation_rate, n_layers: WaveNet shape per coupling.
        n_flows: number of couplings (4 upstream).
        gin_channels: conditioning width.
        share_parameter: one WaveNet for all couplings (so-vits-svc option), registered as ``wn``.
    """

    def __init__(
        self,
        channels: int,
        hidden_channels: int,
        kernel_size: int,
        dilation_rate: int,
        n_layers: int,
        n_flows: int = 4,
        gin_channels: int = 0,
        share_parameter: bool = False,
    ) -> None:
        super().__init__()
        self.flows = nn.ModuleList()
        self.wn = (
            WaveNet(hidden_channels, kernel_size, dilation_rate, n_layers, gin_channels=gin_channels)
            if share_parameter
            else None
        )
        for _ in range(n_flows):
            self.flows.append(
                ResidualCouplingLayer(
                    channels,
                    hidden_channels,
                    kernel_size,
                    dilation_rate,
                    n_layers,
                    gin_channels=gin_channels,
                    mean_only=True,
                    wavenet=self.wn,
                )
            )
            self.flows.append(Flip())

    def forward(
        self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None = None, reverse: bool = False
    ) -> torch.Tensor:
        """(B, C, T) -> (B, C, T): data -> prior (reverse False) or prior -> data (reverse True)."""
        if reverse:
            for flow in reversed(self.flows):
                x = flow(x, x_mask, g=g, reverse=True)
        else:
            for flow in self.flows:
                x, _ = flow(x, x_mask, g=g)
        return x
