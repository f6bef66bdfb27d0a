"""Int8 convolutions (app.models.nn.qconv): the activation codes and oneDNN's int8 convolution."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.models.gpt import native
from app.models.nn import qconv
from app.models.nn.layout import CHANNELS_LAST, Conv1dAs2d
from app.models.nn.qconv import Codes, Int8Conv, int8_convolutions

needs_int8 = pytest.mark.skipif(
    not int8_convolutions(), reason="needs oneDNN's int8 convolutions and the native kernels (a C++ compiler)"
)


def _activation(
    channels: int, samples: int, seed: int, magnitude: float, offset: float, dtype
) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(1, channels, 1, samples, generator=gen) * magnitude + offset
    x[..., :: max(1, samples // 3)] = 0.0  # exact zeros: padding must stay zero
    return x.to(dtype).contiguous(memory_format=CHANNELS_LAST)


@needs_int8
@given(
    channels=st.integers(1, 40),
    samples=st.integers(1, 300),
    seed=st.integers(0, 2**16),
    magnitude=st.sampled_from([0.0, 1e-3, 1.0, 30.0, 1e3]),
    offset=st.sampled_from([0.0, -5.0, 5.0]),
    slope=st.sampled_from([1.0, 0.1, 0.01]),
    dtype=st.sampled_from([torch.float32, torch.bfloat16]),
    tail=st.integers(0, 5),
)
@example(channels=3, samples=7, seed=0, magnitude=0.0, offset=0.0, slope=0.1, dtype=torch.float32, tail=2)
@settings(max_examples=80, deadline=None)
def test_codes_hold_the_leaky_relu_within_half_a_step(
    channels, samples, seed, magnitude, offset, slope, dtype, tail
):
    """Any activation: the codes stand for leaky_relu(x) within half a step, zero is exact (the
    zero point), the range covers the values and zero, and ``tail`` zero codes follow."""
    x = _activation(channels, samples, seed, magnitude, offset, dtype)
    codes = Codes.of(x, slope, tail)
    want = F.leaky_relu(x.float(), slope)
    assert codes.codes.shape == x.shape and codes.codes.dtype == torch.uint8
    assert codes.scale > 0 and 0 <= codes.zero_point <= 255
    step = codes.scale
    assert float((codes.dequantize() - want).abs().max()) <= step / 2 + 1e-6 * float(want.abs().max() + 1)
    assert torch.all(codes.codes[x == 0] == codes.zero_point)
    low, high = float(want.min().clamp(max=0)), float(want.max().clamp(min=0))
    assert -codes.zero_point * step <= low + step / 2 and (255 - codes.zero_point) * step >= high - step / 2
    after = codes.codes.as_strided(
        (tail * channels,), (1,), codes.codes.storage_offset() + channels * samples
    )
    assert torch.all(after == codes.zero_point)


@needs_int8
def test_codes_refuse_what_they_cannot_hold():
    with pytest.raises(ValueError, match="channels-last"):
        Codes.of(torch.randn(1, 4, 1, 9))  # plain layout: the memory order would be wrong
    with pytest.raises(ValueError, match=r"\(1, C, 1, T\)"):
        Codes.of(torch.randn(2, 4, 1, 9).contiguous(memory_format=CHANNELS_LAST))
    bad = torch.randn(1, 4, 1, 9).contiguous(memory_format=CHANNELS_LAST)
    bad[0, 1, 0, 3] = float("nan")
    with pytest.raises(RuntimeError, match="inf or NaN"):
        Codes.of(bad)
    with pytest.raises(RuntimeError, match="slope"):
        Codes.of(bad.nan_to_num(), slope=0.0)


@st.composite
def _convs(draw):
    """A length-keeping stride-1 convolution: any kernel (odd: phases; even with an even dilation:
    oneDNN's dilated kernel), dilation and channel counts."""
    kernel = draw(st.sampled_from([1, 2, 3, 5, 7, 11]))
    dilation = draw(st.integers(1, 5).filter(lambda d: (d * (kernel - 1)) % 2 == 0))
    channels_in, channels_out = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    return torch.nn.Conv1d(
        channels_in, channels_out, kernel, dilation=dilation, padding=dilation * (kernel - 1) // 2,
        bias=draw(st.booleans()),
    )  # fmt: skip


@needs_int8
@given(
    conv=_convs(),
    samples=st.integers(1, 200),
    before=st.integers(0, 40),
    after=st.integers(0, 40),
    seed=st.integers(0, 2**16),
)
@example(conv=torch.nn.Conv1d(4, 4, 11, dilation=5, padding=25), samples=101, before=3, after=0, seed=0)
@example(conv=torch.nn.Conv1d(4, 4, 11, dilation=5, padding=25), samples=101, before=3, after=7, seed=0)
@example(conv=torch.nn.Conv1d(4, 4, 2, dilation=2, padding=1), samples=10, before=0, after=0, seed=0)
@settings(max_examples=60, deadline=None)
def test_an_int8_convolution_is_the_float_one_of_its_codes(conv, samples, before, after, seed):
    """A window of a codes buffer (anywhere in it) convolved in int8 gives the float convolution of
    the dequantised codes with the dequantised weights: every output where the window ends the
    buffer, the outputs that do not reach past the window's end otherwise (those tiles keep)."""
    torch.manual_seed(seed)
    layer = Conv1dAs2d(conv)
    q = Int8Conv(layer)
    x = _activation(conv.in_channels, before + samples + after, seed, 2.0, 0.3, torch.float32)
    codes = Codes.of(x, 0.1, q.tail)
    window = codes.codes[..., before : before + samples]
    with torch.inference_mode():
        got = q(window, codes.scale, codes.zero_point, torch.float32)
    scale = q.weight_scale[:, None, None, None]
    assert torch.equal(scale.flatten(), (layer.weight.abs().amax(dim=(1, 2, 3)) / 127).clamp_min(1e-38))
    weight = torch.round(layer.weight / scale).clamp(-127, 127) * scale
    values = codes.dequantize()[..., before : before + samples]
    want = F.conv2d(values, weight, layer.bias, (1, 1), layer.padding, layer.dilation)
    assert got.shape == want.shape and got.is_contiguous(memory_format=CHANNELS_LAST)
    reach = layer.dilation[1] * (layer.weight.shape[-1] - 1) - layer.padding[1]
    kept = samples if after == 0 else max(0, samples - reach)
    tol = 1e-5 * float(want.abs().max() + 1)
    torch.testing.assert_close(got[..., :kept], want[..., :kept], rtol=0, atol=tol)


@needs_int8
def test_int8_convolutions_refuse_other_geometries():
    for conv in (
        torch.nn.Conv1d(4, 4, 3, padding=0),  # shortens
        torch.nn.Conv1d(4, 4, 3, stride=2, padding=1),
        torch.nn.Conv1d(4, 4, 3, padding=1, groups=2),
        torch.nn.ConvTranspose1d(4, 4, 4, 2, padding=1),
    ):
        with pytest.raises(ValueError, match="stride-1, ungrouped and keep the length"):
            Int8Conv(Conv1dAs2d(conv))


def test_int8_convolutions_hold_where_their_parts_exist():
    """Where the parts exist (an AVX-512 CPU: VNNI wherever bf16 is native), the self-check passes:
    a failing one would silently keep the fast mode's decoder in bf16 (and skip these tests)."""
    parts = native.quantize_u8_kernel() is not None and hasattr(torch.ops.onednn, "qconv_prepack")
    if parts and torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
        assert int8_convolutions()


def test_int8_convolutions_need_the_native_quantiser(monkeypatch):
    monkeypatch.setattr(native, "quantize_u8_kernel", lambda: None)
    qconv.int8_convolutions.cache_clear()
    try:
        assert not qconv.int8_convolutions()
        with pytest.raises(RuntimeError, match="native kernels"):
            Codes.of(torch.zeros(1, 2, 1, 3).contiguous(memory_format=CHANNELS_LAST))
    finally:
        qconv.int8_convolutions.cache_clear()
