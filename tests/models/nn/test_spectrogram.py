"""app.models.nn.spectrogram: the one mel implementation, in each convention its callers use."""

from __future__ import annotations

import librosa
import numpy as np
import torch

from app.models.nn.spectrogram import linear_spectrogram, mel_filters, mel_spectrogram


def test_mel_filters_are_librosas_slaney_or_htk() -> None:
    for htk in (False, True):
        ours = mel_filters(16000, 1024, 128, 30.0, 8000.0, htk).numpy()
        ref = librosa.filters.mel(sr=16000, n_fft=1024, n_mels=128, fmin=30.0, fmax=8000.0, htk=htk)
        np.testing.assert_array_equal(ours, ref)
    assert not torch.equal(
        mel_filters(16000, 1024, 128, 30.0, 8000.0, True), mel_filters(16000, 1024, 128, 30.0, 8000.0)
    )


def test_centred_frames_are_torchs() -> None:
    torch.manual_seed(0)
    y = torch.randn(2, 16077)
    spec = linear_spectrogram(y, 1024, 160, 1024, magnitude_eps=0.0, center=True)
    assert spec.shape == (2, 513, 16077 // 160 + 1)
    stft = torch.stft(y, 1024, 160, 1024, window=torch.hann_window(1024), center=True, return_complex=True)
    torch.testing.assert_close(spec, stft.abs(), rtol=1e-5, atol=1e-6)


def test_rmvpe_log_mel_convention() -> None:
    """Centred frames, HTK filters, no magnitude epsilon, ``ln(max(mel, 1e-5))`` (RMVPE's input)."""
    torch.manual_seed(1)
    y = torch.randn(1, 8000) * 0.1
    mel = mel_spectrogram(
        y, 1024, 128, 16000, 160, 1024, 30.0, 8000.0, magnitude_eps=0.0, center=True, htk=True
    )
    stft = torch.stft(y, 1024, 160, 1024, window=torch.hann_window(1024), center=True, return_complex=True)
    basis = torch.from_numpy(
        librosa.filters.mel(sr=16000, n_fft=1024, n_mels=128, fmin=30, fmax=8000, htk=True)
    )
    torch.testing.assert_close(
        mel, torch.log(torch.clamp(basis @ stft.abs(), min=1e-5)), rtol=1e-4, atol=1e-4
    )
