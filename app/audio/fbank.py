"""Kaldi-compatible log mel filterbank (``compute-fbank-feats``), as the speaker-verification model reads it.

Upstream's ERes2NetV2 speaker encoder is fed ``kaldi.fbank(wav, num_mel_bins=80,
sample_frequency=16000, dither=0)`` (its copy of ``torchaudio.compliance.kaldi.fbank``) with every
other option at Kaldi's default. That configuration, step by step:

1. frames of 25 ms every 10 ms, only frames that fit entirely (``snip_edges``):
   ``T = 1 + (N - 400) // 160`` at 16 kHz;
2. each frame minus its mean (DC removal), then pre-emphasis ``x[i] - 0.97 x[i-1]`` with
   ``x[-1] = x[0]``;
3. Povey window (a symmetric Hann window raised to 0.85), zero-padded to the next power of two
   (400 -> 512);
4. power spectrum ``|rfft|^2`` (257 bins);
5. ``num_mel_bins`` triangular filters equally spaced on Kaldi's mel scale
   ``1127 ln(1 + f / 700)`` between 20 Hz and Nyquist, over the first 256 bins (the Nyquist bin
   gets weight 0);
6. natural log, floored at float32 epsilon. No dithering, no energy column, no mean subtraction.

The wave is used as is (floats in [-1, 1], not scaled to the 16-bit range).
"""

from __future__ import annotations

import functools
import math

import torch

# Kaldi defaults (FrameExtractionOptions / MelBanksOptions).
FRAME_LENGTH_MS = 25.0
FRAME_SHIFT_MS = 10.0
PREEMPHASIS = 0.97
POVEY_POWER = 0.85  # Povey window = Hann ** 0.85 (zero at both ends, like Hann)
LOW_FREQ = 20.0  # Hz, lower edge of the first mel filter
# numeric_limits<float>::epsilon(): the floor of every filter energy before the log.
LOG_FLOOR = torch.finfo(torch.float32).eps


def mel_scale(freq: float | torch.Tensor) -> float | torch.Tensor:
    """Kaldi's mel scale, ``1127 ln(1 + f / 700)``."""
    if isinstance(freq, torch.Tensor):
        return 1127.0 * (1.0 + freq / 700.0).log()
    return 1127.0 * math.log(1.0 + freq / 700.0)


def _next_power_of_two(n: int) -> int:
    return 1 if n == 0 else 2 ** (n - 1).bit_length()


def frame_sizes(
    sample_frequency: float, frame_length_ms: float, frame_shift_ms: float
) -> tuple[int, int, int]:
    """(window samples, shift samples, FFT size) as Kaldi rounds them (truncation, next power of two)."""
    size = int(sample_frequency * frame_length_ms * 0.001)
    shift = int(sample_frequency * frame_shift_ms * 0.001)
    return size, shift, _next_power_of_two(size)


def num_frames(
    num_samples: int,
    sample_frequency: float = 16000.0,
    frame_length_ms: float = FRAME_LENGTH_MS,
    frame_shift_ms: float = FRAME_SHIFT_MS,
) -> int:
    """Frames :func:`kaldi_fbank` returns for ``num_samples`` (``snip_edges``: 0 if shorter than a window)."""
    size, shift, _ = frame_sizes(sample_frequency, frame_length_ms, frame_shift_ms)
    return 0 if num_samples < size else 1 + (num_samples - size) // shift


