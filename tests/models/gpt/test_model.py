"""The GPT network: sine table, attention masks and the teacher-forced training pass (tiny random models)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from app.models.gpt.layerpass import prefill_mask
from app.models.gpt.layers import sine_table
from app.models.gpt.model import _text_audio_mask
from tests.models.gpt.tiny import pad_batch, tiny_gpt, tiny_inputs


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
    assert torch.equal(prefill_mask([0], [3], 5, torch.device("cpu"))[0, 0], expected)


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
