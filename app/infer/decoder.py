"""Wrappers around the SoVITS HiFi-GAN decoder (``model.dec``) installed by the pipeline.

- :class:`WindowedDecoder`: decodes a long latent in windows with enough context on both sides that
  every kept sample sees its whole receptive field. The decoder is purely convolutional, so the
  kept samples are the whole decode's up to float summation order, while the activations in memory
  shrink with the window (10 s of audio: 255 -> 150 MB at the decoder's peak, for ~6 % more work).
- :class:`FixedWindowDecoder`: the fast mode's decoder on CPU: bf16 on channels-last activations
  (oneDNN's layout, AMX kernels, fused activations) on a few fixed lengths (a short input padded
  and its padding masked at every layer, a long one layer by layer with every convolution in
  windows of those lengths), so oneDNN builds kernels for a few shapes once.
  :class:`FixedWindowVocoder` does the same for v4's HiFi-GAN vocoder, :class:`FixedWindowNSF` for
  so-vits-svc's NSF decoder.
- :class:`CastDecoder`: runs the decoder in another dtype (bf16 in the fast mode elsewhere).
- :class:`CastSampler`, :class:`CastVocoder`: the same for the v3/v4 flow matching and vocoder.
- :class:`CastPrior`, :class:`CastFlow`: the VITS prior encoder and flow in another dtype.
- :class:`CastNSF`: the same for so-vits-svc's NSF-HiFiGAN decoder (its f0 and harmonic phases
  stay float32).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from app.models.nn.hifigan2d import HiFiGAN2d
from app.models.nn.layout import channels_last_pays, from_2d, to_2d
from app.models.sovits.config import SoVITSConfig
from app.models.svc.config import SynthesizerConfig
from app.models.svc.noise import ZeroNoise
from app.models.vocoders.hifigan import HiFiGANVocoderConfig

# What the receptive field and windows read: upsample rates/kernels, residual blocks, hop length.
HiFiGANShape = SoVITSConfig | HiFiGANVocoderConfig | SynthesizerConfig

# Latents up to this many 50 Hz frames (6.4 s) are decoded whole; longer ones in equal windows.
MAX_WINDOW_FRAMES = 320
# FixedWindowDecoder's window lengths (50 Hz frames): a stream's first chunks, then everything else.
FIXED_WINDOW_LENGTHS = (32, 128)
# FixedWindowDecoder decodes a latent of up to this many frames (v2: 20 s) layer by layer in one
# go (its whole activations held: v2 ~120 KB per frame, +60 MB at 500 frames, +150 MB at 1000)
# and longer ones in spans of at most as many, each with the receptive field's context.
MAX_TILED_FRAMES = 1024
# The VITS decoder's (token streaming, app.infer.streaming): a first chunk of 8 tokens is 16
# frames (a 16-frame window decodes in ~31 ms at 2 threads against ~50 ms padded to 32, for
# ~29 MB more kernel state), the next 8 tokens with 16 frames of context fill 32.
STREAM_WINDOW_LENGTHS = (16, 32, 128)
CONV_PRE_KERNEL = 7  # HiFi-GAN conv_pre / conv_post kernels
CONV_POST_KERNEL = 7


def receptive_frames(config: HiFiGANShape) -> int:
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


def decode_in_spans(
    frames: int, max_frames: int, context: int, hop: int, decode: Callable[[int, int], torch.Tensor]
) -> torch.Tensor:
    """The samples of ``frames`` latent frames decoded in equal spans of at most ``max_frames``,
    each with ``context`` frames more on every side that is not an end: ``decode(lo, hi)`` gives
    the (B, 1, (hi - lo) * hop) samples of frames ``[lo, hi)``; each span keeps its own frames'."""
    n = math.ceil(frames / max_frames)
    bounds = [round(frames * i / n) for i in range(n + 1)]
    parts = []
    for a, b in itertools.pairwise(bounds):
        lo, hi = max(0, a - context), min(frames, b + context)
        parts.append(decode(lo, hi)[..., (a - lo) * hop : (b - lo) * hop])
    return torch.cat(parts, dim=-1)


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
        return decode_in_spans(
            frames, self.max_frames, self.context, self.hop, lambda lo, hi: self.inner(x[:, :, lo:hi], g=g)
        )