@functools.lru_cache(maxsize=8)
def mel_banks(
    num_bins: int, n_fft: int, sample_frequency: float, low_freq: float, high_freq: float
) -> torch.Tensor:
    """``(num_bins, n_fft // 2 + 1)`` float32 triangular filters on Kaldi's mel scale.

    Filter ``b`` rises from mel ``lo + b d`` to its peak at ``lo + (b + 1) d`` and falls to
    ``lo + (b + 2) d``, ``d = (hi - lo) / (num_bins + 1)``, evaluated at the mel value of each FFT
    bin's frequency ``k * sr / n_fft``, ``k < n_fft / 2``; the Nyquist column is 0. Computed in
    float32 like torchaudio/upstream, so the weights are theirs to the last bit.
    """
    nyquist = 0.5 * sample_frequency
    if high_freq <= 0.0:
        high_freq += nyquist  # Kaldi: a non-positive high_freq is an offset from Nyquist
    if not (0.0 <= low_freq < nyquist and 0.0 < high_freq <= nyquist and low_freq < high_freq):
        raise ValueError(f"mel range {low_freq}..{high_freq} Hz does not fit below Nyquist {nyquist} Hz")
    if num_bins <= 3:
        raise ValueError(f"need more than 3 mel bins, got {num_bins}")
    mel_lo, mel_hi = mel_scale(low_freq), mel_scale(high_freq)
    delta = (mel_hi - mel_lo) / (num_bins + 1)
    b = torch.arange(num_bins).unsqueeze(1)  # (num_bins, 1)
    left = mel_lo + b * delta  # float32, as upstream
    center = mel_lo + (b + 1.0) * delta
    right = mel_lo + (b + 2.0) * delta
    mel = mel_scale(sample_frequency / n_fft * torch.arange(n_fft // 2, dtype=torch.float32)).unsqueeze(0)
    up = (mel - left) / (center - left)  # (num_bins, n_fft // 2)
    down = (right - mel) / (right - center)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)
    return torch.nn.functional.pad(banks, (0, 1))  # (num_bins, n_fft // 2 + 1): Nyquist weight 0


@functools.lru_cache(maxsize=8)
def povey_window(size: int) -> torch.Tensor:
    """``(size,)`` float32 Povey window: symmetric Hann to the power 0.85."""
    return torch.hann_window(size, periodic=False, dtype=torch.float32).pow(POVEY_POWER)


def kaldi_fbank(
    wave: torch.Tensor,
    num_mel_bins: int = 80,
    sample_frequency: float = 16000.0,
    *,
    frame_length_ms: float = FRAME_LENGTH_MS,
    frame_shift_ms: float = FRAME_SHIFT_MS,
    low_freq: float = LOW_FREQ,
    high_freq: float = 0.0,
) -> torch.Tensor:
    """Log mel filterbank of one wave, Kaldi's defaults with dither 0 (see the module docstring).

    Args:
        wave: ``(N,)`` or ``(1, N)`` float samples at ``sample_frequency``.
        num_mel_bins: filters.
        sample_frequency: rate of ``wave`` in Hz.
        frame_length_ms, frame_shift_ms: framing (Kaldi truncates both to whole samples).
        low_freq, high_freq: mel range in Hz; ``high_freq <= 0`` is an offset from Nyquist.

    Returns:
        ``(T, num_mel_bins)``, ``T = 1 + (N - window) // shift``; float32 for half-precision input
        (computed in float32), else ``wave``'s dtype.
    """
    if wave.dim() == 2 and wave.shape[0] == 1:
        wave = wave[0]
    if wave.dim() != 1:
        raise ValueError(f"kaldi_fbank takes one wave, (N,) or (1, N); got shape {tuple(wave.shape)}")
    if not wave.is_floating_point():
        raise TypeError(f"kaldi_fbank needs floating-point samples, got {wave.dtype}")
    if wave.dtype in (torch.float16, torch.bfloat16):
        wave = wave.float()
    size, shift, n_fft = frame_sizes(sample_frequency, frame_length_ms, frame_shift_ms)
    if size < 2 or shift < 1:
        raise ValueError(f"frames of {size} samples every {shift} are too small")
    if wave.shape[0] < size:
        raise ValueError(f"{wave.shape[0]} samples is shorter than one {size}-sample frame")
    frames = wave.unfold(0, size, shift)  # (T, size)
    frames = frames - frames.mean(dim=1, keepdim=True)
    previous = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)  # x[i-1], with x[-1] = x[0]
    frames = frames - PREEMPHASIS * previous
    frames = frames * povey_window(size).to(frames)
    frames = torch.nn.functional.pad(frames, (0, n_fft - size))  # (T, n_fft)
    power = torch.fft.rfft(frames).abs().pow(2.0)  # (T, n_fft // 2 + 1)
    banks = mel_banks(num_mel_bins, n_fft, float(sample_frequency), float(low_freq), float(high_freq))
    energies = power @ banks.to(power).T  # (T, num_mel_bins)
    return torch.clamp(energies, min=LOG_FLOOR).log()
