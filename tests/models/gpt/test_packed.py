"""Packed linear kernels against F.linear, for decoding (1 row) and prefill (many rows) shapes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from app.models.gpt.packed import PRECISIONS, pack_linear, resolve_precision

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
