"""The GPT's masks, padding, KV-cache decoding and precision modes (tiny random models)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from app.models.gpt.engine import _prefill_mask
from app.models.gpt.layers import sine_table
from app.models.gpt.model import GPT, _text_audio_mask
from tests.models.gpt.tiny import batched_and_single_logits, pad_batch, tiny_gpt, tiny_inputs


def test_sine_table_matches_formula() -> None:
    table = sine_table(50, 8)
    p, i = 37, 3  # column 2*i is sin, 2*i+1 is cos
    w = math.exp(2 * i * -(math.log(10000.0) / 8))
    assert table[p, 2 * i].item() == pytest.approx(math.sin(p * w), abs=1e-5)
    assert table[p, 2 * i + 1].item() == pytest.approx(math.cos(p * w), abs=1e-5)


def test_text_audio_mask_rule() -> None:
    allowed = _text_audio_mask(3, 2, torch.device("cpu"))
    expected = torch.tensor(
        [
            [1, 1, 1, 0, 0],  # text rows: all text, no audio
            [1, 1, 1, 0, 0],
            [1, 1, 1, 0, 0],
            [1, 1, 1, 1, 0],  # audio rows: all text + audio up to their own
            [1, 1, 1, 1, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(allowed, expected)
    # the prefill mask of an unpadded row is the same rule
    assert torch.equal(_prefill_mask([0], [3], 5, torch.device("cpu"))[0, 0], expected)


def test_prefill_mask_padding_rows_see_only_themselves() -> None:
    mask = _prefill_mask([2], [2], 5, torch.device("cpu"))[0, 0]  # pad pad text text audio
    assert torch.equal(mask[0], torch.tensor([1, 0, 0, 0, 0], dtype=torch.bool))
    assert torch.equal(mask[2], torch.tensor([0, 0, 1, 1, 0], dtype=torch.bool))
    assert torch.equal(mask[4], torch.tensor([0, 0, 1, 1, 1], dtype=torch.bool))


def test_training_loss_is_batch_invariant_with_correct_masking() -> None:
    model = tiny_gpt()
    rows = [
        tiny_inputs(model, 9, 7, seed=1),
        tiny_inputs(model, 5, 4, seed=2),
        tiny_inputs(model, 7, 6, seed=3),
    ]
    phones, x_lens, bert, codes, y_lens = pad_batch(rows)
    with torch.no_grad():
        batch = model(phones, x_lens, bert, codes, y_lens)
        alone = [model(p, torch.tensor([p.shape[1]]), b, c, torch.tensor([c.shape[1]])) for p, b, c in rows]
    torch.testing.assert_close(batch.loss, sum(o.loss for o in alone), rtol=1e-5, atol=1e-5)
    for b, o in enumerate(alone):
        n = o.logits.shape[1]
        torch.testing.assert_close(batch.logits[b, :n], o.logits[0], rtol=0, atol=1e-5)
        assert torch.equal(batch.targets[b, :n], o.targets[0])
        assert (batch.targets[b, n:] == -100).all()
    # upstream's quirk makes the padded rows' loss depend on the batch
    with torch.no_grad():
        quirk = model(phones, x_lens, bert, codes, y_lens, upstream_padding=True)
    assert abs(quirk.loss.item() - batch.loss.item()) > 1e-3


def test_training_targets_end_with_eos_and_accuracy_ignores_eos() -> None:
    model = tiny_gpt()
    phones, bert, codes = tiny_inputs(model, 6, 5)
    with torch.no_grad():
        out = model(phones, torch.tensor([6]), bert, codes, torch.tensor([5]))
    assert torch.equal(out.targets[0, :5], codes[0])
    assert out.targets[0, 5].item() == model.config.eos
    hits = (out.logits[0, :5].topk(3, dim=-1).indices == codes[0, :, None]).any(-1)
    assert out.top_k_acc.item() == pytest.approx(hits.float().mean().item())
    expected = F.cross_entropy(out.logits[0], out.targets[0], reduction="sum")
    torch.testing.assert_close(out.loss, expected)


def test_training_backward_and_dropout_in_train_mode() -> None:
    model = tiny_gpt()
    phones, bert, codes = tiny_inputs(model, 6, 5)
    args = (phones, torch.tensor([6]), bert, codes, torch.tensor([5]))
    model.train()
    torch.manual_seed(1)
    a = model(*args)
    torch.manual_seed(2)
    b = model(*args)
    assert a.loss.item() != b.loss.item()  # dropout 0.1 is active while training
    a.loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.h.layers[0].self_attn.in_proj_weight.grad.abs().sum() > 0


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
