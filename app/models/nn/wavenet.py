"""The non-causal WaveNet stack (upstream ``modules.WN``) used by flows and posterior encoders."""

from __future__ import annotations

import torch
from torch import nn

from app.models.nn.masks import gated_tanh_sigmoid, same_padding
from app.models.nn.norm import WNConv1d


class WaveNet(nn.Module):
    """Gated dilated convolutions with residual and skip paths, optional global conditioning.

    Every layer: ``a = gate(in_layer(x) + cond_i)``; ``res_skip_layer(a)`` splits into a residual
    added to ``x`` and a skip summed into the output (the last layer has only the skip part).

    Args:
        hidden_channels: width C of the stack (input and output).
        kernel_size: odd temporal kernel.
        dilation_rate: dilation of layer i is ``dilation_rate ** i``.
        n_layers: depth.
        gin_channels: width of the conditioning vector g (0 = unconditioned).
        p_dropout: dropout on the gated activations.
    """

    def __init__(
        self,
        hidden_channels: int,
        kernel_size: int,
        dilation_rate: int,
        n_layers: int,
        gin_channels: int = 0,
        p_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"WaveNet kernel_size must be odd, got {kernel_size}")
        self.hidden_channels = hidden_channels
        self.n_layers = n_layers
        self.gin_channels = gin_channels
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        self.drop = nn.Dropout(p_dropout)
        if gin_channels:
            # One 1x1 conv produces the conditioning of all layers at once: (B, 2*C*n_layers, T).
            self.cond_layer = WNConv1d(gin_channels, 2 * hidden_channels * n_layers, 1)
        for i in range(n_layers):
            dilation = dilation_rate**i
            self.in_layers.append(
                WNConv1d(
                    hidden_channels,
                    2 * hidden_channels,
                    kernel_size,
                    dilation=dilation,
                    padding=same_padding(kernel_size, dilation),
                )
            )
            last = i == n_layers - 1
            self.res_skip_layers.append(WNConv1d(hidden_channels, (1 if last else 2) * hidden_channels, 1))

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, C, T), x_mask (B, 1, T), g (B, gin, 1 or T) or None -> (B, C, T)"""
        c = self.hidden_channels
        output = torch.zeros_like(x)
        if g is not None:
            g = self.cond_layer(g)
        for i in range(self.n_layers):
            x_in = self.in_layers[i](x)
            g_l = g[:, 2 * c * i : 2 * c * (i + 1)] if g is not None else torch.zeros_like(x_in)
            acts = self.drop(gated_tanh_sigmoid(x_in, g_l, c))
            res_skip = self.res_skip_layers[i](acts)
            if i < self.n_layers - 1:
                x = (x + res_skip[:, :c]) * x_mask
                output = output + res_skip[:, c:]
            else:
                output = output + res_skip
        return output * x_mask
