"""Packed linear kernels against F.linear, for decoding (1 row) and prefill (many rows) shapes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from app.models.gpt import native
from app.models.gpt.packed import PRECISIONS, NativeLinear, _blocks, pack_linear, resolve_precision

# Max error relative to the output's std, per precision (float32 kernels differ by summation order).
TOLERANCE = {"reference": 1e-6, "fp32": 1e-5, "bf16": 0.03, "int8": 0.05, "int8_dynamic": 0.1}


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("rows", [1, 3, 40])
@pytest.mark.parametrize("relu", [False, True])
def test_kernels_compute_the_linear_layer(precision: str, rows: int, relu: bool) -> None:
    gen = torch.Generator().manual_seed(rows)
    weight = torch.randn(96, 64, generator=gen) / 8
    bias = torch.randn(96, generator=gen)
    x = torch.randn(2, rows, 64, generator=gen)
    want = F.linear(x, weight, bias)
    want = F.relu(want) if relu else want
    fn = pack_linear(weight, bias, resolve_precision(precision, weight.device), relu=relu)
    got = fn(x)
    assert got.shape == want.shape and got.dtype == torch.float32
    assert (got - want).abs().max().item() <= TOLERANCE[precision] * want.std().item()
    if relu:
        assert (got >= 0).all()


def test_no_bias_and_non_contiguous_input() -> None:
    weight = torch.randn(50, 32)
    x = torch.randn(1, 96)[:, :32]  # a strided view, as the decoding step produces
    for precision in PRECISIONS:
        got = pack_linear(weight, None, resolve_precision(precision, weight.device))(x)
        assert (got - x @ weight.T).abs().max().item() < 0.1 * (x @ weight.T).std().item(), precision


def test_unknown_precision() -> None:
    with pytest.raises(ValueError, match="unknown precision"):
        resolve_precision("int4", torch.device("cpu"))


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 200),
    k=st.integers(1, 300),
    rows=st.integers(1, 12),
    relu=st.booleans(),
    with_bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_fp32_float16_weights_equal_float32_maths(
    n: int, k: int, rows: int, relu: bool, with_bias: bool, seed: int
) -> None:
    """A weight exact in float16 (every GPT file's) runs in the native float16 GEMV (decoding rows)
    or a float32 GEMM on its upcast (prefill rows): float32 maths either way, any shape."""
    gen = torch.Generator().manual_seed(seed)
    weight = (torch.randn(n, k, generator=gen) / 8).half().float()
    bias = torch.randn(n, generator=gen) if with_bias else None
    x = torch.randn(rows, k, generator=gen)
    want = F.linear(x.double(), weight.double(), None if bias is None else bias.double())
    want = (F.relu(want) if relu else want).float()
    got = pack_linear(weight, bias, "fp32", relu=relu)(x)
    assert got.shape == want.shape and got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * k**0.5)


def _held_tensors(fn) -> list[torch.Tensor]:
    """The tensors a packed linear's closure holds (a NativeLinear's call closure)."""
    fn = fn.run if isinstance(fn, NativeLinear) else fn
    return [c.cell_contents for c in fn.__closure__ or () if isinstance(c.cell_contents, torch.Tensor)]


def test_fp32_holds_an_exact_float16_weight_in_half_the_bytes() -> None:
    assert native.linear_f16_kernel() is not None  # built by `make`; the test machine has a compiler
    exact = (torch.randn(300, 128) / 8).half().float()
    inexact = exact + 1e-7  # not representable in float16: oneDNN's float32 kernel
    for weight, elem in ((exact, 2), (inexact, 4)):
        fn = pack_linear(weight, None, "fp32")
        held = _held_tensors(fn)
        assert held and all(t.element_size() == elem for t in held if t.dim() >= 2)
        x = torch.randn(1, 128)
        torch.testing.assert_close(fn(x), x @ weight.T, rtol=1e-5, atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 200),
    k=st.integers(1, 300),
    rows=st.integers(1, 8),
    relu=st.booleans(),
    with_bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_int8_kernel_is_float32_maths_on_the_rounded_weight(
    n: int, k: int, rows: int, relu: bool, with_bias: bool, seed: int
) -> None:
    """The native int8 GEMV (decoding rows) on the int8 weight times its row scale, any shape
    (padding of the last block included). Its only error of its own: on AVX-512 each row is taken
    as int16 codes (exact int32 sums), rounded to half a step of max|x| / min(32767, 2^31 /
    (127 k)); elsewhere float32 rows. A row holding a NaN takes the float32 path (NaN out)."""
    assert native.linear_int8_kernel() is not None
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(n, k, generator=gen) / 8
    bias = torch.randn(n, generator=gen) if with_bias else None
    x = torch.randn(rows, k, generator=gen)
    scales = (weight.abs().amax(dim=1) / 127.0).clamp_min(1e-12)
    rounded = torch.round(weight / scales[:, None]).clamp(-127, 127) * scales[:, None]
    want = F.linear(x.double(), rounded.double(), None if bias is None else bias.double())
    want = (F.relu(want) if relu else want).float()
    fn = pack_linear(weight, bias, "int8", relu=relu)
    got = fn(x)
    assert got.shape == want.shape and got.dtype == torch.float32
    step = x.abs().amax(dim=1, keepdim=True).double() / min(32767, (2**31 - 1) // (127 * k))
    bound = 0.5 * step * rounded.abs().sum(dim=1).double()[None]  # (rows, n): the rows' rounding
    bound = bound + 1e-5 * want.abs().double() + 1e-5 * k**0.5
    assert bool(((got.double() - want.double()).abs() <= bound).all())
    assert isinstance(fn, NativeLinear) and torch.equal(fn.gemv(x), got)  # the decoding step's direct call
    x[0, k // 2] = float("nan")
    assert bool(fn(x)[0].isnan().all()) or relu  # (a ReLU of NaN may read 0)
    if rows > 1:
        assert torch.equal(fn(x)[1:], got[1:])


def test_int8_holds_a_quarter_of_the_bytes_and_prefills_close() -> None:
    weight = torch.randn(130, 96) / 8
    fn = pack_linear(weight, None, "int8")
    assert any(t.dtype == torch.int8 and t.dim() == 3 for t in _held_tensors(fn))  # the native blocks
    decode, prefill = torch.randn(1, 96), torch.randn(40, 96)
    torch.testing.assert_close(fn(torch.cat([decode, prefill]))[:1], fn(decode), rtol=0.02, atol=0.02)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 200), k=st.integers(1, 100), half=st.booleans(), bf16=st.booleans())
def test_unpack_cols_returns_the_transposed_weight(n: int, k: int, half: bool, bf16: bool) -> None:
    """The prefill's W^T (K, N) from a packing: exact for float16 and int8 weights, any shape."""
    unpack = native.unpack_cols_kernel()
    assert unpack is not None
    if half:
        weight = torch.randn(n, k).half()
        if bf16:  # float16 is not exact in bfloat16: the kernel's rounding is torch's
            return torch.testing.assert_close(
                unpack(_blocks(weight), n, torch.bfloat16), weight.t().bfloat16()
            )
    else:
        weight = torch.randint(-128, 128, (n, k), dtype=torch.int8)
    dtype = torch.bfloat16 if bf16 else torch.float32
    assert torch.equal(unpack(_blocks(weight), n, dtype), weight.t().to(dtype))
    if not half:  # the int8 weight as int8 too (the prefill's int8 GEMM)
        assert torch.equal(unpack(_blocks(weight), n, torch.int8), weight.t())


