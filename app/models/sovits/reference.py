"""Reference audio -> the linear spectrogram the timbre encoder reads (upstream ``get_spepc``), and
for v3/v4 the log-mel the flow-matching decoder continues (upstream ``mel_spectrogram_torch``).
"""

from __future__ import annotations

import os

import numpy as np
import torch

from app.audio.io import load_audio
from app.models.nn.spectrogram import linear_spectrogram, mel_spectrogram
from app.models.sovits.config import MEL_MAX, MEL_MIN, CfmAudio

# Upstream s2 data settings (GPT_SoVITS/configs/s2*.json), shared by every 32 kHz version.
SAMPLE_RATE = 32000
N_FFT = 2048
HOP_LENGTH = 640
WIN_LENGTH = 2048
# References louder than full scale are divided by min(2, peak): at most halved.
MAX_PEAK_DIVISOR = 2.0


def normalize_reference(wav: torch.Tensor) -> torch.Tensor:
    """Upstream's level rule: if the peak exceeds 1, divide by ``min(2, peak)``; else unchanged.

    (N,) or (1, N) float -> same shape.
    """
    peak = wav.abs().max()
    if peak > 1:
        return wav / torch.clamp(peak, max=MAX_PEAK_DIVISOR)
    return wav


def reference_spectrogram(wav_32k: torch.Tensor) -> torch.Tensor:
    """(N,) or (1, N) 32 kHz waveform -> (1, 1025, F) magnitude spectrogram, F = N // 640 for N % 640 == 0.

    Reflect-pad 704 samples each side, STFT n_fft 2048 / hop 640 / periodic Hann 2048,
    ``center=False``, ``sqrt(re^2 + im^2 + 1e-8)``.
    """
    wav = wav_32k.reshape(1, -1)
    return linear_spectrogram(wav, N_FFT, HOP_LENGTH, WIN_LENGTH)


def reference_mel(wav: torch.Tensor, audio: CfmAudio) -> torch.Tensor:
    """Log-mel of a v3/v4 reference, not normalised (upstream ``mel_fn`` / ``mel_fn_v4``).

    Args:
        wav: (N,) or (1, N) mono waveform already at ``audio.sampling_rate`` (24 kHz v3, 32 kHz
            v4); upstream applies no level rule here.
        audio: the version's constants (``SoVITSConfig.cfm_audio``).

    Returns:
        (1, 100, F) ``log(max(mel, 1e-5))``: reflect-pad (n_fft - hop) / 2, STFT without
        centering (Hann), ``sqrt(re^2 + im^2 + 1e-8)``, Slaney mel basis; F = N // hop when N is
        a multiple of hop.
    """
    return mel_spectrogram(
        wav.reshape(1, -1),
        audio.n_fft,
        audio.n_mels,
        audio.sampling_rate,
        audio.hop_length,
        audio.win_length,
        audio.fmin,
        audio.fmax,
    )


def normalize_mel(mel: torch.Tensor) -> torch.Tensor:
    """Log-mel -> the CFM's scale: ``(x + 12) / 14 * 2 - 1`` (-12..2 maps to -1..1)."""
    return (mel - MEL_MIN) / (MEL_MAX - MEL_MIN) * 2 - 1


def denormalize_mel(mel: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`normalize_mel`: ``(x + 1) / 2 * 14 - 12``, the log-mel a vocoder reads."""
    return (mel + 1) / 2 * (MEL_MAX - MEL_MIN) + MEL_MIN


def load_reference(path: str | os.PathLike | bytes, device: torch.device | str = "cpu") -> torch.Tensor:
    """Load a reference clip as upstream does for the timbre: mono, 32 kHz, level rule.

    Returns:
        (1, N) float32 waveform; raises ``app.audio.io.AudioError`` naming the file on bad audio.
    """
    wav = torch.from_numpy(np.ascontiguousarray(load_audio(path, SAMPLE_RATE))).to(device)
    return normalize_reference(wav.unsqueeze(0))
