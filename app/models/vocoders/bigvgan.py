"""GPT-SoVITS v3's vocoder: NVIDIA BigVGAN v2 (``bigvgan_v2_24khz_100band_256x``), mel -> 24 kHz audio.

A HiFi-GAN-shaped generator whose residual blocks use anti-aliased periodic activations
(:mod:`app.models.nn.alias_free`) instead of LeakyReLU:

- ``conv_pre`` (k7) -> per stage: transposed conv (no activation before it) -> mean of the
  stage's AMP blocks;
- AMP block "1": for each dilation, ``x += conv2(act2(conv1_dilated(act1(x))))``; block "2" has
  the dilated convs only;
- ``activation_post`` (anti-aliased Snake/SnakeBeta) -> ``conv_post`` (k7, bias per config) ->
  tanh, or a clamp to [-1, 1] when ``use_tanh_at_final`` is false (the v2 24 kHz model).

Upstream's folder ``pretrained_models/`` + :data:`BIGVGAN_DIR` holds ``config.json`` (these
hyper-parameters plus training keys) and ``bigvgan_generator.pt`` = ``{"generator": state dict}``
with weight-normalised convs; upstream removes weight norm after loading and runs in eval mode.
:class:`BigVGAN` builds either layout (``weight_norm``) under upstream's state-dict names; the
loader in :mod:`app.models.upstream.vocoder` folds the file's weight norm and runs it plain.
There is no CUDA kernel: the activations always take the PyTorch path, as in GPT-SoVITS' copy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from app.messages import Message
from app.models.nn.alias_free import AntiAliasedActivation, make_snake
from app.models.nn.masks import same_padding
from app.models.nn.norm import WNConv1d, WNConvTranspose1d

# Upstream's folder for the v3 vocoder, relative to pretrained_models/ (inference_webui.py init_bigvgan).
BIGVGAN_DIR = Path("models--nvidia--bigvgan_v2_24khz_100band_256x")
# The two files inside it (BigVGAN's _from_pretrained).
BIGVGAN_CONFIG_FILE = "config.json"
BIGVGAN_WEIGHTS_FILE = "bigvgan_generator.pt"
# Activations and residual-block types BigVGAN defines (bigvgan.py).
ACTIVATIONS = ("snake", "snakebeta")
RESBLOCKS = ("1", "2")


class BigVGANConfigError(ValueError):
    """Hyper-parameters that do not describe a BigVGAN generator."""


@dataclass(frozen=True)
class BigVGANConfig:
    """BigVGAN generator hyper-parameters (``config.json`` names); defaults: the 24 kHz 100-band v2 model."""

    num_mels: int = 100  # input mel bands
    sampling_rate: int = 24_000  # output rate in Hz
    hop_size: int = 256  # output samples per mel frame; must equal prod(upsample_rates)
    upsample_rates: tuple[int, ...] = (4, 4, 2, 2, 2, 2)  # one transposed conv per stage
    upsample_kernel_sizes: tuple[int, ...] = (8, 8, 4, 4, 4, 4)
    upsample_initial_channel: int = 1536  # width after conv_pre; halves at every stage
    resblock: str = "1"  # AMP block type: "1" (two convs per dilation) or "2" (one)
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)  # one AMP block per kernel in every stage
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    activation: str = "snakebeta"  # "snake" or "snakebeta"
    snake_logscale: bool = True  # activation parameters stored as logarithms
    use_tanh_at_final: bool = False  # tanh at the end; False clamps to [-1, 1]
    use_bias_at_final: bool = False  # conv_post has a bias

    def __post_init__(self) -> None:
        for name in ("upsample_rates", "upsample_kernel_sizes", "resblock_kernel_sizes"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(
            self, "resblock_dilation_sizes", tuple(tuple(ds) for ds in self.resblock_dilation_sizes)
        )
        ints = {
            "num_mels": self.num_mels,
            "sampling_rate": self.sampling_rate,
            "hop_size": self.hop_size,
            "upsample_initial_channel": self.upsample_initial_channel,
        }
        for name, value in ints.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise BigVGANConfigError(
                    Message(
                        "bigvgan.err.int",
                        "{name} must be a positive integer, got {value!r}",
                        name=name,
                        value=value,
                    )
                )
        lists = {
            "upsample_rates": self.upsample_rates,
            "upsample_kernel_sizes": self.upsample_kernel_sizes,
            "resblock_kernel_sizes": self.resblock_kernel_sizes,
            **{f"resblock_dilation_sizes[{i}]": ds for i, ds in enumerate(self.resblock_dilation_sizes)},
        }
        for name, values in lists.items():
            if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
                template = "{name} must be a non-empty list of positive integers, got {values!r}"
                raise BigVGANConfigError(Message("bigvgan.err.list", template, name=name, values=values))
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            template = "upsample_rates {rates} and upsample_kernel_sizes {kernels} must have the same length"
            fields = {"rates": list(self.upsample_rates), "kernels": list(self.upsample_kernel_sizes)}
            raise BigVGANConfigError(Message("vocoder.err.upsample_lengths", template, **fields))
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            template = (
                "resblock_kernel_sizes {kernels} and resblock_dilation_sizes must have the same length, "
                "got {count} dilation lists"
            )
            fields = {"kernels": list(self.resblock_kernel_sizes), "count": len(self.resblock_dilation_sizes)}
            raise BigVGANConfigError(Message("bigvgan.err.resblock_lengths", template, **fields))
        if self.resblock not in RESBLOCKS:
            template = "resblock must be one of {choices}, got {value!r}"
            raise BigVGANConfigError(
                Message("bigvgan.err.resblock", template, choices=RESBLOCKS, value=self.resblock)
            )
        if self.activation not in ACTIVATIONS:
            template = "activation must be one of {choices}, got {value!r}"
            raise BigVGANConfigError(
                Message("bigvgan.err.activation", template, choices=ACTIVATIONS, value=self.activation)
            )
        for name in ("snake_logscale", "use_tanh_at_final", "use_bias_at_final"):
            if not isinstance(getattr(self, name), bool):
                template = "{name} must be true or false, got {value!r}"
                raise BigVGANConfigError(
                    Message("bigvgan.err.bool", template, name=name, value=getattr(self, name))
                )
        if self.upsample_initial_channel >> len(self.upsample_rates) < 1:
            template = "upsample_initial_channel {channels} cannot be halved {times} times"
            fields = {"channels": self.upsample_initial_channel, "times": len(self.upsample_rates)}
            raise BigVGANConfigError(Message("vocoder.err.halved", template, **fields))
        if math.prod(self.upsample_rates) != self.hop_size:
            template = "hop_size {hop} differs from the product of upsample_rates {rates} = {product}"
            fields = {"rates": list(self.upsample_rates), "product": math.prod(self.upsample_rates)}
            raise BigVGANConfigError(Message("bigvgan.err.hop", template, hop=self.hop_size, **fields))

    def channels(self, stage: int) -> int:
        """Width after upsampling stage ``stage`` (0-based)."""
        return self.upsample_initial_channel // 2 ** (stage + 1)


def _conv1d(weight_norm: bool) -> type[nn.Conv1d]:
    return WNConv1d if weight_norm else nn.Conv1d


class AMPBlock1(nn.Module):
    """Per dilation: anti-aliased activation -> dilated conv -> activation -> conv, plus the input.

    Args:
        channels: C (kept).
        kernel_size: kernel of every conv.
        dilation: dilations of the first conv of each pair.
        activation, logscale: the Snake variant and its parameter scale.
        weight_norm: weight-normalised convs (file layout) or plain ones.
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int,
        dilation: Sequence[int],
        activation: str,
        logscale: bool,
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
        # Interleaved: activations[2i] precedes convs1[i], activations[2i + 1] precedes convs2[i].
        self.activations = nn.ModuleList(
            AntiAliasedActivation(make_snake(activation, channels, logscale))
            for _ in range(2 * len(dilation))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) -> (B, C, T)"""
        acts1, acts2 = self.activations[::2], self.activations[1::2]
        for c1, c2, a1, a2 in zip(self.convs1, self.convs2, acts1, acts2, strict=True):
            x = c2(a2(c1(a1(x)))) + x
        return x


class AMPBlock2(nn.Module):
    """Per dilation: anti-aliased activation -> dilated conv, plus the input (arguments of AMPBlock1)."""

    def __init__(
        self,
        channels: int,
        kernel_size: int,
        dilation: Sequence[int],
        activation: str,
        logscale: bool,
        weight_norm: bool = True,
    ) -> None:
        super().__init__()
        conv = _conv1d(weight_norm)
        self.convs = nn.ModuleList(
            conv(channels, channels, kernel_size, dilation=d, padding=same_padding(kernel_size, d))
            for d in dilation
        )
        self.activations = nn.ModuleList(
            AntiAliasedActivation(make_snake(activation, channels, logscale)) for _ in dilation
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) -> (B, C, T)"""
        for conv, act in zip(self.convs, self.activations, strict=True):
            x = conv(act(x)) + x
        return x


