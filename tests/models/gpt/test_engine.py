"""The decoding engine: prefill/step against the training pass, padded batches, precisions, errors."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import app.models.gpt.layerpass as layerpass
from app.models.gpt.engine import decode
from app.models.gpt.layerpass import key_ranges, prefill_mask
from app.models.gpt.model import GPT
from app.models.gpt.sampling import SamplingOptions
from tests.models.gpt.tiny import batched_and_single_logits, pad_batch, tiny_gpt, tiny_inputs


def test_prefill_mask_padding_rows_see_only_themselves() -> None:
    mask = prefill_mask([2], [2], 5, torch.device("cpu"))[0, 0]  # pad pad text text audio
    assert torch.equal(mask[0], torch.tensor([1, 0, 0, 0, 0], dtype=torch.bool))
    assert torch.equal(mask[2], torch.tensor([0, 0, 1, 1, 0], dtype=torch.bool))
    assert torch.equal(mask[4], torch.tensor([0, 0, 1, 1, 1], dtype=torch.bool))


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(0, 12), st.integers(0, 12)), min_size=1, max_size=4))
def test_key_ranges_are_theprefill_mask(rows: list[tuple[int, int]]) -> None:
    """Every query of a prefill (padding, text, prompt; rows right-aligned) sees one range of keys:
    the ranges rebuild the mask exactly. A mask that is not ranges gives None."""
    totals = [x + y for x, y in rows]
    width = max(1, max(totals))
    mask = prefill_mask([width - t for t in totals], [x for x, _ in rows], width, torch.device("cpu"))
    ranges = key_ranges(mask)
    assert ranges is not None
    lo, hi = ranges
    assert lo.dtype == hi.dtype == torch.int32 and lo.shape == hi.shape == (len(rows), width)
    col = torch.arange(width)
    assert torch.equal((col >= lo[..., None]) & (col < hi[..., None]), mask[:, 0])
    holed, empty = mask.clone(), mask.clone()
    holed[0, 0, -1] = False
    holed[0, 0, -1, 0] = holed[0, 0, -1, -1] = True  # keys 0 and last only: two ranges from width 3
    assert (key_ranges(holed) is None) == (width > 2)
    empty[-1, 0, 0] = False  # a query that sees nothing
    assert key_ranges(empty) is None


@pytest.mark.parametrize("ty", [0, 6])
def test_prefill_and_steps_match_teacher_forcing(ty: int) -> None:
    """KV-cached logits equal the training pass at the same positions (also without a prompt)."""
    model = tiny_gpt()
    phones, bert, prompt = tiny_inputs(model, 8, ty)
    continuation = torch.randint(0, 1024, (1, 5), generator=torch.Generator().manual_seed(4))
    semantic = torch.cat([prompt, continuation], dim=1)
    with torch.no_grad():
        tf = model(phones, torch.tensor([8]), bert, semantic, torch.tensor([semantic.shape[1]]))
    cache = model.new_cache(1, 8 + ty + 5)
    with torch.inference_mode():
        rows = [model.prefill(cache, phones, bert, prompt if ty else None)]
        rows += [model.step(cache, t.view(1)) for t in continuation[0, :-1]]
    torch.testing.assert_close(torch.cat(rows), tf.logits[0, ty : ty + 5], rtol=0, atol=1e-5)
    assert cache.length == 8 + ty + 4


def test_batched_decoding_rows_match_single_rows() -> None:
    """Rows of different text and prompt lengths decoded together equal each row decoded alone."""
    model = tiny_gpt()
    rows = [
        tiny_inputs(model, 9, 7, seed=1),
        tiny_inputs(model, 4, 2, seed=2),
        tiny_inputs(model, 6, 0, seed=3),
    ]
    steps = torch.randint(0, 1024, (3, 4), generator=torch.Generator().manual_seed(5))
    for got, want in batched_and_single_logits(model, rows, steps):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("precision", "tolerance"), [("fp32", 1e-5), ("bf16", 0.05), ("int8", 0.1), ("int8_dynamic", 0.15)]
)
def test_precisions_follow_reference(precision: str, tolerance: float) -> None:
    model = tiny_gpt(dim=64, n_layer=3)
    phones, bert, prompt = tiny_inputs(model, 10, 8)
    tokens = torch.randint(0, 1024, (6,), generator=torch.Generator().manual_seed(3))

    def run() -> torch.Tensor:
        cache = model.new_cache(1, 30)
        with torch.inference_mode():
            out = [model.prefill(cache, phones, bert, prompt)]
            out += [model.step(cache, t.view(1)) for t in tokens]
        return torch.cat(out)

    model.set_precision("reference")
    ref = run()
    model.set_precision(precision)
    got = run()
    error = (got - ref).abs().max().item() / ref.std().item()
    assert error < tolerance
    if precision != "fp32":
        assert error > 0  # really another kernel


def test_int8_prefill_stays_in_bf16_and_fills_the_cache_as_the_float32_epilogue_did(monkeypatch) -> None:
    """The int8 prefill (bf16 KV cache) keeps q/k/v, the attention and the FFN's hidden layer in
    bf16 (packed.NativeLinear.low); logits and cache agree with the float32-epilogue layer to bf16
    precision, padded rows included."""
    model = tiny_gpt(dim=64, n_layer=3)
    model.set_precision("int8")
    rows = [tiny_inputs(model, 9, 7, seed=1), tiny_inputs(model, 5, 3, seed=2)]
    phones, x_lens, bert, prompt, y_lens = pad_batch(rows)
    calls = []
    layer_low = layerpass.layer_low
    monkeypatch.setattr(layerpass, "layer_low", lambda *a: calls.append(1) or layer_low(*a))

    def prefill() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cache = model.new_cache(2, 20)
        with torch.inference_mode():
            logits = model.prefill(cache, phones, bert, prompt, x_lens, y_lens)
        width = int((x_lens + y_lens).max())  # the positions the prefill wrote
        return logits, cache.k[..., :width, :].float().clone(), cache.v[..., :width, :].float().clone()

    low = prefill()
    assert len(calls) == model.config.n_layer  # every layer in bf16
    monkeypatch.setattr(layerpass, "low_linears", lambda lk: None)
    full = prefill()
    assert len(calls) == model.config.n_layer
    for got, want in zip(low, full, strict=True):
        assert got.abs().sum() > 0
        assert (got - want).abs().max().item() < 0.05 * want.std().item()


def test_the_int8_prefill_attends_natively_as_sdpa_does(monkeypatch) -> None:
    """int8 (bf16 cache): the prefill's attention is the native kernel (csrc/attention.cpp) over
    each query's key range; logits and cache agree with the SDPA path's to bf16 precision, padded
    rows included, and the logits are as close to the float32 reference's."""
    model = tiny_gpt(dim=64, n_layer=3)
    model.set_precision("int8")
    rows = [
        tiny_inputs(model, 9, 7, seed=1),
        tiny_inputs(model, 5, 3, seed=2),
        tiny_inputs(model, 6, 0, seed=3),
    ]
    phones, x_lens, bert, prompt, y_lens = pad_batch(rows)

    def prefill() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cache = model.new_cache(3, 20)
        with torch.inference_mode():
            logits = model.prefill(cache, phones, bert, prompt, x_lens, y_lens)
        width = int((x_lens + y_lens).max())
        return logits, cache.k[..., :width, :].float().clone(), cache.v[..., :width, :].float().clone()

    model.set_precision("reference")
    reference = prefill()[0]
    model.set_precision("int8")
    calls = []
    native = prefill()
    kernels = model.engine.kernels
    assert kernels is not None and kernels.prefill_attention is not None
    attend = kernels.prefill_attention
    kernels.prefill_attention = lambda *a: calls.append(1) or attend(*a)
    assert torch.equal(prefill()[0], native[0]) and len(calls) == model.config.n_layer
    kernels.prefill_attention = None  # SDPA on the mask
    sdpa = prefill()
    for got, want in zip(native, sdpa, strict=True):
        assert got.abs().sum() > 0
        assert (got - want).abs().max().item() < 0.05 * want.std().item()
    error = [(logits - reference).abs().max().item() for logits in (native[0], sdpa[0])]
    assert error[0] < 1.25 * error[1] + 1e-3 * reference.std().item()


