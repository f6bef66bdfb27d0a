"""Kaldi fbank: frame counts, known values, an independent numpy version, upstream's numbers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from app.audio.fbank import kaldi_fbank, mel_banks, num_frames

FLOOR = math.log(np.finfo(np.float32).eps)  # ln(2**-23) = -15.9424


def _numpy_fbank(x: np.ndarray, bins: int = 80, sr: float = 16000.0, low: float = 20.0) -> np.ndarray:
    """Kaldi's compute-fbank-feats, frame by frame in float64 (feature-window.cc, mel-computations.cc)."""
    size, shift, n_fft = int(sr * 0.025), int(sr * 0.010), 512
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(size) / (size - 1))
    window = hann**0.85
    mel = lambda f: 1127.0 * np.log(1.0 + np.asarray(f) / 700.0)  # noqa: E731
    lo, hi = mel(low), mel(sr / 2)
    delta = (hi - lo) / (bins + 1)
    fft_mel = mel(np.arange(n_fft // 2) * sr / n_fft)
    banks = np.zeros((bins, n_fft // 2 + 1))
    for b in range(bins):
        left, center, right = lo + b * delta, lo + (b + 1) * delta, lo + (b + 2) * delta
        up = (fft_mel - left) / (center - left)
        down = (right - fft_mel) / (right - center)
        banks[b, : n_fft // 2] = np.maximum(0.0, np.minimum(up, down))
    rows = []
    for start in range(0, len(x) - size + 1, shift):
        frame = x[start : start + size].astype(np.float64)
        frame = frame - frame.mean()
        frame = frame - 0.97 * np.concatenate([frame[:1], frame[:-1]])
        spectrum = np.abs(np.fft.rfft(frame * window, n_fft)) ** 2
        rows.append(np.log(np.maximum(banks @ spectrum, np.finfo(np.float32).eps)))
    return np.array(rows)


def test_matches_an_independent_numpy_version() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(8000) / 16000
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(8000)
    ours = kaldi_fbank(torch.from_numpy(x).float()).double().numpy()
    expected = _numpy_fbank(x)
    assert ours.shape == expected.shape == (48, 80)
    assert np.abs(ours - expected).max() < 1e-3


@settings(max_examples=40, deadline=None)
@given(st.integers(400, 4000))
def test_frame_count_is_kaldi_snip_edges(n: int) -> None:
    out = kaldi_fbank(torch.zeros(n), num_mel_bins=24)
    assert out.shape == (1 + (n - 400) // 160, 24) == (num_frames(n), 24)


def test_frame_options() -> None:
    # 800-sample frames (FFT 1024) every 320 samples
    assert kaldi_fbank(torch.zeros(2000), frame_length_ms=50.0, frame_shift_ms=20.0).shape == (4, 80)
    assert num_frames(2000, frame_length_ms=50.0, frame_shift_ms=20.0) == 4
    assert num_frames(399) == 0
    assert kaldi_fbank(torch.zeros(1, 800), sample_frequency=8000.0, num_mel_bins=23).shape == (8, 23)


def test_silence_and_dc_hit_the_log_floor() -> None:
    torch.testing.assert_close(kaldi_fbank(torch.zeros(1000)), torch.full((4, 80), FLOOR))
    # Per-frame DC removal: a constant wave has no energy left either.
    torch.testing.assert_close(kaldi_fbank(torch.full((1000,), 0.25)), torch.full((4, 80), FLOOR))


def test_gain_adds_log_power() -> None:
    x = torch.randn(4000, generator=torch.Generator().manual_seed(1)) * 0.1
    diff = kaldi_fbank(2 * x) - kaldi_fbank(x)
    torch.testing.assert_close(diff, torch.full_like(diff, 2 * math.log(2)), rtol=0, atol=1e-4)


def test_tone_peaks_in_the_filter_centred_on_it() -> None:
    t = torch.arange(16000, dtype=torch.float32) / 16000
    out = kaldi_fbank(0.5 * torch.sin(2 * math.pi * 1000 * t))
    peak = int(out.mean(0).argmax())
    mel = lambda f: 1127 * math.log(1 + f / 700)  # noqa: E731
    delta = (mel(8000) - mel(20)) / 81
    center_hz = 700 * (math.exp((mel(20) + (peak + 1) * delta) / 1127) - 1)
    assert abs(center_hz - 1000) < 0.6 * (700 * (math.exp((mel(1000) + delta) / 1127) - 1) - 1000)


def test_mel_banks_shape_and_triangles() -> None:
    banks = mel_banks(80, 512, 16000.0, 20.0, 0.0)
    assert banks.shape == (80, 257) and banks.dtype == torch.float32
    assert banks.min() >= 0 and banks.max() <= 1
    assert torch.all(banks[:, -1] == 0)  # the Nyquist bin carries no weight (Kaldi)
    assert torch.all(banks[:, 0] == 0)  # 0 Hz is below the first filter (20 Hz)
    first_bin = (banks > 0).float().argmax(dim=1)
    assert torch.all(first_bin[1:] >= first_bin[:-1])  # filters move up in frequency
    with pytest.raises(ValueError, match="Nyquist"):
        mel_banks(80, 512, 16000.0, 9000.0, 0.0)


def test_input_forms_and_errors() -> None:
    x = torch.randn(2000)
    assert torch.equal(kaldi_fbank(x), kaldi_fbank(x[None]))
    half = kaldi_fbank(x.half())
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, kaldi_fbank(x.half().float()))
    assert kaldi_fbank(x.double()).dtype == torch.float64
    with pytest.raises(ValueError, match="shorter than one 400-sample frame"):
        kaldi_fbank(torch.zeros(399))
    with pytest.raises(ValueError, match="one wave"):
        kaldi_fbank(torch.zeros(2, 1000))
    with pytest.raises(TypeError, match="floating-point"):
        kaldi_fbank(torch.zeros(1000, dtype=torch.int16))


def test_upstream_fixture(upstream_fixtures: Path) -> None:
    io = torch.load(upstream_fixtures / "sv_eres2netv2_tiny_io.pt", weights_only=True)
    expected = io["fbank"][0]
    ours = kaldi_fbank(io["ref_wav_16k"], num_mel_bins=expected.shape[-1])
    assert ours.shape == expected.shape
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-3)
