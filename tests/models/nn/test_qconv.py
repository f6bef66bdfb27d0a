"""Block-scaled int8 convolutions (app.models.nn.qconv): the native block codes, the convolution."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.models.gpt import native
from app.models.nn import qconv
from app.models.nn.layout import CHANNELS_LAST, Conv1dAs2d
from app.models.nn.qconv import MAX_BLOCKS, Int8Conv, _calls, int8_convolutions

needs_int8 = pytest.mark.skipif(
    not int8_convolutions(), reason="needs oneDNN's int8 convolutions and the native kernels (a C++ compiler)"
)


def _activation(channels: int, samples: int, seed: int, dtype, quiet: float = 1.0) -> torch.Tensor:
    """Random values, exact zeros every few samples, the second half ``quiet`` times as loud."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(1, channels, 1, samples, generator=gen) * 2.0 + 0.3
    x[..., samples // 2 :] *= quiet
    x[..., :: max(1, samples // 3)] = 0.0
    return x.to(dtype).contiguous(memory_format=CHANNELS_LAST)


def _windows(codes, scales, zeros, block: int, reach: int) -> torch.Tensor:
    """The blocks' windows dequantised: (blocks, block + 2 reach, C) float32."""
    return (codes.float() - zeros.float()[:, None, None]) * scales[:, None, None]


@needs_int8
@given(
    channels=st.integers(1, 40),
    samples=st.integers(1, 400),
    block=st.integers(1, 120),
    reach=st.integers(0, 30),
    extra=st.integers(0, 3),
    seed=st.integers(0, 2**16),
    slope=st.sampled_from([1.0, 0.1]),
    dtype=st.sampled_from([torch.float32, torch.bfloat16]),
    quiet=st.sampled_from([1.0, 1e-3]),
)
@example(channels=3, samples=7, block=4, reach=2, extra=1, seed=0, slope=0.1, dtype=torch.float32, quiet=0.0)
@settings(max_examples=80, deadline=None)
def test_block_codes_hold_each_window_within_half_its_step(
    channels, samples, block, reach, extra, seed, slope, dtype, quiet
):
    """Block n's codes are its input window [n block - reach, (n + 1) block + reach) of
    leaky_relu(x): within half of its own step (a quiet block keeps a fine step next to a loud
    one), zero exact (outside the input and where x is zero), the block's range covered."""
    quantise, _ = native.block_quantiser()
    x = _activation(channels, samples, seed, dtype, quiet)
    blocks = math.ceil(samples / block) + extra
    codes, scales, zeros = quantise(x, slope, block, reach, blocks)
    window = block + 2 * reach
    assert codes.shape == (blocks, window, channels) and codes.dtype == torch.uint8
    values = _windows(codes, scales, zeros, block, reach)
    act = F.pad(F.leaky_relu(x.float(), slope)[0, :, 0].t(), (0, 0, reach, blocks * block + reach - samples))
    zero_in = F.pad(x[0, :, 0].t() == 0, (0, 0, reach, blocks * block + reach - samples), value=True)
    for n in range(blocks):
        want = act[n * block : n * block + window]
        step = float(scales[n])
        assert float((values[n] - want).abs().max()) <= step / 2 + 1e-6 * (float(want.abs().max()) + 1)
        assert torch.all(codes[n][zero_in[n * block : n * block + window]] == zeros[n])
        low, high = min(float(want.min()), 0.0), max(float(want.max()), 0.0)
        assert -int(zeros[n]) * step <= low + step / 2 and (255 - int(zeros[n])) * step >= high - step / 2
        if high > low:  # the step is the window's own range over 255: a quiet window keeps it fine
            assert step <= (high - low) / 255 * (1 + 1e-5)
        else:
            assert torch.all(codes[n] == zeros[n])


@needs_int8
def test_block_codes_refuse_what_they_cannot_hold():
    quantise, _ = native.block_quantiser()
    with pytest.raises(RuntimeError, match="channels-last"):
        quantise(torch.randn(1, 4, 1, 9), 1.0, 4, 1, 3)  # plain layout: the memory order would be wrong
    good = torch.randn(1, 4, 1, 9).contiguous(memory_format=CHANNELS_LAST)
    with pytest.raises(RuntimeError, match="do not cover"):
        quantise(good, 1.0, 4, 1, 2)
    bad = good.clone()
    bad[0, 1, 0, 3] = float("nan")
    with pytest.raises(RuntimeError, match="inf or NaN"):
        quantise(bad, 1.0, 4, 1, 3)
    with pytest.raises(RuntimeError, match="slope"):
        quantise(good, 0.0, 4, 1, 3)


@st.composite
def _convs(draw):
    """A length-keeping stride-1 convolution of an odd kernel: any dilation and channel counts."""
    kernel = draw(st.sampled_from([1, 3, 5, 7, 11]))
    dilation = draw(st.integers(1, 6))
    channels_in, channels_out = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    return torch.nn.Conv1d(
        channels_in, channels_out, kernel, dilation=dilation, padding=dilation * (kernel - 1) // 2,
        bias=draw(st.booleans()),
    )  # fmt: skip


@needs_int8
@given(
    conv=_convs(),
    samples=st.integers(1, 700),
    block=st.integers(1, 200),
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from([torch.float32, torch.bfloat16]),
    residual=st.booleans(),
)
@example(conv=torch.nn.Conv1d(4, 4, 11, dilation=5, padding=25), samples=1001, block=480, seed=0,
         dtype=torch.float32, residual=True)  # fmt: skip
@settings(max_examples=60, deadline=None)
def test_an_int8_convolution_is_the_float_one_of_its_block_codes(conv, samples, block, seed, dtype, residual):
    """Each block of outputs is the float convolution ("valid") of its own dequantised window with
    the dequantised weights, plus the bias and the residual: whatever the length, block, dilation
    and the calls' batch sizes."""
    torch.manual_seed(seed)
    layer = Conv1dAs2d(conv)
    q = Int8Conv(layer, block=block)
    x = _activation(conv.in_channels, samples, seed, dtype, quiet=1e-2)
    res = torch.randn(1, conv.out_channels, 1, samples).to(dtype).contiguous(memory_format=CHANNELS_LAST)
    with torch.inference_mode():
        got = q(x, 0.1, res if residual else None)
    assert got.shape == (1, conv.out_channels, 1, samples) and got.dtype == dtype
    assert got.is_contiguous(memory_format=CHANNELS_LAST)
    quantise, _ = native.block_quantiser()
    blocks = math.ceil(samples / q.block)
    codes, scales, zeros = quantise(x, 0.1, q.block, q.reach, blocks)
    windows = _windows(codes, scales, zeros, q.block, q.reach).transpose(1, 2)  # (blocks, C, window)
    scale = q.weight_scale[:, None, None]
    weight = torch.round(layer.weight[:, :, 0] / scale).clamp(-127, 127) * scale
    want = F.conv1d(windows, weight, None, dilation=layer.dilation[1])  # (blocks, C_out, block)
    want = want.transpose(0, 1).reshape(conv.out_channels, -1)[:, :samples]
    if layer.bias is not None:
        want = want + layer.bias[:, None]
    if residual:
        want = want + res[0, :, 0].float()
    tol = 1e-5 * float(want.abs().max() + 1) + (
        0.0 if dtype == torch.float32 else 8e-3 * float(want.abs().max())
    )
    torch.testing.assert_close(got[0, :, 0].float(), want, rtol=0, atol=tol)


@given(blocks=st.integers(1, 500))
def test_calls_cover_the_blocks_in_a_few_batch_sizes(blocks):
    calls, first = _calls(blocks), 0
    for start, count in calls:
        assert start == first and count in {MAX_BLOCKS >> i for i in range(MAX_BLOCKS.bit_length())}
        first += count
    assert first == blocks


@needs_int8
def test_int8_convolutions_refuse_other_geometries():
    for conv in (
        torch.nn.Conv1d(4, 4, 3, padding=0),  # shortens
        torch.nn.Conv1d(4, 4, 3, stride=2, padding=1),
        torch.nn.Conv1d(4, 4, 3, padding=1, groups=2),
        torch.nn.Conv1d(4, 4, 2, padding=1, dilation=2),  # even kernel
        torch.nn.ConvTranspose1d(4, 4, 4, 2, padding=1),
    ):
        with pytest.raises(ValueError, match="stride-1, ungrouped, of an odd kernel"):
            Int8Conv(Conv1dAs2d(conv))


def test_int8_convolutions_hold_where_their_parts_exist():
    """Where the parts exist (an AVX-512 CPU: VNNI wherever bf16 is native), the self-check passes:
    a failing one would silently keep the fast mode's decoder in bf16 (and skip these tests)."""
    parts = native.block_quantiser() is not None and hasattr(torch.ops.onednn, "qconv_prepack")
    if parts and torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
        assert int8_convolutions()


def test_int8_convolutions_need_the_native_kernels(monkeypatch):
    monkeypatch.setattr(native, "block_quantiser", lambda: None)
    qconv.int8_convolutions.cache_clear()
    try:
        assert not qconv.int8_convolutions()
        layer = Conv1dAs2d(torch.nn.Conv1d(2, 2, 3, padding=1))
        with pytest.raises(RuntimeError, match="native kernels"):
            Int8Conv(layer)(torch.zeros(1, 2, 1, 3).contiguous(memory_format=CHANNELS_LAST))
    finally:
        qconv.int8_convolutions.cache_clear()
