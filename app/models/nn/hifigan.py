"""HiFi-GAN pieces: the two residual block types and the upsampling generator of VITS.

The convolutions are weight-normalised by default (``weight_g``/``weight_v``, what SoVITS files
store); ``weight_norm=False`` builds plain convolutions (``weight``), the layout of files saved
after upstream's ``remove_weight_norm`` such as the GPT-SoVITS v4 vocoder.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from app.models.nn.masks import same_padding
from app.models.nn.norm import WNConv1d, WNConvTranspose1d

# Leaky-ReLU slope inside the generator and discriminators (HiFi-GAN).
LRELU_SLOPE = 0.1


def _conv1d(weight_norm: bool) -> type[nn.Conv1d]:
    """The Conv1d class of a layer: weight-normalised or plain."""
    return WNConv1d if weight_norm else nn.Conv1d


class ResBlock1(nn.Module):
    """Three (dilated conv, conv) pairs with residual connections (HiFi-GAN "1").

    Args:
        channels: C (kept).
        kernel_size: kernel of every conv.
        dilation: dilations of the three first convs of each pair.
        weight_norm: weight-normalised convs (``weight_g``/``weight_v``) or plain ones (``weight``).
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int = 3,
        dilation: Sequence[int] = (1, 3, 5),
        weight_norm: bool = True,
    ) -> None:
        super().__init__()
        conv = _conv1d(weight_norm)
        self.convs1 = nn.ModuleList(
            conv(channels, channels, kernel_size, dilation=d, padding=same_padding(kernel_size, d))
            for d in dilation
        )
        self.convs2 = nn.ModuleList(
            conv(channels, channels, kernel_size, padding=same_padding(kernel_size)) for _ in dilation
        )

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, T) -> (B, C, T)"""
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            xt = F.leaky_relu(x, LRELU_SLOPE)  # out of place: x is the residual
            if x_mask is not None:
                xt = xt * x_mask
            # In place on fresh conv outputs: same values, less memory traffic (autograd-safe).
            xt = F.leaky_relu(c1(xt), LRELU_SLOPE, inplace=True)
            if x_mask is not None:
                xt = xt * x_mask
            x = c2(xt).add_(x)
        if x_mask is not None:
            x = x * x_mask
        return x


class ResBlock2(nn.Module):
    """Two dilated convs with residual connections (HiFi-GAN "2"); arguments as :class:`ResBlock1`."""

    def __init__(
        self,
        channels: int,
        kernel_size: int = 3,
        dilation: Sequence[int] = (1, 3),
        weight_norm: bool = True,
    ) -> None:
        super().__init__()
        conv = _conv1d(weight_norm)
        self.convs = nn.ModuleList(
            conv(channels, channels, kernel_size, dilation=d, padding=same_padding(kernel_size, d))
            for d in dilation
        )

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, T) -> (B, C, T)"""
        for conv in self.convs:
            xt = F.leaky_relu(x, LRELU_SLOPE)
            if x_mask is not None:
                xt = xt * x_mask
            x = conv(xt).add_(x)
        if x_mask is not None:
            x = x * x_mask
        return x


def make_resblock(
    kind: str, channels: int, kernel_size: int, dilation: Sequence[int], weight_norm: bool = True
) -> nn.Module:
    """``"1"`` -> :class:`ResBlock1`, ``"2"`` -> :class:`ResBlock2` (the config's ``resblock`` value)."""
    if kind == "1":
        return ResBlock1(channels, kernel_size, dilation, weight_norm)
    if kind == "2":
        return ResBlock2(channels, kernel_size, dilation, weight_norm)
    raise ValueError(f"resblock must be '1' or '2', got {kind!r}")


class HiFiGANGenerator(nn.Module):
    """Latent frames -> waveform by transposed-conv upsampling and multi-receptive-field blocks.

    Args:
        initial_channel: latent width.
        resblock: ``"1"`` or ``"2"``.
        resblock_kernel_sizes, resblock_dilation_sizes: one block per (kernel, dilations) per stage.
        upsample_rates, upsample_kernel_sizes: per stage; output length = T * prod(rates).
        upsample_initial_channel: width after ``conv_pre``; halves at every stage.
        gin_channels: global conditioning width added after ``conv_pre`` (0 = none).
        conv_post_bias: whether the final conv has a bias (SoVITS v1/v2: no; the v4 vocoder: yes).
        weight_norm: weight-normalised upsampling and residual-block convs (SoVITS files) or plain
            ones (files saved after ``remove_weight_norm``); ``conv_pre``/``conv_post`` are plain
            either way, as upstream's.
    """

    def __init__(
        self,
        initial_channel: int,
        resblock: str,
        resblock_kernel_sizes: Sequence[int],
        resblock_dilation_sizes: Sequence[Sequence[int]],
        upsample_rates: Sequence[int],
        upsample_initial_channel: int,
        upsample_kernel_sizes: Sequence[int],
        gin_channels: int = 0,
        conv_post_bias: bool = False,
        weight_norm: bool = True,
    ) -> None:
        super().__init__()
        self.num_kernels = len(resblock_kernel_sizes)
        self.num_upsamples = len(upsample_rates)
        self.conv_pre = nn.Conv1d(initial_channel, upsample_initial_channel, 7, 1, padding=3)
        conv_transpose = WNConvTranspose1d if weight_norm else nn.ConvTranspose1d
        self.ups = nn.ModuleList(
            conv_transpose(
                upsample_initial_channel // (2**i),
                upsample_initial_channel // (2 ** (i + 1)),
                k,
                u,
                padding=(k - u) // 2,
            )
            for i, (u, k) in enumerate(zip(upsample_rates, upsample_kernel_sizes, strict=True))
        )
        self.resblocks = nn.ModuleList()
        ch = upsample_initial_channel
        for i in range(self.num_upsamples):
            ch = upsample_initial_channel // (2 ** (i + 1))
            for k, d in zip(resblock_kernel_sizes, resblock_dilation_sizes, strict=True):
                self.resblocks.append(make_resblock(resblock, ch, k, d, weight_norm))
        self.conv_post = nn.Conv1d(ch, 1, 7, 1, padding=3, bias=conv_post_bias)
        if gin_channels:
            self.cond = nn.Conv1d(gin_channels, upsample_initial_channel, 1)

    def forward(self, x: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, initial_channel, T), g (B, gin, 1) or None -> (B, 1, T * prod(upsample_rates))"""
        x = self.conv_pre(x)
        if g is not None:
            x = x + self.cond(g)
        # In-place activations and sums act on tensors created here (never on the input):
        # identical values, less memory traffic on the long late stages, autograd-safe.
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE, inplace=True))
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            xs = blocks[0](x)
            for block in blocks[1:]:
                xs += block(x)
            x = xs.div_(self.num_kernels)
        # Upstream uses torch's default slope (0.01) here, not LRELU_SLOPE.
        x = self.conv_post(F.leaky_relu(x, inplace=True))
        return torch.tanh_(x)
