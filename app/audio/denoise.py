"""Speech denoising by spectral gating: stationary noise (hiss, hum, fan, room tone) taken out of clips.

The method of noisereduce's stationary mode (Sainburg et al. 2020, after Audacity's Noise
Reduction): the noise is profiled per frequency bin from the quietest frames of the recording
(between phrases, where only the noise is left), every bin of every frame more than
``threshold_std`` standard deviations above the noise's mean level is speech, the others are
attenuated by ``strength``; the on/off mask is smoothed over ~50 ms and one bin either side so the
gate opens and closes without musical noise. Pure signal processing: no model file, any sample rate,
any number of channels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# Window of ~46 ms (2048 samples at 44.1 kHz), the resolution noisereduce uses; hop a quarter of it.
WINDOW_SECONDS = 0.046
# Share of the quietest frames taken as noise only: a dataset clip has pauses, and 10% of a clip
# is well inside them; at least MIN_NOISE_FRAMES so the statistics mean something.
NOISE_QUANTILE = 0.1
MIN_NOISE_FRAMES = 8
# Mask smoothing over 50 ms in time (noisereduce's default) and one bin either side in frequency:
# noisereduce's 500 Hz would average a voice's harmonics (a few bins wide) with the noise between
# them and so gate the voice itself (measured: a 220 Hz voice lost 18 dB of SNR that way).
SMOOTH_SECONDS = 0.05
SMOOTH_BINS = 1


class DenoiseError(ValueError):
    """Bad denoise options or audio; the message says what was wrong."""


@dataclass(frozen=True)
class DenoiseOptions:
    """How hard to gate."""

    strength: float = 0.9  # share of the noise removed, 0..1 (1 = bins without speech are silenced)
    threshold_std: float = 1.5  # a bin is speech above noise mean + this many noise standard deviations

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise DenoiseError(f"denoise strength {self.strength} must be between 0 and 1")
        if not 0.0 < self.threshold_std <= 10.0:
            raise DenoiseError(
                f"denoise threshold {self.threshold_std} must be in (0, 10] standard deviations"
            )


def _smoothing_kernel(bins: int, frames: int) -> torch.Tensor:
    """A normalised triangular 2-D kernel ``(1, 1, 2*bins+1, 2*frames+1)`` (noisereduce's shape)."""
    f = torch.cat([torch.linspace(0, 1, bins + 2)[1:-1], torch.ones(1), torch.linspace(1, 0, bins + 2)[1:-1]])
    t = torch.cat(
        [torch.linspace(0, 1, frames + 2)[1:-1], torch.ones(1), torch.linspace(1, 0, frames + 2)[1:-1]]
    )
    kernel = torch.outer(f, t)
    return (kernel / kernel.sum())[None, None]


def denoise(wav: np.ndarray, sr: int, options: DenoiseOptions = DenoiseOptions()) -> np.ndarray:
    """Gate stationary noise out of ``wav`` ``(T,)`` or ``(T, C)`` float at ``sr`` Hz; same shape back.

    The noise profile is shared by the channels (their mean), so a stereo image is not skewed.
    """
    x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))
    mono = x.ndim == 1
    x = x[:, None] if mono else x  # (T, C)
    n_fft = 1 << round(np.log2(sr * WINDOW_SECONDS))
    hop = n_fft // 4
    if x.shape[0] < n_fft * 2:
        raise DenoiseError(
            f"{x.shape[0] / sr:.2f} s of audio is too short to profile its noise; give at least {2 * n_fft / sr:.2f} s"
        )
    window = torch.hann_window(n_fft)
    spec = torch.stft(x.T, n_fft, hop, window=window, return_complex=True)  # (C, F, N)
    level = 20 * torch.log10(spec.abs().mean(0).clamp_min(1e-8))  # (F, N) dB, channels together
    frames = level.shape[1]
    quiet = max(MIN_NOISE_FRAMES, int(frames * NOISE_QUANTILE))
    order = level.mean(0).argsort()[: min(frames, quiet)]  # the quietest frames
    noise = level[:, order]  # (F, quiet)
    threshold = noise.mean(1, keepdim=True) + options.threshold_std * noise.std(1, keepdim=True)  # (F, 1)
    speech = (level > threshold).float()[None, None]  # (1, 1, F, N)
    bins = SMOOTH_BINS
    steps = max(1, round(SMOOTH_SECONDS * sr / hop))
    smooth = torch.nn.functional.conv2d(speech, _smoothing_kernel(bins, steps), padding=(bins, steps))
    # Smoothing only widens the gate's opening: bins judged speech pass untouched.
    mask = torch.maximum(speech, smooth)[0, 0]  # (F, N)
    gain = 1.0 - options.strength * (1.0 - mask.clamp(0, 1))  # (F, N)
    out = torch.istft(spec * gain, n_fft, hop, window=window, length=x.shape[0]).T  # (T, C)
    return (out[:, 0] if mono else out).numpy()
