"""Reference audio -> the linear spectrogram the timbre encoder reads (upstream ``get_spepc``)."""

from __future__ import annotations

import os

import numpy as np
import torch

from app.audio.io import load_audio
from app.models.nn.spectrogram import linear_spectrogram

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


def load_reference(path: str | os.PathLike | bytes, device: torch.device | str = "cpu") -> torch.Tensor:
    """Load a reference clip as upstream does for the timbre: mono, 32 kHz, level rule.

    Returns:
        (1, N) float32 waveform; raises ``app.audio.io.AudioError`` naming the file on bad audio.
    """
    wav = torch.from_numpy(np.ascontiguousarray(load_audio(path, SAMPLE_RATE))).to(device)
    return normalize_reference(wav.unsqueeze(0))
