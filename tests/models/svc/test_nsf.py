"""The harmonic source and the NSF decoder: phase maths, voicing, noise levels, lengths."""

from __future__ import annotations

import math

import pytest
import torch

from app.models.svc.noise import TorchNoise, ZeroNoise
from app.models.svc.nsf import HarmonicSource, NSFGenerator

SR = 16000


def reference_sines(f0: torch.Tensor, hop: int, start: torch.Tensor) -> torch.Tensor:
    """Sample by sample in float64: phase[n] = start + sum_{m <= n} frac(k f0[m] / sr)."""
    f0_up = f0.double().repeat_interleave(hop, dim=1)  # (B, N)
    k = torch.arange(1, 10, dtype=torch.float64)
    steps = torch.remainder(f0_up[:, :, None] * k / SR, 1.0)
    phase = start.double()[:, None, :] + torch.cumsum(steps, dim=1)
    return 0.1 * torch.sin(2 * math.pi * phase)


def test_constant_pitch_gives_exact_harmonics() -> None:
    source = HarmonicSource(SR)
    f0 = torch.full((1, 20), 250.0)
    sines = source.sines(f0, 40, ZeroNoise())  # (1, 800, 9)
    n = torch.arange(1, 801, dtype=torch.float64)
    for k in (1, 2, 9):
        expected = 0.1 * torch.sin(2 * math.pi * k * 250.0 * n / SR)
        torch.testing.assert_close(sines[0, :, k - 1].double(), expected, atol=2e-6, rtol=0)


def test_changing_pitch_keeps_a_continuous_phase() -> None:
    torch.manual_seed(0)
    f0 = 100 + 900 * torch.rand(2, 300)  # many pitch jumps, long signal
    source = HarmonicSource(SR)
    start = torch.rand(2, 9)

    class FixedPhase(ZeroNoise):
        def uniform(self, shape, like):
            return start.clone().to(like.dtype)

    sines = source.sines(f0, 64, FixedPhase())
    start[:, 0] = 0  # the fundamental always starts at phase 0
    torch.testing.assert_close(sines.double(), reference_sines(f0, 64, start), atol=1e-5, rtol=0)


def test_unvoiced_frames_are_noise_only_with_upstream_levels() -> None:
    f0 = torch.zeros(1, 200)
    f0[:, 100:] = 220.0
    source = HarmonicSource(SR)
    silent = source.sines(f0, 50, ZeroNoise())
    assert silent[:, : 100 * 50].abs().max() == 0
    assert silent[:, 100 * 50 :].abs().max() > 0.09

    class NoiseOnly(TorchNoise):  # random noise, zero start phases (as in `silent`)
        def uniform(self, shape, like):
            return torch.zeros(tuple(shape), dtype=like.dtype)

    noisy = source.sines(f0, 50, NoiseOnly(3))
    unvoiced_std = noisy[:, : 100 * 50].std().item()
    voiced_residual = (noisy - silent)[:, 100 * 50 :].std().item()
    assert unvoiced_std == pytest.approx(0.1 / 3, rel=0.05)
    assert voiced_residual == pytest.approx(0.003, rel=0.05)


@pytest.mark.parametrize("legacy", [False, True])
def test_generator_output_is_frames_times_hop(legacy: bool) -> None:
    rates, kernels = (5, 4, 2), (11, 8, 4)  # kernel - rate even, as upstream configs
    gen = NSFGenerator(6, SR, "1", (3,), ((1, 3, 5),), rates, 16, kernels, 4, legacy_padding=legacy).eval()
    z = torch.randn(2, 6, 7)
    out = gen(z, torch.full((2, 7), 200.0), torch.randn(2, 4, 1), ZeroNoise())
    assert out.shape == (2, 1, 7 * 40)
    assert out.abs().max() < 1
    assert [c.stride[0] for c in gen.noise_convs] == [8, 2, 1]