class BigVGAN(nn.Module):
    """Mel frames -> waveform; state-dict names are upstream's (``ups.<i>.0.*``, ``resblocks.<j>.*``).

    Args:
        config: hyper-parameters.
        weight_norm: build the convs weight-normalised (``weight_g``/``weight_v``, the layout of
            ``bigvgan_generator.pt``) or plain (``weight``, after upstream's ``remove_weight_norm``).

    Attributes:
        sample_rate: output rate in Hz (24000 for v3).
        hop_length: output samples per mel frame (256 for v3).
        num_mels: mel bands expected at the input (100).
    """

    def __init__(self, config: BigVGANConfig, weight_norm: bool = False) -> None:
        super().__init__()
        self.config = config
        self.sample_rate = config.sampling_rate
        self.hop_length = config.hop_size
        self.num_mels = config.num_mels
        self.num_kernels = len(config.resblock_kernel_sizes)
        conv = _conv1d(weight_norm)
        conv_transpose = WNConvTranspose1d if weight_norm else nn.ConvTranspose1d
        block = AMPBlock1 if config.resblock == "1" else AMPBlock2

        self.conv_pre = conv(config.num_mels, config.upsample_initial_channel, 7, 1, padding=3)
        # One-element lists per stage: upstream's keys are ups.<stage>.0.*.
        self.ups = nn.ModuleList(
            nn.ModuleList(
                [conv_transpose(2 * config.channels(i), config.channels(i), k, u, padding=(k - u) // 2)]
            )
            for i, (u, k) in enumerate(zip(config.upsample_rates, config.upsample_kernel_sizes, strict=True))
        )
        self.resblocks = nn.ModuleList(
            block(config.channels(i), k, d, config.activation, config.snake_logscale, weight_norm)
            for i in range(len(config.upsample_rates))
            for k, d in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes, strict=True)
        )
        ch = config.channels(len(config.upsample_rates) - 1)
        self.activation_post = AntiAliasedActivation(make_snake(config.activation, ch, config.snake_logscale))
        self.conv_post = conv(ch, 1, 7, 1, padding=3, bias=config.use_bias_at_final)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (B, num_mels, T) log-mel (natural log) -> audio (B, 1, T * hop_length) in [-1, 1]."""
        if mel.dim() != 3 or mel.shape[1] != self.num_mels:
            template = "expected mel (B, {mels}, T), got shape {shape}"
            raise ValueError(
                Message("vocoder.err.mel_shape", template, mels=self.num_mels, shape=tuple(mel.shape))
            )
        x = self.conv_pre(mel)
        for i, stage in enumerate(self.ups):
            for up in stage:
                x = up(x)
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            xs = blocks[0](x)
            for b in blocks[1:]:
                xs = xs + b(x)
            x = xs / self.num_kernels
        x = self.conv_post(self.activation_post(x))
        if self.config.use_tanh_at_final:
            return torch.tanh(x)
        return torch.clamp(x, -1.0, 1.0)
