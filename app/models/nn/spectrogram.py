"""The one linear / mel spectrogram of the project: VITS conventions by default, RMVPE's by parameter.

Used by GPT-SoVITS (timbre spectrogram, v3/v4 mel targets and references), so-vits-svc training
(magnitude epsilon 1e-6) and RMVPE (centred frames, HTK mel scale, no epsilon). The Kaldi fbank of
the speaker encoder (:mod:`app.audio.fbank`) is another algorithm (DC removal, pre-emphasis, Povey
window, Kaldi's unnormalised mel filters on the power spectrum, float32-epsilon log floor: the
filters of ``torchaudio.compliance.kaldi``) and stays apart.

VITS framing (``center=False``): the waveform is reflect-padded by ``(n_fft - hop) / 2`` on each
side, so frame i covers samples around ``i * hop``; the frame count is
``1 + (N + n_fft - hop - n_fft) // hop`` (= N // hop for N a multiple of hop). ``center=True`` is
torch's: reflect-pad ``n_fft / 2``, frame j centred at ``j * hop``, ``N // hop + 1`` frames.
Magnitudes are ``sqrt(re^2 + im^2 + eps)`` (the epsilon keeps the gradient finite at zero); mel
values are ``log(max(filters @ magnitude, 1e-5))`` with librosa's Slaney-normalised filters.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

# Added under the square root of the power spectrum: GPT-SoVITS uses 1e-8, so-vits-svc 1e-6.
MAGNITUDE_EPS = 1e-8
# Floor before the log of mel energies (upstream ``dynamic_range_compression_torch``).
LOG_CLIP = 1e-5


@functools.lru_cache(maxsize=16)
def _hann(win_size: int) -> torch.Tensor:
    # Periodic Hann (torch default), float32 on CPU; callers move/cast a copy.
    return torch.hann_window(win_size)


@functools.lru_cache(maxsize=16)
def mel_filters(
    sampling_rate: int, n_fft: int, num_mels: int, fmin: float, fmax: float | None, htk: bool = False
) -> torch.Tensor:
    """(num_mels, n_fft // 2 + 1) float32 triangular filters, Slaney area-normalised (librosa).

    ``htk``: HTK's mel scale (RMVPE) instead of Slaney's (VITS, BigVGAN). Cached on the CPU:
    callers move or cast a copy, never change it in place.
    """
    import librosa  # only the mel path needs it

    basis = librosa.filters.mel(sr=sampling_rate, n_fft=n_fft, n_mels=num_mels, fmin=fmin, fmax=fmax, htk=htk)
    return torch.from_numpy(np.asarray(basis, dtype=np.float32))


def linear_spectrogram(
    y: torch.Tensor,
    n_fft: int,
    hop_size: int,
    win_size: int,
    magnitude_eps: float = MAGNITUDE_EPS,
    center: bool = False,
) -> torch.Tensor:
    """Magnitude spectrogram.

    Args:
        y: (B, N) or (N,) waveform in [-1, 1].
        n_fft, hop_size, win_size: STFT size, hop and (periodic Hann) window length.
        magnitude_eps: added to re^2 + im^2 before the square root.
        center: torch's centred frames instead of the VITS framing (module docstring).

    Returns:
        (B, n_fft // 2 + 1, frames): frames = 1 + (N + 2*pad - n_fft) // hop, pad = (n_fft - hop) // 2
        for the VITS framing; N // hop + 1 when ``center``.
    """
    if y.dim() == 1:
        y = y.unsqueeze(0)
    if not center:
        pad = (n_fft - hop_size) // 2
        y = F.pad(y.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)  # (B, N + 2*pad)
    window = _hann(win_size).to(dtype=y.dtype, device=y.device)
    spec = torch.stft(
        y,
        n_fft,
        hop_length=hop_size,
        win_length=win_size,
        window=window,
        center=center,
        normalized=False,
        onesided=True,
        return_complex=True,
    )
    return torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + magnitude_eps)


def spec_to_mel(
    spec: torch.Tensor,
    n_fft: int,
    num_mels: int,
    sampling_rate: int,
    fmin: float,
    fmax: float | None,
    htk: bool = False,
) -> torch.Tensor:
    """(B, n_fft // 2 + 1, frames) magnitudes -> (B, num_mels, frames) ``log(max(mel, 1e-5))``."""
    basis = mel_filters(sampling_rate, n_fft, num_mels, float(fmin), fmax, htk).to(
        dtype=spec.dtype, device=spec.device
    )
    return torch.log(torch.clamp(basis @ spec, min=LOG_CLIP))


def mel_spectrogram(
    y: torch.Tensor,
    n_fft: int,
    num_mels: int,
    sampling_rate: int,
    hop_size: int,
    win_size: int,
    fmin: float,
    fmax: float | None,
    *,
    magnitude_eps: float = MAGNITUDE_EPS,
    center: bool = False,
    htk: bool = False,
) -> torch.Tensor:
    """(B, N) waveform -> (B, num_mels, frames) log-mel; composition of the two functions above."""
    spec = linear_spectrogram(y, n_fft, hop_size, win_size, magnitude_eps, center)
    return spec_to_mel(spec, n_fft, num_mels, sampling_rate, fmin, fmax, htk)
