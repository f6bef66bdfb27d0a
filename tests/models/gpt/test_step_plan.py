"""The native whole-stack decoding step (app/models/gpt/csrc/step.cpp, ``DecodePlan``).

It must compute what the per-op step computes with the same kernels (up to summation order):
for every width (partial blocks of 64 outputs included), thread count (shares of heads and
features that do not divide evenly, more threads than heads), batch with padded rows, and cache
dtype; and refuse arguments it cannot use with a message saying which.
"""

from __future__ import annotations

import contextlib
import itertools

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.models.gpt import native
from tests.models.gpt.tiny import batched_and_single_logits, pad_batch, tiny_gpt, tiny_inputs


@contextlib.contextmanager
def _threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _as_in_a_file(model):
    """Weights rounded to float16 as a GPT file stores them: fp32 then runs the native kernels."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
    return model


def _logits(model, rows, steps: torch.Tensor, use_plan: bool) -> torch.Tensor:
    """Prefill the (padded) rows, then feed ``steps (B, n)``; all logits stacked ``(n + 1, B, vocab)``."""
    phones, x_lens, bert, prompt, y_lens = pad_batch(rows)
    n = steps.shape[1]
    cache = model.new_cache(len(rows), phones.shape[1] + prompt.shape[1] + n)
    with torch.inference_mode():
        out = [model.prefill(cache, phones, bert, prompt, x_lens, y_lens)]
        kern = model.engine.kernels
        plan = kern.plan
        assert plan is not None, "fp32 / int8 on CPU with the native kernels must use the whole-stack step"
        kern.plan = plan if use_plan else None
        try:
            out += [model.step(cache, steps[:, i]) for i in range(n)]
        finally:
            kern.plan = plan
    return torch.stack(out)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=st.sampled_from([(32, 4), (40, 5), (48, 3), (64, 2), (96, 6)]),  # (dim, heads): hd 8, 8, 16, 32, 16
    threads=st.integers(1, 7),
    batch=st.integers(1, 3),
    precision=st.sampled_from(["fp32", "int8"]),
    seed=st.integers(0, 2**16),
)
def test_the_plan_computes_the_per_op_step(shape, threads, batch, precision, seed) -> None:
    dim, heads = shape
    model = _as_in_a_file(tiny_gpt(dim=dim, n_head=heads, n_layer=2, seed=seed % 7))
    model.set_precision(precision)
    rows = [tiny_inputs(model, 3 + 2 * (b % 4), 4 - b % 4, seed=seed + b) for b in range(batch)]
    steps = torch.randint(0, 1024, (batch, 5), generator=torch.Generator().manual_seed(seed))
    with _threads(threads):
        got = _logits(model, rows, steps, use_plan=True)
        want = _logits(model, rows, steps, use_plan=False)
    # Both paths sum in float32 in another order. int8 decodes over a bfloat16 KV cache: a step's
    # keys/values a float32 rounding apart can round to neighbouring bfloat16 values (2^-8 apart)
    # and move the later logits by ~1e-5-1e-4 of their scale (60 random cases: at most 1e-5; one
    # found by hypothesis: 2.8e-5). A wrong block, scale or phase moves them by far more.
    scale = max(1.0, want.abs().max().item())
    torch.testing.assert_close(got, want, rtol=0, atol=(2e-5 if precision == "fp32" else 2e-4) * scale)


def test_fp32_through_the_plan_keeps_the_reference_numbers() -> None:
    """The exact mode stays exact: the plan's fp32 logits are the plain float32 model's."""
    model = _as_in_a_file(tiny_gpt(dim=64, n_head=2, n_layer=3))
    rows = [tiny_inputs(model, 10, 8, seed=1), tiny_inputs(model, 6, 3, seed=2)]
    steps = torch.randint(0, 1024, (2, 12), generator=torch.Generator().manual_seed(3))
    model.set_precision("fp32")
    got = _logits(model, rows, steps, use_plan=True)
    model.set_precision("reference")
    phones, x_lens, bert, prompt, y_lens = pad_batch(rows)
    cache = model.new_cache(2, phones.shape[1] + prompt.shape[1] + 12)
    with torch.inference_mode():
        want = [model.prefill(cache, phones, bert, prompt, x_lens, y_lens)]
        want += [model.step(cache, steps[:, i]) for i in range(12)]
    torch.testing.assert_close(got, torch.stack(want), rtol=0, atol=2e-5)


@pytest.mark.parametrize("precision", ["reference", "bf16", "int8_dynamic"])
def test_precisions_without_native_linears_keep_the_per_op_step(precision: str) -> None:
    model = tiny_gpt()
    model.set_precision(precision)
    phones, bert, prompt = tiny_inputs(model, 5, 3)
    with torch.inference_mode():
        model.prefill(model.new_cache(1, 12), phones, bert, prompt)
    assert model.engine.kernels.plan is None


def test_the_plan_refuses_what_it_cannot_use() -> None:
    model = tiny_gpt(dim=32, n_head=4, n_layer=2)
    model.set_precision("int8")
    phones, bert, prompt = tiny_inputs(model, 5, 3)
    cache = model.new_cache(1, 12)
    with torch.inference_mode():
        model.prefill(cache, phones, bert, prompt)
    plan = model.engine.kernels.plan
    x = torch.zeros(1, 32)
    n = cache.length
    with pytest.raises(RuntimeError, match=r"2 key and value caches expected"):
        plan.run(x, cache.k_layers[:1], cache.v_layers[:1], n, None)
    with pytest.raises(RuntimeError, match=r"x must be a contiguous \(B, 32\) float32"):
        plan.run(torch.zeros(1, 16), cache.k_layers, cache.v_layers, n, None)
    with pytest.raises(RuntimeError, match=r"column 12 is outside the cache"):
        plan.run(x, cache.k_layers, cache.v_layers, 12, None)
    with pytest.raises(RuntimeError, match=r"cache 0 must be"):
        plan.run(x, [k.float() for k in cache.k_layers], cache.v_layers, n, None)
    lk = model.engine.kernels.layers[0]
    norms = [t.float().contiguous() for t in (*lk.norm1, *lk.norm2)]
    packed, N, _scale, bias, relu = lk.qkv.spec
    unscaled = (packed, N, None, bias, relu)
    with pytest.raises(RuntimeError, match=r"the qkv weight needs scales exactly when it is int8"):
        native.decode_plan_class()(
            [(unscaled, lk.out.spec, lk.ffn_in.spec, lk.ffn_out.spec, *norms)], 4, 1e-5
        )
    with pytest.raises(RuntimeError, match=r"32 features do not split into 5 heads"):
        native.decode_plan_class()(
            [(lk.qkv.spec, lk.out.spec, lk.ffn_in.spec, lk.ffn_out.spec, *norms)], 5, 1e-5
        )


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_packed_weights_lie_in_one_buffer_in_reading_order(precision: str) -> None:
    """The step streams the packs in this order; one 2 MB-aligned buffer (on huge pages where the
    OS grants them) instead of one allocation per linear."""
    model = _as_in_a_file(tiny_gpt(dim=64, n_head=2, n_layer=3))
    model.set_precision(precision)
    rows = [tiny_inputs(model, 6, 4)]
    steps = torch.randint(0, 1024, (1, 3), generator=torch.Generator().manual_seed(0))
    before = _logits(model, rows, steps, use_plan=False)
    kern = model.engine.kernels
    packs = [f.spec[0] for lk in kern.layers for f in (lk.qkv, lk.out, lk.ffn_in, lk.ffn_out)] + [
        kern.predict.spec[0]
    ]
    assert packs[0].data_ptr() % (2 << 20) == 0
    for a, b in itertools.pairwise(packs):
        assert b.data_ptr() == a.data_ptr() + a.numel() * a.element_size()
    # The kernels read the moved weights: the same logits as through the plan (int8: up to the
    # int16 codes of rows that differ in their last bits between the two paths, ~1e-4 a flip).
    atol = 2e-5 if precision == "fp32" else 1e-3
    torch.testing.assert_close(_logits(model, rows, steps, use_plan=True), before, rtol=0, atol=atol)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_more_rows_than_the_gemv_takes_still_run_the_plan_row_for_row(precision: str) -> None:
    """Batched segments (up to PLAN_ROWS rows, beyond the per-op GEMV's 8) run through the plan:
    each row's logits are the ones it gets decoded alone (int8: up to the bf16 prefill GEMM, whose
    rounding depends on the batch; a row read from another row's cache would be off by ~its std)."""
    from app.models.gpt.stepplan import PLAN_ROWS

    model = _as_in_a_file(tiny_gpt(dim=32, n_head=4, n_layer=2))
    model.set_precision(precision)
    rows = [tiny_inputs(model, 3 + b % 5, 1 + b % 3, seed=b) for b in range(11)]
    assert 8 < len(rows) <= PLAN_ROWS
    steps = torch.randint(0, 1024, (len(rows), 4), generator=torch.Generator().manual_seed(1))
    for got, want in batched_and_single_logits(model, rows, steps):
        if precision == "fp32":
            torch.testing.assert_close(got, want, rtol=0, atol=2e-5 * max(1.0, want.abs().max().item()))
        else:
            assert (got - want).abs().max().item() < 0.05 * want.std().item()
