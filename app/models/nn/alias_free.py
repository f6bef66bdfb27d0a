"""Anti-aliased periodic activations of BigVGAN: Snake/SnakeBeta run at twice the sample rate.

A periodic nonlinearity creates harmonics above Nyquist; BigVGAN (after StyleGAN3's alias-free
design, via junjun3518/alias-free-torch) therefore upsamples 2x with a Kaiser-windowed sinc
low-pass, applies the activation, low-passes again and keeps every second sample
(:class:`AntiAliasedActivation`). Only the plain PyTorch path exists here (no fused CUDA kernel).

Module and buffer names follow upstream's (``act.alpha``, ``upsample.filter``,
``downsample.lowpass.filter``) so BigVGAN state dicts load as they are; the filters are persistent
buffers there, so files carry them too.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# Snake's guard against dividing by a zero magnitude (activations.py "no_div_by_zero").
SNAKE_EPS = 1e-9
# BigVGAN's activations resample by 2 with 12-tap filters (alias_free_activation/torch/act.py).
RATIO = 2
FILTER_TAPS = 12


def kaiser_sinc_filter(cutoff: float, half_width: float, taps: int) -> torch.Tensor:
    """Windowed-sinc low-pass (julius/alias-free-torch design) -> (1, 1, taps), summing to 1.

    Args:
        cutoff: cut-off frequency as a fraction of the sample rate (0 .. 0.5).
        half_width: half the transition band, same unit; sets the Kaiser window's beta through
            the attenuation estimate ``A = 2.285 (taps/2 - 1) pi 4 half_width + 7.95`` dB.
        taps: filter length; even lengths are centred between two samples.
    """
    half = taps // 2
    attenuation = 2.285 * (half - 1) * math.pi * (4 * half_width) + 7.95
    if attenuation > 50.0:
        beta = 0.1102 * (attenuation - 8.7)
    elif attenuation >= 21.0:
        beta = 0.5842 * (attenuation - 21) ** 0.4 + 0.07886 * (attenuation - 21.0)
    else:
        beta = 0.0
    window = torch.kaiser_window(taps, periodic=False, beta=beta)
    # Tap positions in samples from the centre: half-integers for even lengths.
    time = torch.arange(-half, half) + 0.5 if taps % 2 == 0 else torch.arange(taps) - half
    if cutoff == 0:
        return torch.zeros(1, 1, taps)
    kernel = 2 * cutoff * window * torch.sinc(2 * cutoff * time)
    # Unit DC gain: without it a constant input would leak a small gain error.
    kernel /= kernel.sum()
    return kernel.view(1, 1, taps)


class LowPassFilter1d(nn.Module):
    """Depthwise low-pass with replicate padding, optionally strided (the downsampler's core).

    Args:
        cutoff, half_width, taps: as :func:`kaiser_sinc_filter`.
        stride: keep every ``stride``-th output sample.
    """

    def __init__(self, cutoff: float, half_width: float, stride: int = 1, taps: int = FILTER_TAPS) -> None:
        super().__init__()
        if not 0.0 <= cutoff <= 0.5:
            raise ValueError(f"cutoff must be within [0, 0.5] of the sample rate, got {cutoff}")
        self.stride = stride
        even = taps % 2 == 0
        self.pad_left = taps // 2 - int(even)
        self.pad_right = taps // 2
        self.register_buffer("filter", kaiser_sinc_filter(cutoff, half_width, taps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) -> (B, C, ceil(T / stride))"""
        channels = x.shape[1]
        x = F.pad(x, (self.pad_left, self.pad_right), mode="replicate")
        return F.conv1d(x, self.filter.expand(channels, -1, -1), stride=self.stride, groups=channels)


class UpSample1d(nn.Module):
    """Zero-stuffing upsampler followed by the sinc low-pass (a strided transposed conv).

    Args:
        ratio: upsampling factor.
        taps: filter length.
    """

    def __init__(self, ratio: int = RATIO, taps: int = FILTER_TAPS) -> None:
        super().__init__()
        self.ratio = ratio
        # Replicate-pad the input so the filter sees no edge, then crop what the padding produced.
        self.pad = taps // ratio - 1
        self.crop_left = self.pad * ratio + (taps - ratio) // 2
        self.crop_right = self.pad * ratio + (taps - ratio + 1) // 2
        self.register_buffer("filter", kaiser_sinc_filter(0.5 / ratio, 0.6 / ratio, taps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) -> (B, C, T * ratio)"""
        channels = x.shape[1]
        x = F.pad(x, (self.pad, self.pad), mode="replicate")
        # The gain `ratio` restores the amplitude the inserted zeros take away.
        x = self.ratio * F.conv_transpose1d(
            x, self.filter.expand(channels, -1, -1), stride=self.ratio, groups=channels
        )
        return x[..., self.crop_left : -self.crop_right]


class DownSample1d(nn.Module):
    """Sinc low-pass at the new Nyquist, then keep every ``ratio``-th sample."""

    def __init__(self, ratio: int = RATIO, taps: int = FILTER_TAPS) -> None:
        super().__init__()
        self.lowpass = LowPassFilter1d(0.5 / ratio, 0.6 / ratio, stride=ratio, taps=taps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) -> (B, C, ceil(T / ratio))"""
        return self.lowpass(x)


class Snake(nn.Module):
    """``x + sin^2(a x) / a`` per channel (Ziyin et al. 2020), a trainable frequency ``alpha``.

    Args:
        channels: C.
        logscale: ``alpha`` is stored as its logarithm (BigVGAN v2 ``snake_logscale``).
    """

    def __init__(self, channels: int, logscale: bool = False) -> None:
        super().__init__()
        self.logscale = logscale
        # Log-scale parameters start at 0 (= 1 after exp), linear ones at 1.
        self.alpha = nn.Parameter(torch.zeros(channels) if logscale else torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) -> (B, C, T)"""
        alpha = self.alpha[None, :, None]  # (1, C, 1)
        if self.logscale:
            alpha = alpha.exp()
        return x + (1.0 / (alpha + SNAKE_EPS)) * torch.sin(x * alpha).pow(2)


class SnakeBeta(nn.Module):
    """``x + sin^2(a x) / b`` per channel: Snake with a separate magnitude ``beta`` (BigVGAN).

    Args:
        channels: C.
        logscale: ``alpha`` and ``beta`` are stored as logarithms (BigVGAN v2 ``snake_logscale``).
    """

    def __init__(self, channels: int, logscale: bool = False) -> None:
        super().__init__()
        self.logscale = logscale
        init = torch.zeros if logscale else torch.ones
        self.alpha = nn.Parameter(init(channels))
        self.beta = nn.Parameter(init(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) -> (B, C, T)"""
        alpha = self.alpha[None, :, None]  # (1, C, 1)
        beta = self.beta[None, :, None]
        if self.logscale:
            alpha = alpha.exp()
            beta = beta.exp()
        return x + (1.0 / (beta + SNAKE_EPS)) * torch.sin(x * alpha).pow(2)


def make_snake(kind: str, channels: int, logscale: bool) -> nn.Module:
    """``"snake"`` -> :class:`Snake`, ``"snakebeta"`` -> :class:`SnakeBeta` (BigVGAN's ``activation``)."""
    if kind == "snake":
        return Snake(channels, logscale)
    if kind == "snakebeta":
        return SnakeBeta(channels, logscale)
    raise ValueError(f"activation must be 'snake' or 'snakebeta', got {kind!r}")


class AntiAliasedActivation(nn.Module):
    """Upsample 2x -> activation -> downsample 2x (upstream's ``Activation1d``).

    Args:
        act: the pointwise activation (e.g. :class:`SnakeBeta`), stored as ``act``.
    """

    def __init__(self, act: nn.Module) -> None:
        super().__init__()
        self.act = act
        self.upsample = UpSample1d()
        self.downsample = DownSample1d()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) -> (B, C, T)"""
        return self.downsample(self.act(self.upsample(x)))
