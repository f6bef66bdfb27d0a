"""Windowed-sinc resampling with torchaudio's numbers, and the speaker-model reference preparation.

Upstream GPT-SoVITS resamples the reference clip with ``torchaudio.transforms.Resample(orig, new)``
at its defaults (Hann-windowed sinc, ``lowpass_filter_width=6``, ``rolloff=0.99``). torchaudio is
not a dependency here, so :func:`sinc_resample` computes the same thing from the same formula:

- the rates are reduced by their gcd to ``orig``/``new`` (44100 -> 32000 becomes 441 -> 320);
- the cut-off is ``base = min(orig, new) * rolloff`` (in units of the reduced rates);
- output phase ``j`` (``0 <= j < new``) uses the taps ``i = -width .. width + orig - 1``,
  ``width = ceil(lowpass_filter_width * orig / base)``, at the positions
  ``t = (i / orig - j / new) * base`` clipped to ``[-w, w]`` (``w = lowpass_filter_width``):
  ``k_j(i) = sinc(pi t) * cos(pi t / (2 w))^2 * base / orig``;
- the wave is zero-padded by ``width`` on the left and ``width + orig`` on the right, convolved
  with the ``new`` kernels at stride ``orig`` (one polyphase output frame of ``new`` samples per
  ``orig`` input samples), and cut to ``ceil(new * N / orig)`` samples.

This is a different filter from :func:`app.audio.io.resample` (soxr): use this one where the
numbers must equal upstream's torchaudio path (the reference for v2Pro speaker embeddings and the
SoVITS reference spectrogram), soxr elsewhere.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

# torchaudio.transforms.Resample defaults.
LOWPASS_FILTER_WIDTH = 6  # zero crossings of the sinc kept on each side
ROLLOFF = 0.99  # cut-off as a fraction of the lower Nyquist frequency

# Rates of upstream's v2Pro reference path (inference_webui.get_spepc, sv.py).
SOVITS_SR = 32000  # the SoVITS reference spectrogram's rate (configs/s2*.json data.sampling_rate)
SV_SR = 16000  # the speaker-verification model's input rate
# References louder than full scale are divided by min(2, peak): at most halved (get_spepc).
MAX_PEAK_DIVISOR = 2.0


@functools.lru_cache(maxsize=16)
def _kernel(orig: int, new: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, int]:
    """Polyphase kernels ``(new, 1, 2 * width + orig)`` for gcd-reduced rates, and ``width``.

    Built exactly as torchaudio builds Resample's default kernel (float64 arithmetic, the phase
    offsets ``j / new`` computed in float32 first, result rounded to float32), then cast to ``dtype``.
    """
    base = min(orig, new) * ROLLOFF
    width = math.ceil(LOWPASS_FILTER_WIDTH * orig / base)
    idx = torch.arange(-width, width + orig, dtype=torch.float64)[None, None] / orig  # (1, 1, K)
    # torchaudio divides an integer arange here, which gives float32 before the float64 sum.
    phase = torch.arange(0, -new, -1)[:, None, None] / new  # (new, 1, 1) float32
    t = (phase + idx) * base  # (new, 1, K) float64
    t = t.clamp(-LOWPASS_FILTER_WIDTH, LOWPASS_FILTER_WIDTH)
    window = torch.cos(t * math.pi / LOWPASS_FILTER_WIDTH / 2) ** 2
    t = t * math.pi
    sinc = torch.where(t == 0, torch.ones((), dtype=t.dtype), t.sin() / t)
    kernels = (sinc * (window * (base / orig))).to(torch.float32)
    if dtype != torch.float32:
        kernels = kernels.to(dtype)
    return kernels.to(device), width


def output_length(length: int, orig_sr: int, new_sr: int) -> int:
    """Samples :func:`sinc_resample` returns for ``length`` input samples.

    ``ceil(new * length / orig)`` on the gcd-reduced rates; torchaudio takes the ceiling of the
    quotient rounded to float32 (which matters only past 2**24 output samples), capped by what the
    convolution produces, ``new`` samples per started block of ``orig`` inputs.
    """
    if orig_sr == new_sr:
        return length
    g = math.gcd(orig_sr, new_sr)
    orig, new = orig_sr // g, new_sr // g
    return min(math.ceil(np.float32(new * length / orig)), (length // orig + 1) * new)


def sinc_resample(wave: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Resample over the last dim as ``torchaudio.transforms.Resample(orig_sr, new_sr)`` does.

    Args:
        wave: ``(..., N)`` floating-point samples (any device).
        orig_sr, new_sr: positive integer rates.

    Returns:
        ``(..., output_length(N, orig_sr, new_sr))``, same dtype and device; ``wave`` itself when
        the rates are equal.
    """
    if int(orig_sr) != orig_sr or int(new_sr) != new_sr or orig_sr <= 0 or new_sr <= 0:
        raise ValueError(f"sample rates must be positive integers, got {orig_sr} -> {new_sr}")
    if not wave.is_floating_point():
        raise TypeError(f"sinc_resample needs floating-point samples, got {wave.dtype}")
    if orig_sr == new_sr:
        return wave
    g = math.gcd(int(orig_sr), int(new_sr))
    orig, new = int(orig_sr) // g, int(new_sr) // g
    kernel, width = _kernel(orig, new, wave.device, wave.dtype)
    shape = wave.shape
    flat = wave.reshape(-1, 1, shape[-1])  # (B, 1, N)
    padded = F.pad(flat, (width, width + orig))
    frames = F.conv1d(padded, kernel, stride=orig)  # (B, new, N // orig + 1): phase j of each frame
    out = frames.transpose(1, 2).reshape(flat.shape[0], -1)  # (B, new * (N // orig + 1))
    out = out[:, : output_length(shape[-1], orig_sr, new_sr)]
    return out.reshape(*shape[:-1], out.shape[-1])


def prepare_sv_reference(wav: torch.Tensor, sr: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A decoded reference clip -> its 32 kHz and 16 kHz waves, as upstream's v2Pro ``get_spepc``.

    Steps: channels averaged to mono (upstream averages exactly-stereo files, at either branch of
    its rate test; more channels are averaged too here); resampled to 32 kHz when ``sr`` differs;
    divided by ``min(2, peak)`` when the peak exceeds 1; the 32 kHz wave resampled to 16 kHz.

    Args:
        wav: ``(channels, N)`` or ``(N,)`` float samples in [-1, 1] at ``sr``.
        sr: its sample rate.

    Returns:
        ``wav32`` ``(1, N32)`` (what the SoVITS reference spectrogram reads) and ``wav16``
        ``(1, N16)`` (what the speaker-verification model reads).
    """
    if wav.dim() == 1:
        wav = wav.unsqueeze(0)
    if wav.dim() != 2:
        raise ValueError(f"expected a (channels, samples) wave, got shape {tuple(wav.shape)}")
    if wav.shape[0] > 1:
        wav = wav.mean(0, keepdim=True)  # (1, N)
    wav32 = sinc_resample(wav, sr, SOVITS_SR)
    peak = wav32.abs().max()
    if peak > 1:
        wav32 = wav32 / torch.clamp(peak, max=MAX_PEAK_DIVISOR)
    return wav32, sinc_resample(wav32, SOVITS_SR, SV_SR)
