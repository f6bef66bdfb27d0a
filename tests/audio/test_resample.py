"""torchaudio-equal sinc resampling: lengths, an independent formula, filtering, upstream's numbers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from app.audio.resample import (
    LOWPASS_FILTER_WIDTH,
    ROLLOFF,
    _kernel,
    output_length,
    prepare_sv_reference,
    sinc_resample,
)

RATE_PAIRS = [(44100, 32000), (32000, 16000), (16000, 32000), (48000, 44100), (22050, 24000), (8000, 11025)]


def _direct(x: np.ndarray, orig_sr: int, new_sr: int, float32_phase: bool = True) -> np.ndarray:
    """Each output sample straight from the windowed-sinc interpolation formula, float64.

    y[n] = sum_m x[m] h(m / orig - n / new), h(tau) = sinc(base tau) hann(base tau / w) base / orig,
    base = min(orig, new) * rolloff, |base tau| <= w; rates reduced by their gcd. Output n is phase
    j = n % new of block f = n // new: m / orig - n / new = (m - f orig) / orig - j / new, and
    torchaudio evaluates j / new in float32 (``float32_phase``), a ~1e-5 deviation from exact.
    """
    g = math.gcd(orig_sr, new_sr)
    orig, new = orig_sr // g, new_sr // g
    base = min(orig, new) * ROLLOFF
    w = LOWPASS_FILTER_WIDTH
    n_out = math.ceil(new * len(x) / orig)
    m = np.arange(len(x))
    y = np.empty(n_out)
    for n in range(n_out):
        f, j = divmod(n, new)
        phase = float(np.float32(j / new)) if float32_phase else j / new
        t = np.clip(((m - f * orig) / orig - phase) * base, -w, w)
        h = np.sinc(t) * np.cos(np.pi * t / (2 * w)) ** 2 * base / orig  # np.sinc(t) = sin(pi t) / (pi t)
        y[n] = np.dot(x, h)
    return y


@pytest.mark.parametrize(("orig", "new"), RATE_PAIRS)
def test_matches_the_interpolation_formula(orig: int, new: int) -> None:
    rng = np.random.default_rng(orig + new)
    x = rng.uniform(-1, 1, 997)
    expected = _direct(x, orig, new)
    ours64 = sinc_resample(torch.from_numpy(x), orig, new).numpy()
    ours32 = sinc_resample(torch.from_numpy(x).float(), orig, new).numpy()
    assert ours64.shape == ours32.shape == expected.shape
    assert np.abs(ours64 - expected).max() < 1e-6  # kernel rounded to float32, as Resample's
    assert np.abs(ours32 - expected).max() < 2e-6  # plus float32 arithmetic
    assert np.abs(ours64 - _direct(x, orig, new, float32_phase=False)).max() < 2e-4


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3000), st.sampled_from(RATE_PAIRS))
def test_output_length(n: int, rates: tuple[int, int]) -> None:
    orig, new = rates
    out = sinc_resample(torch.zeros(2, n), orig, new)
    assert out.shape == (2, math.ceil(n * new / orig)) == (2, output_length(n, orig, new))


def test_length_rule_rounds_through_float32_like_torchaudio() -> None:
    # 50331649 / 2 = 25165824.5; float32 holds only even integers there, so it is 25165824, which
    # torchaudio's ceil keeps (exact arithmetic would give 25165825).
    assert output_length(50331649, 2, 1) == 25165824
    # 134217740 / 2 = 67108870 rounds up to 67108872 in float32, but the convolution makes only
    # 67108870 + 1 samples (one per started block of 2): torchaudio's slice returns those.
    assert output_length(134217740, 2, 1) == 67108871
    assert output_length(1000, 2, 3) == 1500


def test_equal_rates_return_the_input_and_batch_dims_are_kept() -> None:
    x = torch.randn(3, 100)
    assert sinc_resample(x, 16000, 16000) is x
    batched = torch.randn(2, 3, 500)
    out = sinc_resample(batched, 44100, 32000)
    assert out.shape == (2, 3, output_length(500, 44100, 32000))
    for i in range(2):
        for j in range(3):
            torch.testing.assert_close(
                out[i, j], sinc_resample(batched[i, j], 44100, 32000), rtol=0, atol=1e-6
            )


def test_passband_kept_and_aliases_removed() -> None:
    sr, n = 44100, 44100
    t = torch.arange(n, dtype=torch.float64) / sr
    low = sinc_resample(torch.sin(2 * math.pi * 1000 * t), sr, 16000)[2000:-2000]
    t16 = (torch.arange(low.numel() + 4000, dtype=torch.float64) / 16000)[2000:-2000]
    assert (low - torch.sin(2 * math.pi * 1000 * t16)).abs().max() < 1e-3  # a 1 kHz tone passes intact
    high = sinc_resample(torch.sin(2 * math.pi * 12000 * t), sr, 16000)[2000:-2000]
    assert high.abs().max() < 0.05  # 12 kHz is above the new Nyquist (8 kHz): filtered out, not folded
    dc = sinc_resample(torch.ones(4000, dtype=torch.float64), 32000, 16000)[100:-100]
    assert (dc - 1).abs().max() < 1e-2


def test_kernels_are_cached_per_rates_device_dtype() -> None:
    assert _kernel.cache_info().maxsize == 16
    sinc_resample(torch.zeros(1000), 44100, 32000)
    hits = _kernel.cache_info().hits
    sinc_resample(torch.zeros(700), 44100, 32000)
    assert _kernel.cache_info().hits == hits + 1
    k32, w32 = _kernel(441, 320, torch.device("cpu"), torch.float32)
    k64, w64 = _kernel(441, 320, torch.device("cpu"), torch.float64)
    assert k32.shape == k64.shape == (320, 1, 2 * w32 + 441) and w32 == w64 == 9
    assert k64.dtype == torch.float64 and (k64 - k32.double()).abs().max() < 1e-7


def test_rejects_bad_arguments() -> None:
    with pytest.raises(TypeError, match="floating-point"):
        sinc_resample(torch.zeros(10, dtype=torch.int16), 16000, 8000)
    with pytest.raises(ValueError, match="positive integers"):
        sinc_resample(torch.zeros(10), 16000, 0)
    with pytest.raises(ValueError, match="positive integers"):
        sinc_resample(torch.zeros(10), 44100.5, 16000)  # type: ignore[arg-type]


# ---- prepare_sv_reference ----------------------------------------------------------------------


def test_reference_mono_mix_resample_and_peak_rule() -> None:
    rng = torch.Generator().manual_seed(0)
    stereo = torch.rand(2, 4410, generator=rng) * 0.8 - 0.4
    wav32, wav16 = prepare_sv_reference(stereo, 44100)
    expected32 = sinc_resample(stereo.mean(0, keepdim=True), 44100, 32000)
    assert torch.equal(wav32, expected32)
    assert torch.equal(wav16, sinc_resample(expected32, 32000, 16000))
    assert wav32.shape == (1, 3200) and wav16.shape == (1, 1600)


def test_reference_at_32k_is_mixed_but_not_resampled() -> None:
    # Upstream's get_spepc averages stereo in both branches of its rate test.
    stereo = torch.stack([torch.full((640,), 0.2), torch.full((640,), 0.4)])
    wav32, wav16 = prepare_sv_reference(stereo, 32000)
    torch.testing.assert_close(wav32, torch.full((1, 640), 0.3))
    assert wav16.shape == (1, 320)
    mono32, _ = prepare_sv_reference(torch.full((640,), 0.5), 32000)
    assert mono32.shape == (1, 640) and torch.equal(mono32, torch.full((1, 640), 0.5))


@pytest.mark.parametrize(("peak", "divisor"), [(0.8, 1.0), (1.5, 1.5), (3.0, 2.0)])
def test_reference_peak_rule(peak: float, divisor: float) -> None:
    wav = torch.zeros(1, 1000)
    wav[0, 500] = peak
    wav32, _ = prepare_sv_reference(wav, 32000)
    assert wav32.abs().max().item() == pytest.approx(peak / divisor)


def test_reference_of_the_upstream_fixture(upstream_fixtures: Path) -> None:
    io = torch.load(upstream_fixtures / "sv_eres2netv2_tiny_io.pt", weights_only=True)
    wav32, wav16 = prepare_sv_reference(io["inputs"]["ref_wav_loaded"], io["inputs"]["ref_sr"])
    assert wav32.shape == io["ref_wav_32k"].shape and wav16.shape == io["ref_wav_16k"].shape
    torch.testing.assert_close(wav32, io["ref_wav_32k"], rtol=0, atol=1e-6)
    torch.testing.assert_close(wav16, io["ref_wav_16k"], rtol=0, atol=1e-6)
