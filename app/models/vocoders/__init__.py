"""Mel-spectrogram vocoders of GPT-SoVITS v3/v4: log-mel frames (B, 100, T) -> audio (B, 1, T * hop).

- v4: :class:`~app.models.vocoders.hifigan.HiFiGANVocoder`, 48 kHz, 480 samples per frame
  (upstream file ``pretrained_models/gsv-v4-pretrained/vocoder.pth``);
- v3: :class:`~app.models.vocoders.bigvgan.BigVGAN`, NVIDIA BigVGAN v2, 24 kHz, 256 samples per
  frame (upstream folder ``pretrained_models/models--nvidia--bigvgan_v2_24khz_100band_256x/``).

Both are ``nn.Module`` s with the :class:`Vocoder` attributes. Files are read by
:mod:`app.models.upstream.vocoder` (``load_v4_vocoder``, ``load_bigvgan``, ``load_vocoder``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import torch

from app.models.vocoders.bigvgan import BIGVGAN_DIR
from app.models.vocoders.hifigan import V4_VOCODER_FILE


@runtime_checkable
class Vocoder(Protocol):
    """What the synthesis code relies on; both vocoders are ``nn.Module`` s with these attributes."""

    sample_rate: int  # output rate in Hz
    hop_length: int  # output samples per mel frame
    num_mels: int  # mel bands of the input

    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (B, num_mels, T) -> audio (B, 1, T * hop_length) in [-1, 1]."""
        ...


# The vocoder each CFM SoVITS version uses, relative to pretrained_models/ (a file for v4, a folder for v3).
VOCODER_PATHS: dict[str, Path] = {"v3": BIGVGAN_DIR, "v4": V4_VOCODER_FILE}
