"""Wrappers around the SoVITS HiFi-GAN decoder (``model.dec``) installed by the pipeline.

- :class:`WindowedDecoder`: decodes a long latent in windows with enough context on both sides that
  every kept sample sees its whole receptive field. The decoder is purely convolutional, so the
  kept samples are the whole decode's up to float summation order, while the activations in memory
  shrink with the window (10 s of audio: 255 -> 150 MB at the decoder's peak, for ~6 % more work).
- :class:`CastDecoder`: runs the decoder in another dtype (bf16 in the fast mode).
- :class:`CastSampler`, :class:`CastVocoder`: the same for the v3/v4 flow matching and vocoder.
- :class:`CastNSF`: the same for so-vits-svc's NSF-HiFiGAN decoder (its f0 and harmonic phases
  stay float32).
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from app.models.sovits.config import SoVITSConfig

# Latents up to this many 50 Hz frames (6.4 s) are decoded whole; longer ones in equal windows.
MAX_WINDOW_FRAMES = 320
CONV_PRE_KERNEL = 7  # HiFi-GAN conv_pre / conv_post kernels
CONV_POST_KERNEL = 7


def receptive_frames(config: SoVITSConfig) -> int:
    """Latent frames on each side that can influence a decoder output sample (rounded up, + 2 spare).

    conv_pre, then per stage a transposed conv (at most ceil(k / u) inputs per output) and the
    residual blocks (each dilated conv of kernel k reaches d * (k - 1) / 2 samples, each plain one
    (k - 1) / 2), every reach divided by the stage's cumulative upsampling; conv_post last.
    """
    reach = (CONV_PRE_KERNEL - 1) / 2
    scale = 1
    for rate, kernel in zip(config.upsample_rates, config.upsample_kernel_sizes, strict=True):
        reach += math.ceil(kernel / rate) / scale
        scale *= rate
        blocks = zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes, strict=True)
        reach += max(sum(d * (k - 1) // 2 + (k - 1) // 2 for d in dil) for k, dil in blocks) / scale
    reach += (CONV_POST_KERNEL - 1) / 2 / scale
    return math.ceil(reach) + 2


class WindowedDecoder(nn.Module):
    """``dec(x, g)`` over windows of at most ``max_frames`` frames plus ``context`` frames each side."""

    def __init__(self, decoder: nn.Module, config: SoVITSConfig, max_frames: int = MAX_WINDOW_FRAMES) -> None:
        super().__init__()
        self.inner = decoder
        self.hop = config.hop_length
        self.context = receptive_frames(config)
        self.max_frames = max_frames

    def forward(self, x: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, C, T), g (B, gin, 1) -> (B, 1, T * hop)"""
        frames = x.shape[-1]
        if frames <= self.max_frames:
            return self.inner(x, g=g)
        n = math.ceil(frames / self.max_frames)
        bounds = [round(frames * i / n) for i in range(n + 1)]
        parts = []
        for a, b in itertools.pairwise(bounds):
            lo, hi = max(0, a - self.context), min(frames, b + self.context)
            out = self.inner(x[:, :, lo:hi], g=g)
            parts.append(out[:, :, (a - lo) * self.hop : (b - lo) * self.hop])
        return torch.cat(parts, dim=-1)


class CastDecoder(nn.Module):
    """Runs a decoder ``f(x, g)`` in another dtype; inputs are cast in, the output back to float32."""

    def __init__(self, decoder: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.inner = decoder.to(dtype)
        self.dtype = dtype

    def forward(self, x: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, C, T), g (B, gin, 1) -> (B, 1, T * hop) float32"""
        out = self.inner(x.to(self.dtype), g=None if g is None else g.to(self.dtype))
        return out.float()


class CastNSF(nn.Module):
    """Runs an NSF decoder ``f(x, f0, g, noise)`` in another dtype, returning float32.

    f0 stays float32: the harmonic source computes its phases in float64 from it and hands the
    sines to its (cast) merging layer, so only the network after the phases is in ``dtype``.
    """

    def __init__(self, decoder: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.inner = decoder.to(dtype)
        self.dtype = dtype

    def forward(self, x: torch.Tensor, f0: torch.Tensor, g: torch.Tensor, noise) -> torch.Tensor:
        """x (B, inter, T), f0 (B, T) Hz, g (B, gin, 1 or T) -> (B, 1, T * hop) float32"""
        return self.inner(x.to(self.dtype), f0.float(), g.to(self.dtype), noise).float()


class CastSampler(nn.Module):
    """Runs a flow-matching sampler (``CFM.sample``) in another dtype; returns float32."""

    def __init__(self, sampler: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.inner = sampler.to(dtype)
        self.dtype = dtype

    def sample(
        self, cond: torch.Tensor, prompt: torch.Tensor, steps: int, noise: torch.Tensor
    ) -> torch.Tensor:
        """As ``CFM.sample``: (B, C, N), (B, mel, P), steps, (B, mel, N) -> (B, mel, N) float32."""
        d = self.dtype
        return self.inner.sample(cond.to(d), prompt.to(d), steps, noise.to(d)).float()


class CastVocoder(nn.Module):
    """Runs a mel vocoder in another dtype; keeps its ``sample_rate``/``hop_length``; returns float32."""

    def __init__(self, vocoder: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.inner = vocoder.to(dtype)
        self.dtype = dtype
        self.sample_rate = vocoder.sample_rate
        self.hop_length = vocoder.hop_length
        self.num_mels = vocoder.num_mels

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, mel, T) -> (B, 1, T * hop) float32"""
        return self.inner(mel.to(self.dtype)).float()
