"""Inference kernels for the GPT's linear layers: the same maths, weights laid out for fast GEMV.

Decoding one token is a chain of matrix-vector products whose cost is reading the weights (the
full-size model streams ~300 MB of fp32 weights per token), so the kernel and the weight layout
decide the speed. :func:`pack_linear` turns a ``(weight, bias)`` pair into a callable for one of
these precisions:

- ``reference``: ``F.linear`` on the module's own tensors (the straightforward path; used on GPUs
  and as the yardstick in tests).
- ``fp32``: exact float32 maths; results differ from ``reference`` only by summation order
  (~1e-6). A weight that is exactly representable in float16 (every weight of a GPT file: files
  store float16 and upstream computes with the exact upcast) is held in float16 and widened in
  registers by the native GEMV (:mod:`app.models.gpt.native`): half the bytes per token, the same
  float32 products and sums. Other weights are reordered once into oneDNN's blocked layout
  (``torch.ops.mkldnn``), about 2x faster for batch-1 GEMV on x86 CPUs than MKL on the plain
  row-major weight. Falls back to ``reference`` where oneDNN is unavailable (GPU, non-x86 builds).
- ``bf16``: weights rounded to bfloat16 (oneDNN on CPU); activations are cast to bf16 for the
  product and the result back to float32, so norms, residuals, attention and the KV cache stay
  float32. Half the weight traffic.
- ``int8``: weight-only int8 (one scale per output row, symmetric). With the native kernels the
  weight is packed like ``fp32``'s float16 one and widened in registers, activations and sums stay
  float32 for the decoding rows (the GEMV is memory-bound: the only error is the weights'
  rounding); the prefill's many rows, compute-bound, are quantised to int8 per row for one int8
  GEMM (``linear_w8a8``, ~2x a bf16 GEMM on CPUs without AMX). Without the native kernels
  activations are rounded to bf16 for ``torch._weight_int8pack_mm``. A quarter of the weight
  traffic; CPU only.
- ``int8_dynamic``: fbgemm dynamic quantisation: the same int8 weights, activations quantised per
  call to 7 bits (``reduce_range``, safe on CPUs without VNNI). Fastest on x86, about twice the
  logit error of ``int8``; CPU only, and built on torch's quantized tensors, which torch 2.13
  marks deprecated.

Packs hold their own copy of the weights: re-pack after the module's parameters change.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

Precision = Literal["reference", "fp32", "bf16", "int8", "int8_dynamic"]
# Inputs with more rows than this (prefill) use a dequantised bf16 GEMM in the "int8" kernels.
_INT8_GEMV_ROWS = 8
# Inputs with more rows than this (prefill) use a float32 GEMM in the float16-weight kernels.
_HALF_GEMV_ROWS = 8
# Output features per block of the float16 kernel's packed weight (csrc/linear.cpp).
_F16_BLOCK = 64
PRECISIONS: tuple[str, ...] = ("reference", "fp32", "bf16", "int8", "int8_dynamic")
# The opt-in precisions whose results differ from float32 beyond summation order.
APPROXIMATE: tuple[str, ...] = ("bf16", "int8", "int8_dynamic")

LinearFn = Callable[[torch.Tensor], torch.Tensor]
# (packed (ceil(N/64), K, 64) float16 or int8, N, scales (N,) or None, bias (N,) or None, relu).
NativeSpec = tuple[torch.Tensor, int, torch.Tensor | None, torch.Tensor | None, bool]
# Rows up to which a native kernel's ``gemv`` may be called directly (both kernels' GEMV range).
GEMV_ROWS = min(_INT8_GEMV_ROWS, _HALF_GEMV_ROWS)


class NativeLinear:
    """A linear on packed weights: called on any ``(..., K)`` input; ``gemv`` runs the native kernel
    on ``(B, K)`` float32 contiguous rows (B <= GEMV_ROWS) as they are, without the reshapes and
    checks of the call: the decoding step makes ~100 of these calls per token (~4 us each saved).
    ``spec`` is what the native whole-step kernel (``DecodePlan``, csrc/step.cpp) takes of it:
    ``(packed weight, N, scales (int8) or None, bias or None, relu)``. ``low``, where not None,
    takes and returns bfloat16 ``(M, K) -> (M, N)`` rows (a prefill that stays in bf16 between
    its products)."""

    __slots__ = ("gemv", "low", "run", "spec")

    def __init__(self, run: LinearFn, gemv: LinearFn, spec: NativeSpec, low: LinearFn | None = None) -> None:
        self.run = run
        self.gemv = gemv
        self.spec = spec
        self.low = low

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)


def _onednn_available(device: torch.device) -> bool:
    return (
        device.type == "cpu"
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    )


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision actually used on ``device`` (``fp32`` without oneDNN runs as ``reference``)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {list(PRECISIONS)}")
    if precision.startswith("int8") and device.type != "cpu":
        # Only the CPU kernels were measured and tested here; GPUs have memory bandwidth to spare.
        raise ValueError(
            f"precision {precision!r} is for CPU decoding; use 'bf16' or 'reference' on {device}"
        )
    if precision == "fp32" and not _onednn_available(device):
        return "reference"
    return precision


def pack_linear(
    weight: torch.Tensor, bias: torch.Tensor | None, precision: str, relu: bool = False
) -> LinearFn:
    """Return ``f(x) = [relu](x @ weight.T + bias)`` for ``x`` of shape ``(..., in)``, float32 out.

    ``precision`` must already be resolved for the weight's device (:func:`resolve_precision`).
    """
    weight = weight.detach()
    bias = None if bias is None else bias.detach()
    if precision == "reference":
        return _reference(weight, bias, relu)
    if precision == "fp32":
        bias32 = None if bias is None else bias.float().contiguous()
        half = _exact_half(weight)
        kernel = None if half is None else _native("linear_f16_kernel")
        if half is not None and kernel is not None:
            return _half_weight(half, bias32, relu, kernel)
        return _onednn(weight.float(), bias32, relu, torch.float32)
    if precision == "bf16":
        if _onednn_available(weight.device):
            return _onednn(weight.bfloat16(), None if bias is None else bias.bfloat16(), relu, torch.bfloat16)
        return _cast_linear(weight.bfloat16(), bias, relu)
    if precision == "int8":
        return _int8_weight_only(weight.float(), None if bias is None else bias.float(), relu)
    if precision == "int8_dynamic":
        return _int8_dynamic(weight.float(), None if bias is None else bias.float(), relu)
    raise ValueError(f"unknown precision {precision!r}; choose one of {list(PRECISIONS)}")


def _reference(weight: torch.Tensor, bias: torch.Tensor | None, relu: bool) -> LinearFn:
    if relu:
        return lambda x: F.relu(F.linear(x, weight, bias))
    return lambda x: F.linear(x, weight, bias)


def _onednn(weight: torch.Tensor, bias: torch.Tensor | None, relu: bool, dtype: torch.dtype) -> LinearFn:
    # The reorder takes the expected batch as a hint; decoding is batch 1 and larger inputs
    # (prefill, batched rows) still compute correctly with the same packed weight.
    packed = torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), 1)
    attr = "relu" if relu else "none"
    op = torch.ops.mkldnn._linear_pointwise
    if dtype == torch.float32:
        return lambda x: op(x, packed, bias, attr, [], "")
    return lambda x: op(x.to(dtype), packed, bias, attr, [], "").float()


def _exact_half(weight: torch.Tensor) -> torch.Tensor | None:
    """``weight`` as float16 when that holds every value exactly (no rounding, no overflow), else None."""
    if weight.device.type != "cpu" or weight.dtype not in (torch.float32, torch.float16):
        return None
    half = weight.to(torch.float16).contiguous()
    return half if torch.equal(half.float(), weight.float()) else None


def _native(name: str):  # type: ignore[no-untyped-def]
    """A kernel accessor of :mod:`app.models.gpt.native` called (None when the kernels are off)."""
    import app.models.gpt.native as native  # here: `python -m` runs that module

    return getattr(native, name)()


def _blocks(weight: torch.Tensor) -> torch.Tensor:
    """``(N, K)`` -> ``(ceil(N/64), K, 64)``: each block of 64 output rows, transposed (csrc/linear.cpp)."""
    n, k = weight.shape
    blocks = -(-n // _F16_BLOCK)
    padded = F.pad(weight, (0, 0, 0, blocks * _F16_BLOCK - n))
    return padded.view(blocks, _F16_BLOCK, k).transpose(1, 2).contiguous()


def _blocked_int8(
    qweight: torch.Tensor,
    scales: torch.Tensor,
    bias: torch.Tensor | None,
    relu: bool,
    kernel: Callable[..., torch.Tensor],
) -> LinearFn:
    packed = _blocks(qweight)
    n = qweight.shape[0]
    unpack = _native("unpack_cols_kernel")
    bias32 = None if bias is None else bias.float().contiguous()
    bias16 = None if bias is None else bias.bfloat16()
    onednn = _onednn_available(qweight.device)

    # Prefill rows (compute-bound): with the native kernels, the rows quantised to int8 (one scale
    # per row) times the int8 weight in one int8 GEMM (linear_w8a8: VNNI, ~2x a bf16 GEMM's rate
    # without AMX; ~0.8 % relative error against the float32 product of the same int8 weight,
    # ~2.5x bf16's), scales, bias and ReLU applied to the int32 sums; the int8 W^T is unpacked per
    # call (~6 ms for all 96 weights per prefill at 2 threads; a kept copy would be +75 MB of RSS).
    # Without them, one bf16 GEMM (oneDNN) on the weight widened per call to W^T with the scales
    # applied, the bias added in the GEMM, the ReLU in place. (Batched products per block of 64
    # outputs run at half a GEMM's speed; scaling the bf16 product instead costs a float32 pass.)
    w8a8 = _native("linear_w8a8_kernel")

    def low(x: torch.Tensor) -> torch.Tensor:
        if w8a8 is not None:
            return w8a8(x.contiguous(), unpack(packed, n, torch.int8), scales, bias32, relu)
        weight = unpack(packed, n, torch.bfloat16, scales)  # W^T (K, n)
        if onednn:  # the ReLU fused too (~20 % faster on the FFN's first product)
            return torch.ops.mkldnn._linear_pointwise(
                x, weight.t(), bias16, "relu" if relu else "none", [], ""
            )
        y = torch.mm(x, weight) if bias16 is None else torch.addmm(bias16, x, weight)
        return y.relu_() if relu else y

    # Decoding rows: the native GEMV on float32 rows.
    def run(x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        if flat.shape[0] > _INT8_GEMV_ROWS:
            y = low(flat.bfloat16()).float()
        else:
            y = kernel(flat.float().contiguous(), packed, scales, bias32, relu)
        return y.reshape(*shape[:-1], n)

    return NativeLinear(
        run, lambda rows: kernel(rows, packed, scales, bias32, relu), (packed, n, scales, bias32, relu), low
    )


def _half_weight(
    weight: torch.Tensor, bias: torch.Tensor | None, relu: bool, kernel: Callable[..., torch.Tensor]
) -> LinearFn:
    """The float16 ``(N, K)`` weight packed for the native GEMV: ``(ceil(N/64), K, 64)``."""
    n = weight.shape[0]
    packed = _blocks(weight)

    # Few rows (the decoding step): the native GEMV streams the packed weight. Many rows (the
    # prefill, compute-bound): float32 GEMMs on the blocks widened for the call (block b of the
    # packing is the (K, 64) transpose of its rows, so x @ block is its 64 outputs; measured a
    # little faster than one GEMM on the rows unpacked).
    def run(x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1]).float()
        rows = flat.shape[0]
        if rows > _HALF_GEMV_ROWS:
            y = torch.matmul(flat, packed.float()).transpose(0, 1).reshape(rows, -1)[:, :n]
            y = y if bias is None else y + bias
            y = F.relu(y) if relu else y
        else:
            y = kernel(flat.contiguous(), packed, n, bias, relu)
        return y.reshape(*shape[:-1], n)

    return NativeLinear(run, lambda rows: kernel(rows, packed, n, bias, relu), (packed, n, None, bias, relu))


def _cast_linear(weight: torch.Tensor, bias: torch.Tensor | None, relu: bool) -> LinearFn:
    low_bias = None if bias is None else bias.to(weight.dtype)

    def run(x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x.to(weight.dtype), weight, low_bias).float()
        return F.relu(y) if relu else y

    return run


def _int8_dynamic(weight: torch.Tensor, bias: torch.Tensor | None, relu: bool) -> LinearFn:
    # Symmetric per-output-row scales: a row's largest |w| maps to 127.
    scales = (weight.abs().amax(dim=1) / 127.0).clamp_min(1e-12).double()
    zero_points = torch.zeros(weight.shape[0], dtype=torch.long)
    with warnings.catch_warnings():
        # torch 2.13 announces the removal of quantized tensor types in a later release; this
        # module is the only user and torch is pinned. Other warnings still show.
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
        qweight = torch.quantize_per_channel(weight.contiguous(), scales, zero_points, 0, torch.qint8)
    packed = torch.ops.quantized.linear_prepack(qweight, bias)
    op = torch.ops.quantized.linear_relu_dynamic if relu else torch.ops.quantized.linear_dynamic
    # reduce_range=True: 7-bit activations, so the int16 accumulation of AVX2 kernels cannot saturate.
    return lambda x: op(x.contiguous(), packed, True)


def _int8_weight_only(weight: torch.Tensor, bias: torch.Tensor | None, relu: bool) -> LinearFn:
    # Symmetric per-output-row scales: a row's largest |w| maps to 127.
    scales = (weight.abs().amax(dim=1) / 127.0).clamp_min(1e-12)
    qweight = torch.round(weight / scales[:, None]).clamp(-127, 127).to(torch.int8).contiguous()
    kernel = _native("linear_int8_kernel") if weight.device.type == "cpu" else None
    if kernel is not None:
        return _blocked_int8(qweight, scales.float().contiguous(), bias, relu, kernel)
    scales_bf16 = scales.bfloat16()
    op = torch._weight_int8pack_mm

    def run(x: torch.Tensor) -> torch.Tensor:
        shape = x.shape  # (..., in) -> the op takes a contiguous 2-d bf16 input
        flat = x.reshape(-1, shape[-1]).bfloat16().contiguous()
        if flat.shape[0] > _INT8_GEMV_ROWS:
            # Prefill: a bf16 GEMM on the dequantised weight beats the int8 kernel, built for GEMV.
            y = F.linear(flat, qweight.bfloat16() * scales_bf16[:, None])
        else:
            y = op(flat, qweight, scales_bf16)
        y = y.float().view(*shape[:-1], -1)
        if bias is not None:
            y = y + bias
        return F.relu(y) if relu else y

    return run
