"""Word timestamps: the monotonic path through the GPT's attention, and words timed on real syntheses."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from app.infer import TTSRequest
from app.infer.alignment import best_path, monotonic_bounds, word_times
from app.text import text_to_phones
from app.text.words import word_units


def _matrix(max_side: int):
    shapes = st.tuples(st.integers(1, max_side), st.integers(1, max_side))
    return shapes.flatmap(lambda s: arrays(np.float64, s, elements=st.floats(0.0, 1.0)))


@settings(max_examples=150, deadline=None)
@given(_matrix(30))
def test_bounds_start_at_zero_end_at_n_and_give_every_phone_time(weights):
    n, p = weights.shape
    bounds = monotonic_bounds(weights)
    assert bounds.shape == (p + 1,) and bounds[0] == 0 and bounds[-1] == n
    assert np.all(np.diff(bounds) > 0)  # monotonic, and no phone is skipped
    if n >= p:  # whole frames, each frame one phone
        assert np.array_equal(bounds, np.round(bounds))


def _paths(steps: int, states: int):
    """Every monotonic path of ``steps`` over ``states`` (start 0, end states-1, moves of 0 or 1)."""
    for moves in itertools.combinations(range(1, steps), states - 1):
        path, s = [], 0
        for t in range(steps):
            s += t in moves
            path.append(s)
        yield path


@settings(max_examples=150, deadline=None)
@given(_matrix(7))
def test_best_path_is_the_best_of_all_monotonic_paths(weights):
    logp = np.log(weights + 1e-3)
    if logp.shape[0] < logp.shape[1]:
        logp = logp.T
    steps, states = logp.shape
    path = best_path(logp)
    assert path[0] == 0 and path[-1] == states - 1 and set(np.diff(path)) <= {0, 1}
    best = max(sum(logp[t, s] for t, s in enumerate(p)) for p in _paths(steps, states))
    assert sum(logp[t, s] for t, s in enumerate(path)) == pytest.approx(best)


def test_a_clear_diagonal_is_recovered():
    durations = [3, 1, 5, 2, 4]
    weights = np.full((sum(durations), len(durations)), 0.01)
    frame = 0
    for p, d in enumerate(durations):
        weights[frame : frame + d, p] = 1.0
        frame += d
    assert monotonic_bounds(weights).tolist() == [0, 3, 4, 9, 11, 15]


def test_word_times_scale_frames_to_the_speech_and_leave_punctuation_out():
    weights = np.eye(4).repeat(2, axis=0)  # 8 frames, 2 per phone
    words = word_times(weights, (("hi", 2), (",", 1), ("yo", 1)), "hi, yo", seconds=1.6)
    assert [(w.text, round(w.start, 9), round(w.end, 9)) for w in words] == [("hi", 0, 0.8), ("yo", 1.2, 1.6)]
    with pytest.raises(ValueError, match="add up"):
        word_times(weights, (("hi", 2),), "hi", 1.0)


def test_word_units_cover_the_phones_in_each_language():
    for text, mode in [
        ("Twelve tests, 3 words.", "en"),
        ("你好，世界。", "all_zh"),
        ("今天 and a day.", "zh"),
    ]:
        result = text_to_phones(text, mode, "v2")
        units = word_units(result)
        assert sum(n for _, n in units) == len(result.phones)
    assert [u for u, _ in word_units(text_to_phones("你好，世界。", "all_zh", "v2"))] == list("你好,世界.")


@pytest.mark.parametrize("token_chunks", [False, True])
def test_a_synthesis_times_its_words_inside_each_segment(pipeline, ref_wav, token_chunks):
    request = TTSRequest(
        text="The quick fox jumps. 今天天气很好。", reference=str(ref_wav), prompt_text="你好欢迎来到我们的节目",
        prompt_language="all_zh", text_language="zh", split_method="cut5", seed=5, word_timestamps=True,
        pause_seconds=0.1,
    )  # fmt: skip
    chunks = list(pipeline.stream(request, token_chunks=token_chunks))
    result = chunks[-1].result
    assert len(result.words) == len(result.segments) == 2
    pause = round(request.pause_seconds * result.sample_rate)
    speech = [
        (sum(len(c.audio) for c in chunks if c.segment == seg) - pause) / result.sample_rate
        for seg in range(len(result.segments))
    ]
    assert [w.text for w in result.words[0]] == ["The", "quick", "fox", "jumps"]
    assert [w.text for w in result.words[1]] == list("今天天气很好")
    for words, seconds in zip(result.words, speech, strict=True):
        assert words[0].start >= 0 and words[-1].end <= seconds + 1e-9
        for w in words:
            assert w.end > w.start
        for a, b in itertools.pairwise(words):
            assert a.end <= b.start + 1e-9
    # Asked or not, the audio is the same; without the option no words are reported.
    asked = TTSRequest(**{**request.__dict__, "word_timestamps": False})  # type: ignore[arg-type]
    plain = list(pipeline.stream(asked, token_chunks=token_chunks))[-1].result
    assert plain.words == () and np.array_equal(plain.audio, result.audio)


def test_the_attention_pass_sees_what_the_training_forward_attends(monkeypatch):
    """text_attention (packed kernels, its own mask) against the attention inside GPT.forward."""
    import torch
    import torch.nn.functional as F

    from app.models.gpt.attention import text_attention
    from app.models.gpt.config import GPTConfig
    from app.models.gpt.model import GPT

    torch.manual_seed(0)
    gpt = GPT(GPTConfig(dim=32, n_head=4, n_layer=3, bert_dim=16, layer_dropout=0.0)).eval()
    tx, n = 7, 9
    phones = torch.randint(0, 700, (tx,))
    bert = torch.randn(16, tx)
    tokens = torch.randint(0, 1024, (n,))
    seen: list[torch.Tensor] = []
    sdpa = F.scaled_dot_product_attention

    def recording(q, k, v, attn_mask=None, dropout_p=0.0):
        scores = (q @ k.transpose(-1, -2)) / q.shape[-1] ** 0.5
        seen.append(scores.masked_fill(~attn_mask, float("-inf")).softmax(-1))
        return sdpa(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p)

    with torch.no_grad():
        monkeypatch.setattr(F, "scaled_dot_product_attention", recording)
        gpt(phones[None], torch.tensor([tx]), bert[None], tokens[None], torch.tensor([n]))
        monkeypatch.undo()
    # The forward embeds the codes themselves; the row predicting code j is Tx - 1 + j.
    expected = torch.stack([p[0, :, tx - 1 : tx - 1 + n, :tx].mean(0) for p in seen]).mean(0)
    got = text_attention(gpt, phones, bert, None, tokens)
    assert got.shape == (n, tx)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    prompt = torch.randint(0, 1024, (5,))
    with_prompt = text_attention(gpt, phones, bert, prompt, tokens)
    assert with_prompt.shape == (n, tx) and bool((with_prompt.sum(1) <= 1 + 1e-5).all())