def fixed_windows_pay(dtype: torch.dtype, device: torch.device, config: HiFiGANShape) -> bool:
    """Where :class:`FixedWindowDecoder` is used: bf16 on a CPU with oneDNN, type-"1" residual blocks.

    Measured (v2 decoder, 1 thread, bf16, 500 frames): 3.0-5.1 s CPU in the plain layout, 0.93 s in
    windows of 128 frames; memory flat (+290 MB of oneDNN state for the 128-frame shape, +60 MB for
    the 32-frame one) where the plain layout grew by ~1 GB over five new lengths.
    float32 keeps the plain layout: it is the path checked against upstream's numbers.
    """
    return dtype == torch.bfloat16 and channels_last_pays(device) and config.resblock == "1"


class FixedWindowDecoder(nn.Module):
    """``dec(x, g)`` through a :class:`~app.models.nn.hifigan2d.HiFiGAN2d` that only ever sees
    inputs of a few fixed lengths (CPU, oneDNN's channels-last layout).

    A latent of at most ``lengths[-1]`` frames is padded to the smallest of ``lengths`` that holds
    it, its padding masked at every layer (the unpadded decode's samples). A longer one is decoded
    layer by layer (:meth:`HiFiGAN2d.tiled <app.models.nn.hifigan2d.HiFiGAN2d.tiled>`): each
    convolution runs on windows of exactly the input lengths it has at ``lengths`` frames, each
    window with that layer's reach of real input on every side that is not an end of the latent,
    so the output is the whole decode's up to float summation order; a latent of more than
    ``max_tiled`` frames (:data:`MAX_TILED_FRAMES`) in spans of at most that many, each with the
    receptive field's context (the activations held at once stay bounded). oneDNN thus builds kernels
    for ``len(lengths)`` shapes once (at load: :meth:`warm_up`) instead of one per request, which
    in this layout costs ~1 s per 100 frames in bf16 the first time and ~100 MB of kernel state
    per shape. Measured (v2, 500 frames, bf16, 2-core Zen 4): 2.65 -> 2.24 s at 1 thread and
    1.39 -> 1.25 s at 2 against whole-network windows of 128 frames overlapping by the receptive
    field (640 frames decoded for 500), peak memory +50-90 MB (the whole activations).

    Args:
        decoder: the SoVITS HiFi-GAN generator (``ResBlock1``), converted to a copy in ``dtype``.
        config: its model config (hop, receptive field).
        lengths: the window lengths in frames, ascending; a latent longer than the last is tiled.
        dtype: compute dtype (float32 or bfloat16); the output is float32.
        max_tiled: the longest latent decoded layer by layer in one go (frames).
        int8: the residual blocks' convolutions as int8 (:mod:`app.models.nn.qconv`; the fast
            mode where :func:`~app.models.nn.qconv.int8_convolutions` holds).
    """

    def __init__(
        self,
        decoder: nn.Module,
        config: HiFiGANShape,
        lengths: tuple[int, ...] = FIXED_WINDOW_LENGTHS,
        dtype: torch.dtype = torch.float32,
        max_tiled: int = MAX_TILED_FRAMES,
        int8: bool = False,
    ) -> None:
        super().__init__()
        self.context = receptive_frames(config)
        if list(lengths) != sorted(set(lengths)) or lengths[-1] <= 2 * self.context:
            raise ValueError(
                f"window lengths must ascend and the longest exceed twice the context ({self.context}): {lengths}"
            )
        self.inner = HiFiGAN2d(decoder, int8).to(dtype)
        self.lengths = tuple(lengths)
        if max_tiled < 2 * (lengths[-1] + self.context):
            raise ValueError(
                f"max_tiled ({max_tiled}) must be at least twice the longest window plus the context"
                f" ({lengths[-1]} + {self.context}): its spans must be longer than every window"
            )
        self.max_tiled = max_tiled
        self.hop = config.hop_length
        self.dtype = dtype

    @torch.inference_mode()
    def warm_up(self) -> None:
        """Builds the kernels of every window length now (the first call at a length builds them)."""
        gin = self.inner.gin_channels
        for length in self.lengths:
            self(torch.zeros(1, self.inner.in_channels, length), torch.zeros(1, gin, 1) if gin else None)

    def _run(
        self, x: torch.Tensor, g: torch.Tensor | None, excitation: torch.Tensor | None, valid: int
    ) -> torch.Tensor:
        """x (1, C, L), g (1, gin, 1 or L), excitation (1, 1, L * hop) or None -> (1, 1, valid * hop) float32."""
        x2d, g2d, e2d = self._as_2d(x, g, excitation)
        out = self.inner(x2d, g2d, valid, e2d)
        return from_2d(out)[..., : valid * self.hop].float()

    def _as_2d(
        self, x: torch.Tensor, g: torch.Tensor | None, excitation: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """The decoder's inputs in its dtype and channels-last 2-D layout (``x``, ``g``, ``excitation``)."""
        g2d = None if g is None else to_2d(g.to(self.dtype))
        e2d = None if excitation is None else to_2d(excitation.to(self.dtype))
        return to_2d(x.to(self.dtype)), g2d, e2d

    def forward(self, x: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, C, T), g (B, gin, 1) -> (B, 1, T * hop) float32"""
        return self._decode(x, g, None)

    def _decode(
        self, x: torch.Tensor, g: torch.Tensor | None, excitation: torch.Tensor | None
    ) -> torch.Tensor:
        """Row by row (one input shape): x (B, C, T), g (B, gin, 1 or T), excitation (B, 1, T * hop)."""
        rows = []
        for b in range(x.shape[0]):
            row = slice(b, b + 1)
            rows.append(
                self._decode_row(
                    x[row], None if g is None else g[row], None if excitation is None else excitation[row]
                )
            )
        return torch.cat(rows, dim=0)

    def _decode_row(
        self, x: torch.Tensor, g: torch.Tensor | None, excitation: torch.Tensor | None
    ) -> torch.Tensor:
        frames = x.shape[-1]
        fits = [n for n in self.lengths if n >= frames]
        if fits:
            return self._run(*self._window(x, g, excitation, 0, fits[0]), valid=frames)
        if frames <= self.max_tiled:
            return self._run_tiled(x, g, excitation)
        # Longer: spans of at most max_tiled frames, each with the receptive field's context.
        return decode_in_spans(
            frames,
            self.max_tiled,
            self.context,
            self.hop,
            lambda lo, hi: self._run_tiled(*self._window(x, g, excitation, lo, hi - lo)),
        )

    def _run_tiled(
        self, x: torch.Tensor, g: torch.Tensor | None, excitation: torch.Tensor | None
    ) -> torch.Tensor:
        """A latent longer than every window, layer by layer, each convolution in windows of the
        lengths it meets in :meth:`_run` (:meth:`HiFiGAN2d.tiled`) -> (1, 1, T * hop) float32."""
        x2d, g2d, e2d = self._as_2d(x, g, excitation)
        return from_2d(self.inner.tiled(x2d, self.lengths, g2d, e2d)).float()

    def _window(
        self,
        x: torch.Tensor,
        g: torch.Tensor | None,
        excitation: torch.Tensor | None,
        start: int,
        length: int,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Frames [start, start + length) of x, a per-frame g and the excitation, zero-padded past their end."""

        def cut(t: torch.Tensor | None, per: int) -> torch.Tensor | None:
            if t is None or (t is g and t.shape[-1] == 1):
                return t
            part = t[..., start * per : (start + length) * per]
            return F.pad(part, (0, length * per - part.shape[-1]))

        return cut(x, 1), cut(g, 1), cut(excitation, self.hop)


class FixedWindowVocoder(FixedWindowDecoder):
    """A HiFi-GAN mel vocoder (v4's) through :class:`FixedWindowDecoder`: ``vocoder(mel)``; keeps its
    ``sample_rate``/``hop_length``/``num_mels``. Its windows count mel frames (100 Hz for v4)."""

    def __init__(self, vocoder: nn.Module, dtype: torch.dtype = torch.float32) -> None:
        super().__init__(vocoder, vocoder.config, dtype=dtype)
        self.sample_rate = vocoder.sample_rate
        self.hop_length = vocoder.hop_length
        self.num_mels = vocoder.num_mels

    def forward(self, mel: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        """(B, num_mels, T) -> (B, 1, T * hop) float32"""
        if mel.dim() != 3 or mel.shape[1] != self.num_mels:
            raise ValueError(f"expected mel (B, {self.num_mels}, T), got shape {tuple(mel.shape)}")
        return super().forward(mel, g)


class FixedWindowNSF(FixedWindowDecoder):
    """so-vits-svc's NSF-HiFiGAN decoder ``f(x, f0, g, noise)`` through :class:`FixedWindowDecoder`.

    The harmonic excitation is made once from the whole f0 (its phases run on across windows;
    float32 phases, the merging layer in ``dtype`` as :class:`CastNSF`) and cut into the windows
    with the latent and a per-frame speaker vector.
    """

    def __init__(
        self, decoder: nn.Module, config: HiFiGANShape, dtype: torch.dtype = torch.float32, int8: bool = False
    ) -> None:
        super().__init__(decoder, config, dtype=dtype, int8=int8)
        self.source = decoder.m_source.to(dtype)

    @torch.inference_mode()
    def warm_up(self) -> None:
        """Builds the kernels of every window length now (zero f0 and noise: no random draws)."""
        for length in self.lengths:
            x, f0 = torch.zeros(1, self.inner.in_channels, length), torch.zeros(1, length)
            self(x, f0, torch.zeros(1, self.inner.gin_channels, 1), ZeroNoise())

    def forward(self, x: torch.Tensor, f0: torch.Tensor, g: torch.Tensor, noise) -> torch.Tensor:
        """x (B, inter, T), f0 (B, T) Hz, g (B, gin, 1 or T) -> (B, 1, T * hop) float32"""
        excitation = self.source(f0.float(), self.hop, noise)  # (B, 1, T * hop)
        return self._decode(x, g, excitation)


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


class CastPrior(nn.Module):
    """Runs the VITS prior encoder (:class:`~app.models.sovits.encoders.TextEncoder`) in another
    dtype: float inputs are cast in, ``m_p``, ``logs_p`` and the mask come back float32; the text
    encoding :meth:`encode_text` gives (to pass back as ``encoded_text``) stays in ``dtype``."""

    def __init__(self, encoder: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.inner = encoder.to(dtype)
        self.dtype = dtype

    def encode_text(
        self, text: torch.Tensor, text_lengths: torch.Tensor, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """As the encoder's, in this wrapper's dtype whatever ``dtype`` the caller's frames have."""
        return self.inner.encode_text(text, text_lengths, self.dtype)

    def forward(
        self,
        y: torch.Tensor,
        y_lengths: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        ge: torch.Tensor | None,
        speed: float = 1.0,
        encoded_text: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """As ``TextEncoder.forward``; the outputs float32."""
        d = self.dtype
        ge = None if ge is None else ge.to(d)
        outs = self.inner(y.to(d), y_lengths, text, text_lengths, ge, speed, encoded_text=encoded_text)
        m_p, logs_p, y_mask = (t.float() for t in outs)
        return m_p, logs_p, y_mask


class CastFlow(nn.Module):
    """Runs the VITS flow (:class:`~app.models.nn.flow.ResidualCouplingBlock`) in another dtype,
    inference's direction (``reverse=True``) only; the output float32."""

    def __init__(self, flow: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.inner = flow.to(dtype)
        self.dtype = dtype

    def forward(
        self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None = None, reverse: bool = False
    ) -> torch.Tensor:
        """(B, C, T) prior sample -> (B, C, T) latent, float32."""
        if not reverse:
            raise ValueError("CastFlow runs the flow for inference (reverse=True) only")
        d = self.dtype
        g = None if g is None else g.to(d)
        return self.inner(x.to(d), x_mask.to(d), g=g, reverse=True).float()


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