def _row_quantisation_bound(x: torch.Tensor, weight: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """What quantising each row of ``x`` to int8 (one scale, max|x| -> 127) may move ``x @ W^T``:
    half a step per input times |W|, plus the bfloat16 rounding of the result and of ``x``."""
    step = x.abs().amax(dim=1, keepdim=True) / 127
    return step / 2 * weight.abs().sum(dim=1)[None] + 2**-7 * (y.abs() + x.abs() @ weight.abs().t()) + 1e-6


@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(1, 40), k=st.integers(1, 100), n=st.integers(1, 150), relu=st.booleans(),
    with_bias=st.booleans(), bf16_in=st.booleans(), seed=st.integers(0, 2**16),
)  # fmt: skip
def test_w8a8_is_the_row_quantised_int8_product(
    m: int, k: int, n: int, relu: bool, with_bias: bool, bf16_in: bool, seed: int
) -> None:
    """The prefill's int8 x int8 product (any shape: the AVX-512 bodies and the scalar tails).
    Rows that are int8 codes times a power of two (one code +-127) are quantised back to exactly
    those codes: the result is then the exact int32 sums with scales, bias and ReLU applied in
    float32 and rounded to bfloat16 (a bfloat16 step apart at most: the compiler may fuse the
    multiply and the add). A row of zeros gives the bias."""
    kernel = native.linear_w8a8_kernel()
    assert kernel is not None
    gen = torch.Generator().manual_seed(seed)
    codes = torch.randint(-127, 128, (m, k), generator=gen).float()
    codes[:, 0] = torch.where(torch.rand(m, generator=gen) < 0.5, -127.0, 127.0)
    row_scale = 2.0 ** torch.randint(-12, 4, (m, 1), generator=gen).float()
    codes[0] = 0  # scale 1, all-zero codes
    x = codes * row_scale
    x = x.bfloat16() if bf16_in else x  # exact either way (8 significant bits)
    wt = torch.randint(-128, 128, (k, n), dtype=torch.int8, generator=gen)
    scale = torch.rand(n, generator=gen) * 0.05
    bias = torch.randn(n, generator=gen) if with_bias else None
    got = kernel(x, wt, scale, bias, relu)
    step = torch.where(codes.abs().amax(dim=1, keepdim=True) > 0, row_scale, torch.ones_like(row_scale))
    want = (codes.double() @ wt.double()).float() * step * scale[None]
    want = want if bias is None else want + bias
    want = (want.relu() if relu else want).bfloat16()
    assert got.dtype == torch.bfloat16 and got.shape == (m, n)
    torch.testing.assert_close(got.float(), want.float(), rtol=2**-7, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(m=st.integers(1, 30), k=st.integers(1, 100), n=st.integers(1, 80), seed=st.integers(0, 2**16))
def test_w8a8_stays_within_the_row_quantisation_bound(m: int, k: int, n: int, seed: int) -> None:
    """Any float32 rows: within half a quantisation step per input of the float32 product."""
    kernel = native.linear_w8a8_kernel()
    assert kernel is not None
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(m, k, generator=gen) * torch.rand(m, 1, generator=gen) * 10
    wt = torch.randint(-128, 128, (k, n), dtype=torch.int8, generator=gen)
    scale = torch.rand(n, generator=gen) * 0.05
    weight = wt.t().float() * scale[:, None]
    exact = x.double() @ weight.double().t()
    got = kernel(x, wt, scale, None, False).double()
    assert bool(((got - exact).abs() <= _row_quantisation_bound(x, weight, exact.float()).double()).all())


def test_w8a8_refuses_what_it_cannot_multiply() -> None:
    kernel = native.linear_w8a8_kernel()
    assert kernel is not None
    x, wt, scale = torch.randn(4, 8), torch.ones(8, 6, dtype=torch.int8), torch.ones(6)
    with pytest.raises(RuntimeError, match=r"\(K, N\) int8"):
        kernel(x, wt.float(), scale, None, False)
    with pytest.raises(RuntimeError, match="x has 7 features"):
        kernel(torch.randn(4, 7), wt, scale, None, False)
    with pytest.raises(RuntimeError, match=r"\(N,\) float32"):
        kernel(x, wt, torch.ones(5), None, False)
    with pytest.raises(RuntimeError, match="bfloat16 or float32"):
        kernel(x.half(), wt, scale, None, False)


@pytest.mark.parametrize(("relu", "with_bias"), [(False, False), (True, True), (False, True)])
def test_int8_prefill_rows_scale_bias_and_relu(relu: bool, with_bias: bool) -> None:
    """Many rows take the int8 x int8 GEMM (each row quantised to int8); they give the GEMV's
    float32-activation results to within what that quantisation can move them."""
    gen = torch.Generator().manual_seed(3)
    weight, x = torch.randn(70, 96, generator=gen) / 8, torch.randn(40, 96, generator=gen)
    bias = torch.randn(70, generator=gen) if with_bias else None
    fn = pack_linear(weight, bias, "int8", relu=relu)
    many = fn(x)  # 40 rows: the prefill path
    rows = torch.cat([fn.gemv(x[i : i + 1]) for i in range(40)])  # one row at a time: the GEMV
    assert many.dtype == torch.float32 and (not relu or bool((many >= 0).all()))
    assert bool(((many - rows).abs() <= _row_quantisation_bound(x, weight, rows)).all())
    assert not torch.equal(many, rows)  # the int8 activations are not the float32 ones


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 200), k=st.integers(1, 100), bf16=st.booleans(), seed=st.integers(0, 2**16))
def test_unpack_cols_applies_the_scales_then_rounds(n: int, k: int, bf16: bool, seed: int) -> None:
    """With an int8 weight's scales: W^T * scale in float32, then rounded to the dtype (nearest
    even, as torch rounds), for any shape (the AVX-512 body and the scalar tail)."""
    unpack = native.unpack_cols_kernel()
    assert unpack is not None
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randint(-128, 128, (n, k), dtype=torch.int8, generator=gen)
    scales = torch.rand(n, generator=gen) * 0.05
    dtype = torch.bfloat16 if bf16 else torch.float32
    want = (weight.float() * scales[:, None]).t().to(dtype)
    assert torch.equal(unpack(_blocks(weight), n, dtype, scales), want)


