"""Blocks of UVR's VR-architecture networks, in the two generations the published files use.

The attribute names are the state-dict keys of the published ``.pth`` files (``conv.0.weight``,
``conv.1.running_mean``, ``bottleneck.0.conv...``), so a file loads strictly. Two generations:

* v5 (UVR's ``layers_123821KB``; HP2/HP3/HP5): the encoder returns its stride-1 feature as the skip,
  the ASPP's dilated branches are depthwise-separable, its bottleneck sits in a Sequential with dropout.
* new (UVR's ``layers_new``; VR-DeEcho*): the encoder downsamples first, ASPP branches are plain
  convolutions with 2-D dilations, and an LSTM over the frequency axis joins the decoder.

Every block takes and returns ``(B, C, F, T)``: F frequency bins, T frames.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

Pair = int | tuple[int, int]


def crop_time(skip: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The centre of ``skip`` ``(B, C, F, T')`` along time, as many frames as ``like`` has (T <= T')."""
    extra = skip.shape[3] - like.shape[3]
    if extra < 0:
        raise ValueError(f"skip has {skip.shape[3]} frames, fewer than the {like.shape[3]} it must match")
    start = extra // 2
    return skip[:, :, :, start : start + like.shape[3]]


class ConvBNAct(nn.Module):
    """Conv2d (no bias) -> BatchNorm2d -> activation; keys ``conv.0``, ``conv.1``."""

    def __init__(
        self,
        nin: int,
        nout: int,
        ksize: int = 3,
        stride: int = 1,
        pad: Pair = 1,
        dilation: Pair = 1,
        activ: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        conv = nn.Conv2d(nin, nout, ksize, stride, pad, dilation, bias=False)
        self.conv = nn.Sequential(conv, nn.BatchNorm2d(nout), activ())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class SeparableConvBNAct(nn.Module):
    """Depthwise conv -> pointwise conv -> BatchNorm2d -> activation; keys ``conv.0..2``."""

    def __init__(
        self, nin: int, nout: int, ksize: int, pad: int, dilation: int, activ: type[nn.Module] = nn.ReLU
    ) -> None:
        super().__init__()
        depthwise = nn.Conv2d(nin, nin, ksize, 1, pad, dilation, groups=nin, bias=False)
        pointwise = nn.Conv2d(nin, nout, 1, bias=False)
        self.conv = nn.Sequential(depthwise, pointwise, nn.BatchNorm2d(nout), activ())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def upsample(x: torch.Tensor) -> torch.Tensor:
    """Twice the frequency and time resolution, bilinear with aligned corners (UVR's decoders)."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


# ------------------------------------------------------------------------------------------- v5


class EncoderV5(nn.Module):
    """Conv at stride 1 (the skip) then a conv at ``stride``; returns ``(down, skip)``."""

    def __init__(self, nin: int, nout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(nin, nout, 3, 1, 1, activ=nn.LeakyReLU)
        self.conv2 = ConvBNAct(nout, nout, 3, stride, 1, activ=nn.LeakyReLU)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skip = self.conv1(x)
        return self.conv2(skip), skip


class DecoderV5(nn.Module):
    """Upsample, concatenate the (time-cropped) skip, one conv; key ``conv``."""

    def __init__(self, nin: int, nout: int) -> None:
        super().__init__()
        self.conv = ConvBNAct(nin, nout, 3, 1, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = upsample(x)
        return self.conv(torch.cat([x, crop_time(skip, x)], dim=1))


class AsppV5(nn.Module):
    """Atrous spatial pyramid: pooled, 1x1 and three separable dilated branches -> 1x1 bottleneck."""

    def __init__(self, nin: int, nout: int, dilations: tuple[int, int, int] = (4, 8, 16)) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.AdaptiveAvgPool2d((1, None)), ConvBNAct(nin, nin, 1, 1, 0))
        self.conv2 = ConvBNAct(nin, nin, 1, 1, 0)
        self.conv3 = SeparableConvBNAct(nin, nin, 3, dilations[0], dilations[0])
        self.conv4 = SeparableConvBNAct(nin, nin, 3, dilations[1], dilations[1])
        self.conv5 = SeparableConvBNAct(nin, nin, 3, dilations[2], dilations[2])
        self.bottleneck = nn.Sequential(ConvBNAct(nin * 5, nout, 1, 1, 0), nn.Dropout2d(0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[2:]
        pooled = F.interpolate(self.conv1(x), size=size, mode="bilinear", align_corners=True)
        branches = (pooled, self.conv2(x), self.conv3(x), self.conv4(x), self.conv5(x))
        return self.bottleneck(torch.cat(branches, dim=1))  # (B, nout, F, T)


# ------------------------------------------------------------------------------------------ new


class EncoderNew(nn.Module):
    """A conv at ``stride`` then one at stride 1."""

    def __init__(self, nin: int, nout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(nin, nout, 3, stride, 1, activ=nn.LeakyReLU)
        self.conv2 = ConvBNAct(nout, nout, 3, 1, 1, activ=nn.LeakyReLU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


class DecoderNew(nn.Module):
    """Upsample, concatenate the (time-cropped) skip, one conv; key ``conv1``."""

    def __init__(self, nin: int, nout: int) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(nin, nout, 3, 1, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = upsample(x)
        return self.conv1(torch.cat([x, crop_time(skip, x)], dim=1))


class AsppNew(nn.Module):
    """Pyramid of a pooled, a 1x1 and three dilated 3x3 branches (2-D dilations) -> 1x1 bottleneck."""

    def __init__(self, nin: int, nout: int, dilations: tuple[tuple[int, int], ...]) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.AdaptiveAvgPool2d((1, None)), ConvBNAct(nin, nout, 1, 1, 0))
        self.conv2 = ConvBNAct(nin, nout, 1, 1, 0)
        self.conv3 = ConvBNAct(nin, nout, 3, 1, dilations[0], dilations[0])
        self.conv4 = ConvBNAct(nin, nout, 3, 1, dilations[1], dilations[1])
        self.conv5 = ConvBNAct(nin, nout, 3, 1, dilations[2], dilations[2])
        self.bottleneck = ConvBNAct(nout * 5, nout, 1, 1, 0)
        self.dropout = nn.Dropout2d(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[2:]
        pooled = F.interpolate(self.conv1(x), size=size, mode="bilinear", align_corners=True)
        branches = (pooled, self.conv2(x), self.conv3(x), self.conv4(x), self.conv5(x))
        return self.dropout(self.bottleneck(torch.cat(branches, dim=1)))  # (B, nout, F, T)


class FrequencyLstm(nn.Module):
    """Squeeze channels to one, run a bidirectional LSTM over frames with the bins as features.

    ``(B, C, F, T)`` -> ``(B, 1, F, T)``; ``F`` must be ``nin_lstm``.
    """

    def __init__(self, nin_conv: int, nin_lstm: int, nout_lstm: int) -> None:
        super().__init__()
        self.conv = ConvBNAct(nin_conv, 1, 1, 1, 0)
        self.lstm = nn.LSTM(input_size=nin_lstm, hidden_size=nout_lstm // 2, bidirectional=True)
        self.dense = nn.Sequential(nn.Linear(nout_lstm, nin_lstm), nn.BatchNorm1d(nin_lstm), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, bins, frames = x.shape
        h = self.conv(x)[:, 0].permute(2, 0, 1)  # (T, B, F): time-major for nn.LSTM
        h, _ = self.lstm(h)  # (T, B, nout_lstm)
        h = self.dense(h.reshape(frames * b, -1))  # (T*B, F)
        return h.reshape(frames, b, 1, bins).permute(1, 2, 3, 0)  # (B, 1, F, T)
