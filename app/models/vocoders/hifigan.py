"""GPT-SoVITS v4's vocoder: a HiFi-GAN generator turning 100-band log-mel frames into 48 kHz audio.

Upstream builds its SoVITS decoder class (``module.models.Generator``) with the hard-coded values
that are :class:`HiFiGANVocoderConfig`'s defaults (conv_post with a bias, no speaker
conditioning), removes weight norm and loads ``pretrained_models/`` + :data:`V4_VOCODER_FILE`, a
bare state dict of plain ``weight``/``bias`` tensors, strictly. The network is
:class:`~app.models.nn.hifigan.HiFiGANGenerator` built without weight norm: LeakyReLU 0.1 ->
transposed conv -> mean of the residual blocks per stage, then LeakyReLU with torch's default
slope 0.01 -> conv_post -> tanh.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from app.messages import Message
from app.models.nn.hifigan import HiFiGANGenerator

# Where upstream keeps the v4 vocoder, relative to pretrained_models/ (inference_webui.py init_hifigan).
V4_VOCODER_FILE = Path("gsv-v4-pretrained") / "vocoder.pth"
# Output rate of the v4 vocoder (inference_webui.py: opt_sr 48000 for v4).
V4_SAMPLE_RATE = 48_000


class HiFiGANVocoderConfigError(ValueError):
    """Arguments or a state dict that do not describe a HiFi-GAN vocoder."""


@dataclass(frozen=True)
class HiFiGANVocoderConfig:
    """HiFi-GAN vocoder shape; the defaults are upstream's v4 vocoder (``init_hifigan``)."""

    num_mels: int = 100  # input mel bands (upstream ``initial_channel``)
    upsample_initial_channel: int = 512  # width after conv_pre; halves at every stage
    upsample_rates: tuple[int, ...] = (10, 6, 2, 2, 2)  # their product is the hop length
    upsample_kernel_sizes: tuple[int, ...] = (20, 12, 4, 4, 4)  # transposed-conv kernels
    resblock: str = "1"  # HiFi-GAN residual block type
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)  # one block per kernel in every stage
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    sample_rate: int = V4_SAMPLE_RATE  # output rate; not in the file, upstream hard-codes it

    def __post_init__(self) -> None:
        for name in ("upsample_rates", "upsample_kernel_sizes", "resblock_kernel_sizes"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        object.__setattr__(
            self,
            "resblock_dilation_sizes",
            tuple(tuple(int(d) for d in ds) for ds in self.resblock_dilation_sizes),
        )
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            template = "upsample_rates {rates} and upsample_kernel_sizes {kernels} must have the same length"
            fields = {"rates": self.upsample_rates, "kernels": self.upsample_kernel_sizes}
            raise HiFiGANVocoderConfigError(Message("vocoder.err.upsample_lengths", template, **fields))
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            template = "resblock_kernel_sizes {kernels} and resblock_dilation_sizes {dilations} must have the same length"
            fields = {"kernels": self.resblock_kernel_sizes, "dilations": self.resblock_dilation_sizes}
            raise HiFiGANVocoderConfigError(Message("hifigan.err.resblock_lengths", template, **fields))
        if self.resblock not in ("1", "2"):
            template = "resblock must be '1' or '2', got {value!r}"
            raise HiFiGANVocoderConfigError(Message("hifigan.err.resblock", template, value=self.resblock))
        if self.upsample_initial_channel >> len(self.upsample_rates) < 1:
            template = "upsample_initial_channel {channels} cannot be halved {times} times"
            fields = {"channels": self.upsample_initial_channel, "times": len(self.upsample_rates)}
            raise HiFiGANVocoderConfigError(Message("vocoder.err.halved", template, **fields))
        if min(self.num_mels, self.sample_rate, *self.upsample_rates) < 1:
            raise HiFiGANVocoderConfigError(
                Message("hifigan.err.sizes", "sizes must be positive: {config}", config=str(self))
            )

    @property
    def hop_length(self) -> int:
        """Output samples per mel frame (480 for v4: 10 * 6 * 2 * 2 * 2)."""
        return math.prod(self.upsample_rates)

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor]) -> HiFiGANVocoderConfig:
        """Upstream's v4 layout with the widths read from ``conv_pre.weight`` (out, mels, 7).

        Only ``num_mels`` and ``upsample_initial_channel`` vary between files (upstream hard-codes
        the rest); a strict key/shape check against the network this builds catches any other change.
        """
        conv_pre = state.get("conv_pre.weight")
        if not isinstance(conv_pre, torch.Tensor) or conv_pre.dim() != 3:
            template = "no 3-dimensional 'conv_pre.weight' to read the vocoder's widths from"
            raise HiFiGANVocoderConfigError(Message("hifigan.err.conv_pre", template))
        return cls(num_mels=conv_pre.shape[1], upsample_initial_channel=conv_pre.shape[0])


class HiFiGANVocoder(HiFiGANGenerator):
    """Mel frames -> waveform; state-dict names are upstream's ``Generator`` without weight norm.

    Args:
        config: network shape and output rate.

    Attributes:
        sample_rate: output rate in Hz (48000 for v4).
        hop_length: output samples per mel frame (480 for v4).
        num_mels: mel bands expected at the input (100).
    """

    def __init__(self, config: HiFiGANVocoderConfig) -> None:
        super().__init__(
            initial_channel=config.num_mels,
            resblock=config.resblock,
            resblock_kernel_sizes=config.resblock_kernel_sizes,
            resblock_dilation_sizes=config.resblock_dilation_sizes,
            upsample_rates=config.upsample_rates,
            upsample_initial_channel=config.upsample_initial_channel,
            upsample_kernel_sizes=config.upsample_kernel_sizes,
            gin_channels=0,
            conv_post_bias=True,
            weight_norm=False,
        )
        self.config = config
        self.sample_rate = config.sample_rate
        self.hop_length = config.hop_length
        self.num_mels = config.num_mels

    def forward(self, mel: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        """mel (B, num_mels, T) natural-log mel -> audio (B, 1, T * hop_length) in [-1, 1].

        ``g`` exists for the parent's signature; the v4 vocoder has no conditioning and refuses one.
        """
        if g is not None:
            raise ValueError(Message("hifigan.err.g", "the v4 vocoder takes no conditioning input g"))
        if mel.dim() != 3 or mel.shape[1] != self.num_mels:
            template = "expected mel (B, {mels}, T), got shape {shape}"
            raise ValueError(
                Message("vocoder.err.mel_shape", template, mels=self.num_mels, shape=tuple(mel.shape))
            )
        return super().forward(mel)
