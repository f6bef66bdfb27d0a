"""Anti-aliased activations: filter design, resampling, Snake formulas; weight-norm folding of files."""

from __future__ import annotations

import math

import pytest
import torch

from app.models.nn.alias_free import (
    AntiAliasedActivation,
    DownSample1d,
    LowPassFilter1d,
    Snake,
    SnakeBeta,
    UpSample1d,
    kaiser_sinc_filter,
    make_snake,
)
from app.models.nn.norm import WNConv1d, WNConvTranspose1d, fold_weight_norm_state


def test_filter_is_a_symmetric_unit_gain_lowpass() -> None:
    kernel = kaiser_sinc_filter(0.25, 0.3, 12)
    assert kernel.shape == (1, 1, 12)
    torch.testing.assert_close(kernel.sum(), torch.tensor(1.0))
    torch.testing.assert_close(kernel.flip(-1), kernel)  # linear phase
    # Cut-off at a quarter of the rate: the response at Nyquist is small, at DC it is 1.
    taps = kernel.flatten().double()
    nyquist = sum(t * (-1) ** n for n, t in enumerate(taps))
    assert abs(float(nyquist)) < 0.05
    assert kaiser_sinc_filter(0.0, 0.3, 12).abs().sum() == 0
    assert kaiser_sinc_filter(0.25, 0.3, 11).shape == (1, 1, 11)  # odd lengths centre on a tap


def test_filter_window_follows_the_attenuation_estimate() -> None:
    # 12 taps, half width 0.3: A = 2.285 * 5 * pi * 1.2 + 7.95 ~ 51 dB -> beta = 0.1102 (A - 8.7).
    attenuation = 2.285 * 5 * math.pi * 1.2 + 7.95
    beta = 0.1102 * (attenuation - 8.7)
    time = torch.arange(-6, 6) + 0.5
    expected = 0.5 * torch.kaiser_window(12, periodic=False, beta=beta) * torch.sinc(0.5 * time)
    torch.testing.assert_close(kaiser_sinc_filter(0.25, 0.3, 12).flatten(), expected / expected.sum())


def test_resampling_lengths_and_constant_signals() -> None:
    x = torch.full((2, 3, 17), 0.7)
    up = UpSample1d()(x)
    assert up.shape == (2, 3, 34)
    torch.testing.assert_close(
        up, torch.full_like(up, 0.7), atol=2e-3, rtol=0
    )  # replicate padding: no edge dip
    down = DownSample1d()(up)
    assert down.shape == (2, 3, 17)
    torch.testing.assert_close(down, x, atol=2e-3, rtol=0)
    assert LowPassFilter1d(0.25, 0.3, stride=2)(torch.zeros(1, 1, 9)).shape == (1, 1, 5)
    with pytest.raises(ValueError, match="cutoff"):
        LowPassFilter1d(0.6, 0.3)


def test_low_tones_pass_and_high_tones_are_removed() -> None:
    n = torch.arange(256, dtype=torch.float32)
    low = torch.sin(2 * math.pi * 0.02 * n).view(1, 1, -1)
    back = DownSample1d()(UpSample1d()(low))
    torch.testing.assert_close(back[..., 16:-16], low[..., 16:-16], atol=2e-2, rtol=0)
    # 0.45 of the rate is above the downsampler's new Nyquist (0.25): it must be attenuated.
    high = torch.sin(2 * math.pi * 0.45 * n).view(1, 1, -1)
    assert DownSample1d()(high)[..., 8:-8].abs().max() < 1e-2


def test_snake_formulas_and_parameter_names() -> None:
    x = torch.linspace(-3, 3, 40).view(1, 2, 20)
    snake = Snake(2)
    snake.alpha.data = torch.tensor([0.5, 2.0])
    alpha = snake.alpha.view(1, 2, 1)
    torch.testing.assert_close(snake(x), x + torch.sin(alpha * x) ** 2 / alpha)
    beta = SnakeBeta(2, logscale=True)
    beta.alpha.data = torch.tensor([0.1, -0.2])
    beta.beta.data = torch.tensor([0.3, 0.0])
    a, b = beta.alpha.exp().view(1, 2, 1), beta.beta.exp().view(1, 2, 1)
    torch.testing.assert_close(beta(x), x + torch.sin(a * x) ** 2 / b)
    assert set(SnakeBeta(2).state_dict()) == {"alpha", "beta"} and set(Snake(2).state_dict()) == {"alpha"}
    assert torch.equal(SnakeBeta(3, logscale=True).alpha, torch.zeros(3))  # exp(0) = 1
    assert torch.equal(SnakeBeta(3).beta, torch.ones(3))
    with pytest.raises(ValueError, match="snake"):
        make_snake("relu", 2, False)


def test_anti_aliased_activation_keys_and_shape() -> None:
    act = AntiAliasedActivation(make_snake("snakebeta", 4, True))
    assert list(act.state_dict()) == ["act.alpha", "act.beta", "upsample.filter", "downsample.lowpass.filter"]
    x = torch.randn(2, 4, 33)
    assert act(x).shape == x.shape
    assert not torch.allclose(act(x), x)


def test_fold_weight_norm_state_matches_the_module_kernels() -> None:
    torch.manual_seed(0)
    conv, up = WNConv1d(3, 4, 5, bias=False), WNConvTranspose1d(4, 2, 4, 2)
    for p in (conv.weight_g, up.weight_g):
        p.data.uniform_(0.5, 2.0)  # not the norm of v, so folding matters
    state = {f"c.{k}": v for k, v in conv.state_dict().items()} | {
        f"u.{k}": v for k, v in up.state_dict().items()
    }
    folded = fold_weight_norm_state(state)
    assert list(folded) == ["c.weight", "u.bias", "u.weight"]
    torch.testing.assert_close(folded["c.weight"], conv.normed_weight().detach())
    torch.testing.assert_close(folded["u.weight"], up.normed_weight().detach())
    with pytest.raises(KeyError, match="weight_v"):
        fold_weight_norm_state({"c.weight_g": state["c.weight_g"]})
    with pytest.raises(KeyError, match="weight_g"):
        fold_weight_norm_state({"c.weight_v": state["c.weight_v"]})
