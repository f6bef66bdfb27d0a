"""The sampling loop: order of the logit filters, EOS rules, seeds, batching and streaming chunks."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from app.models.gpt.cache import KVCache
from app.models.gpt.config import GPTConfig
from app.models.gpt.engine import decode, generate
from app.models.gpt.sampling import SamplingOptions, choose_tokens
from tests.models.gpt.tiny import tiny_gpt, tiny_inputs

V = 1025
EOS = 1024


class ScriptedModel:
    """Stands in for :class:`GPT` and its engine: ``logits_fn(request_row, step)`` gives each row's logits.

    The cache's ``audio_pos`` carries the request row of every cache row, so the rows the
    sampling loop keeps after compaction are visible here.
    """

    def __init__(self, logits_fn: Callable[[int, int], torch.Tensor]) -> None:
        self.config = GPTConfig(dim=4, n_head=1, n_layer=1)
        self.logits_fn = logits_fn
        self.step_no = 0
        self.seen_batches: list[list[int]] = []
        self.engine = self

    def new_cache(self, net: object, batch: int, capacity: int) -> KVCache:
        return KVCache(1, 1, 1, batch, capacity)

    def prefill(self, net, cache, phones, bert, prompt, phone_lens=None, prompt_lens=None) -> torch.Tensor:
        B = phones.shape[0]
        cache.start(B, 1, [0] * B, list(range(B)))
        self.step_no = 0
        return self._logits(cache)

    def step(self, cache: KVCache, tokens: torch.Tensor) -> torch.Tensor:
        assert tokens.shape == (cache.batch,)
        cache.length += 1
        self.step_no += 1
        return self._logits(cache)

    def _logits(self, cache: KVCache) -> torch.Tensor:
        rows = cache.audio_pos[: cache.batch].tolist()
        self.seen_batches.append(rows)
        return torch.stack([self.logits_fn(r, self.step_no) for r in rows])


def _run(model: ScriptedModel, batch: int = 1, prompt: torch.Tensor | None = None, **options) -> object:
    phones = torch.ones(batch, 3, dtype=torch.long)
    return decode(model, phones, torch.zeros(batch, 1024, 3), prompt, SamplingOptions(**options))  # type: ignore[arg-type]


def _peak(best: int, second: int | None = None, value: float = 5.0) -> torch.Tensor:
    logits = torch.zeros(V)
    logits[best] = value
    if second is not None:
        logits[second] = value - 1
    return logits


def test_repetition_penalty_divides_positive_and_multiplies_negative_once() -> None:
    logits = torch.tensor([[2.0, 1.6, -1.0, -1.2, 0.5]])
    seen = torch.tensor([[True, False, True, False, False]])
    opt = SamplingOptions(top_k=1, repetition_penalty=1.35)
    tokens, greedy = choose_tokens(logits, seen, opt, None)
    assert greedy.item() == 1  # 2.0 / 1.35 = 1.48 < 1.6
    assert tokens.item() == 1
    # negative logits move away from zero: -1.0 * 1.35 = -1.35 < -1.2
    neg = torch.tensor([[-1.0, -1.2, -3.0]])
    _, greedy = choose_tokens(neg, torch.tensor([[True, False, False]]), opt, None)
    assert greedy.item() == 1


def test_top_p_uses_untempered_distribution_before_temperature() -> None:
    # softmax of [3, 2, 0 x 6] = [0.60, 0.22, 0.03 ...]: upstream keeps the tokens whose cumulative
    # probability (their own included) stays <= top_p, and always the best one. A temperature of 10
    # applied first would flatten the distribution to ~0.16 / 0.14 / 0.12 ... and keep most tokens.
    logits = torch.zeros(4000, 8)
    logits[:, 0], logits[:, 1] = 3.0, 2.0
    seen = torch.zeros(4000, 8, dtype=torch.bool)
    gen = torch.Generator().manual_seed(0)
    tokens, _ = choose_tokens(logits, seen, SamplingOptions(top_k=0, top_p=0.6, temperature=10.0), gen)
    assert set(tokens.tolist()) == {0}
    tokens, _ = choose_tokens(logits, seen, SamplingOptions(top_k=0, top_p=0.85, temperature=10.0), gen)
    assert set(tokens.tolist()) == {0, 1}


def test_penalty_comes_before_top_p() -> None:
    logits = torch.full((2000, 6), -5.0)
    logits[:, 0], logits[:, 1] = 3.0, 2.6  # token 0 was seen: 3.0 / 1.35 = 2.22 < 2.6
    seen = torch.zeros(2000, 6, dtype=torch.bool)
    seen[:, 0] = True
    gen = torch.Generator().manual_seed(5)
    tokens, greedy = choose_tokens(
        logits, seen, SamplingOptions(top_k=0, top_p=0.5, repetition_penalty=1.35), gen
    )
    assert set(tokens.tolist()) == {1}
    assert set(greedy.tolist()) == {1}


def test_top_k_keeps_k_best_and_ties() -> None:
    logits = torch.tensor([[5.0, 4.0, 4.0, 1.0, 0.0, 3.0]]).expand(3000, -1)
    seen = torch.zeros_like(logits, dtype=torch.bool)
    gen = torch.Generator().manual_seed(1)
    tokens, _ = choose_tokens(logits, seen, SamplingOptions(top_k=2, temperature=100.0), gen)
    assert set(tokens.tolist()) == {0, 1, 2}  # the tie at the k-th value survives
    tokens, _ = choose_tokens(logits, seen, SamplingOptions(top_k=0, temperature=100.0), gen)
    assert set(tokens.tolist()) == set(range(6))


def test_samples_follow_the_tempered_softmax() -> None:
    logits = torch.tensor([[1.0, 0.0, -1.0]]).expand(20000, -1)
    seen = torch.zeros_like(logits, dtype=torch.bool)
    gen = torch.Generator().manual_seed(2)
    tokens, _ = choose_tokens(logits, seen, SamplingOptions(top_k=0, temperature=2.0), gen)
    freq = torch.bincount(tokens, minlength=3).float() / tokens.numel()
    torch.testing.assert_close(freq, torch.softmax(logits[0] / 2.0, dim=0), rtol=0, atol=0.015)


def test_temperature_zero_is_greedy() -> None:
    logits = torch.randn(50, 30, generator=torch.Generator().manual_seed(3))
    seen = torch.zeros_like(logits, dtype=torch.bool)
    tokens, greedy = choose_tokens(logits, seen, SamplingOptions(top_k=0, temperature=0.0), None)
    assert torch.equal(tokens, logits.argmax(-1))
    assert torch.equal(greedy, tokens)


def test_eos_is_not_allowed_for_the_first_eleven_tokens() -> None:
    model = ScriptedModel(lambda row, step: _peak(EOS, second=7))
    result = _run(model, top_k=1)
    assert result.tokens[0].tolist() == [7] * 11
    assert result.stopped_on_eos == (True,)
    assert result.steps == 12


def test_stop_when_argmax_is_eos_even_if_the_sample_is_not() -> None:
    # EOS is the argmax from step 11 on, but top_k=3 with a high temperature samples other ids.
    model = ScriptedModel(lambda row, step: _peak(EOS, second=7, value=1.0))
    result = _run(model, top_k=3, temperature=50.0, seed=0)
    assert len(result.tokens[0]) == 11
    assert EOS not in result.tokens[0].tolist()


def test_stop_when_the_sample_is_eos_even_if_argmax_is_not() -> None:
    def logits(row: int, step: int) -> torch.Tensor:
        out = torch.full((V,), -1e9)
        out[5], out[EOS] = 1.0, 0.999  # EOS nearly as likely: sampled within a few steps
        return out

    result = _run(ScriptedModel(logits), top_k=2, repetition_penalty=1.0, seed=0, max_new_tokens=200)
    assert result.stopped_on_eos == (True,)
    assert 11 <= len(result.tokens[0]) < 200
    assert set(result.tokens[0].tolist()) == {5}


def test_limit_keeps_the_last_token_and_suppress_eos_ignores_eos() -> None:
    model = ScriptedModel(lambda row, step: _peak(EOS, second=step % 1000))
    result = _run(model, top_k=1, suppress_eos=True, max_new_tokens=20)
    assert result.tokens[0].tolist() == list(range(20))
    assert result.stopped_on_eos == (False,)


def test_penalty_covers_prompt_and_output() -> None:
    def logits(row: int, step: int) -> torch.Tensor:
        out = torch.zeros(V)
        out[3], out[4] = 1.2, 1.0
        return out

    model = ScriptedModel(logits)
    prompt = torch.tensor([[3, 3, 9]])
    with_prompt = _run(model, prompt=prompt, top_k=1, max_new_tokens=3, suppress_eos=True)
    without = _run(model, top_k=1, max_new_tokens=3, suppress_eos=True, repetition_penalty=1.0)
    # step 1: 3 is in the prompt (1.2 / 1.35 = 0.89 < 1.0); then both are seen (0.89 > 0.74)
    assert with_prompt.tokens[0].tolist() == [4, 3, 3]
    assert without.tokens[0].tolist() == [3, 3, 3]


def test_rows_finish_independently_and_are_dropped_from_the_batch() -> None:
    ends = {0: 30, 1: 14, 2: 22}  # EOS becomes the best logit at these steps

    def logits(row: int, step: int) -> torch.Tensor:
        return _peak(EOS if step >= ends[row] else 100 + row)

    model = ScriptedModel(logits)
    result = _run(model, batch=3, top_k=1, max_new_tokens=25)
    assert [len(t) for t in result.tokens] == [25, 14, 22]
    assert result.stopped_on_eos == (False, True, True)
    assert all(set(t.tolist()) == {100 + r} for r, t in enumerate(result.tokens))
    assert model.seen_batches[14] == [0, 1, 2]
    assert model.seen_batches[15] == [0, 2]  # row 1 left the batch after its EOS
    assert model.seen_batches[-1] == [0]


def test_generate_streams_chunks_that_add_up_to_decode() -> None:
    model = tiny_gpt()
    phones, bert, prompt = tiny_inputs(model, 6, 4)
    opt = SamplingOptions(seed=11, max_new_tokens=30)
    whole = decode(model, phones, bert, prompt, opt)
    chunks = list(generate(model, phones, bert, prompt, opt, chunk_tokens=8))
    assert len(chunks) >= len(whole.tokens[0]) // 8
    assert all(len(c.tokens[0]) <= 8 for c in chunks)
    assert torch.equal(torch.cat([c.tokens[0] for c in chunks]), whole.tokens[0])
    assert chunks[-1].finished == (True,)
    assert not any(c.finished[0] for c in chunks[:-1])


def test_seed_reproduces_and_differs() -> None:
    model = tiny_gpt()
    phones, bert, prompt = tiny_inputs(model, 6, 4)

    def run(seed: int) -> list[int]:
        opt = SamplingOptions(seed=seed, top_k=50, max_new_tokens=30, suppress_eos=True)
        return decode(model, phones, bert, prompt, opt).tokens[0].tolist()

    assert run(1) == run(1)
    assert run(1) != run(2)


@pytest.mark.parametrize(
    "bad",
    [
        {"top_p": 0.0},
        {"top_p": 1.5},
        {"temperature": -1.0},
        {"repetition_penalty": 0.0},
        {"max_new_tokens": 0},
    ],
)
def test_invalid_options_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        SamplingOptions(**bad)


def test_streaming_does_not_leak_inference_mode_into_the_consumer() -> None:
    model = tiny_gpt()
    phones, bert, prompt = tiny_inputs(model, 5, 3)
    stream = generate(
        model, phones, bert, prompt, SamplingOptions(max_new_tokens=12, suppress_eos=True), chunk_tokens=4
    )
    next(stream)
    assert torch.is_grad_enabled()
    assert not torch.is_inference_mode_enabled()
    rest = list(stream)
    assert rest[-1].finished == (True,)


def test_a_too_small_cache_is_refused_before_decoding() -> None:
    model = tiny_gpt()
    phones, bert, prompt = tiny_inputs(model, 5, 3)
    with pytest.raises(ValueError, match="needs 1 rows x 28"):
        decode(model, phones, bert, prompt, SamplingOptions(max_new_tokens=20), cache=model.new_cache(1, 27))


def test_generate_frees_its_own_cache_before_the_last_chunk() -> None:
    """Streaming decodes the last chunk while the generator is still open: the keys/values must
    already be gone then (the largest buffer at that point), and a caller's cache is untouched."""
    import gc
    import weakref

    model = tiny_gpt()
    phones, bert, prompt = tiny_inputs(model, 6, 4)
    made = []
    new_cache = model.engine.new_cache
    model.engine.new_cache = lambda *a: made.append(new_cache(*a)) or made[-1]  # type: ignore[method-assign]
    options = SamplingOptions(max_new_tokens=9, suppress_eos=True)
    it = generate(model, phones, bert, prompt, options, chunk_tokens=4)
    chunk = next(it)
    ref = weakref.ref(made.pop())
    gc.collect()
    assert ref() is not None and chunk.finished == (False,)  # alive while decoding goes on
    while not all(chunk.finished):
        chunk = next(it)  # the generator stays open here, as in the streaming runner
    gc.collect()
    assert ref() is None
    it.close()
    mine = new_cache(model, 1, 10 + 9)
    list(generate(model, phones, bert, prompt, options, cache=mine))
    assert mine.length == 10 + 8  # the caller's cache was used and kept