def test_unpack_cols_refuses_scales_it_cannot_apply() -> None:
    unpack = native.unpack_cols_kernel()
    assert unpack is not None
    with pytest.raises(RuntimeError, match="int8 weight only"):
        unpack(_blocks(torch.randn(8, 4).half()), 8, torch.float32, torch.ones(8))
    with pytest.raises(RuntimeError, match=r"\(N,\) float32"):
        unpack(_blocks(torch.ones(8, 4, dtype=torch.int8)), 8, torch.float32, torch.ones(7))
    with pytest.raises(RuntimeError, match="int8 weight unscaled as int8"):
        unpack(_blocks(torch.ones(8, 4, dtype=torch.int8)), 8, torch.int8, torch.ones(8))
    with pytest.raises(RuntimeError, match="int8 weight unscaled as int8"):
        unpack(_blocks(torch.randn(8, 4).half()), 8, torch.int8)


@pytest.mark.parametrize(("relu", "with_bias"), [(False, False), (True, True)])
def test_int8_low_rows_are_the_prefill_rows_in_bf16(relu: bool, with_bias: bool) -> None:
    """``low`` (bf16 in, bf16 out: the prefill that stays in bf16) computes what the float32 call
    computes for many rows (both quantise the rows to int8), to bf16 precision."""
    gen = torch.Generator().manual_seed(4)
    weight, x = torch.randn(70, 96, generator=gen) / 8, torch.randn(40, 96, generator=gen)
    bias = torch.randn(70, generator=gen) if with_bias else None
    fn = pack_linear(weight, bias, "int8", relu=relu)
    low = fn.low(x.bfloat16())
    assert low.dtype == torch.bfloat16 and low.shape == (40, 70)
    torch.testing.assert_close(low.float(), fn(x), rtol=0.02, atol=0.02)


def test_int8_prefill_without_native_kernels_is_the_bf16_gemm(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without linear_w8a8 (kernels off) the prefill rows stay float activations: one bf16 GEMM on
    the widened weight, bf16 rounding only."""
    monkeypatch.setattr(native, "linear_w8a8_kernel", lambda: None)
    gen = torch.Generator().manual_seed(5)
    weight, x = torch.randn(70, 96, generator=gen) / 8, torch.randn(40, 96, generator=gen)
    fn = pack_linear(weight, None, "int8")
    rows = torch.cat([fn.gemv(x[i : i + 1]) for i in range(40)])
    torch.testing.assert_close(fn(x), rows, rtol=0.02, atol=0.02)
    torch.testing.assert_close(fn.low(x.bfloat16()).float(), rows, rtol=0.02, atol=0.02)