def test_kernels_are_repacked_after_weights_change() -> None:
    model = tiny_gpt()
    other = tiny_gpt(seed=9)
    phones, bert, prompt = tiny_inputs(model, 5, 3)
    cache = model.new_cache(1, 10)
    with torch.inference_mode():
        before = model.prefill(cache, phones, bert, prompt)
    model.load_state_dict(other.state_dict())
    with torch.inference_mode():
        after = model.prefill(cache, phones, bert, prompt)
        want = other.prefill(other.new_cache(1, 10), phones, bert, prompt)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, want, rtol=0, atol=1e-6)


def test_inference_errors_are_clear() -> None:
    model = tiny_gpt()
    phones, bert, prompt = tiny_inputs(model, 5, 3)
    with pytest.raises(RuntimeError, match="prefill"):
        GPT(model.config).step(model.new_cache(1, 4), torch.tensor([1]))
    with pytest.raises(ValueError, match="allocate a larger cache"):
        model.prefill(model.new_cache(1, 6), phones, bert, prompt)
    with pytest.raises(ValueError, match="rows"):
        model.prefill(
            model.new_cache(1, 8), phones.expand(2, -1), bert.expand(2, -1, -1), prompt.expand(2, -1)
        )
    with pytest.raises(ValueError, match="phone_lens"):
        model.prefill(model.new_cache(1, 8), phones, bert, prompt, phone_lens=torch.tensor([9]))
    with pytest.raises(ValueError, match="unknown precision"):
        model.set_precision("fp8")


def test_model_cast_to_bfloat16_runs_its_own_weights() -> None:
    model = tiny_gpt()
    phones, bert, prompt = tiny_inputs(model, 5, 3)
    with torch.inference_mode():
        want = model.prefill(model.new_cache(1, 8), phones, bert, prompt)
        model.to(torch.bfloat16)
        cache = model.new_cache(1, 8)
        got = model.prefill(cache, phones, bert.bfloat16(), prompt)
    assert cache.k.dtype == got.dtype == torch.bfloat16
    assert (got.float() - want).abs().max() < 0.1 * want.std()


def test_a_model_that_decoded_is_freed_without_the_garbage_collector() -> None:
    """The engine keeps no reference to its network: no model <-> engine cycle holds ~300 MB of
    weights (and their packed copies) until a collection runs, e.g. after a model swap."""
    model = tiny_gpt()
    phones, bert, prompt = tiny_inputs(model, 5, 3)
    decode(model, phones, bert, prompt, SamplingOptions(max_new_tokens=4))
    assert model.engine.kernels is not None
    gc.disable()
    try:
        ref = weakref.ref(model)
        del model
        assert ref() is None
    finally:
        gc.enable()
