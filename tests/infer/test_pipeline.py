"""The TTS pipeline end to end on tiny random models: lengths, seeds, batching, caching, references."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import torch

from app.infer import ModelLoadError, TTSInputError, TTSPipeline, TTSRequest, reference
from app.infer.reference import clauses
from tests.infer.tiny import MAX_TOKENS, spec_for, voice

HOP = 640
TOKEN_SAMPLES = 2 * HOP  # one 25 Hz token = two 50 Hz frames
EN_TEXT = "Hello there. This is a test, of the pipeline! And one more sentence here."


def _request(ref, **changes) -> TTSRequest:
    fields = {
        "text": EN_TEXT,
        "text_language": "en",
        "reference": str(ref),
        "prompt_text": "你好欢迎来到我们的节目",
        "prompt_language": "all_zh",
        "split_method": "cut5",
        "seed": 11,
        **changes,
    }
    return TTSRequest(**fields)


def test_synthesize_gives_audio_of_the_expected_length(pipeline, ref_wav):
    result = pipeline.synthesize(_request(ref_wav))
    assert result.sample_rate == 32000 and result.audio.dtype == np.int16
    assert result.segments == (
        "Hello there.",
        " This is a test,",
        " of the pipeline!",
        " And one more sentence here.",
    )
    pause = round(0.3 * 32000)
    lengths = [int(t.numel()) for t in result.tokens]
    assert all(11 <= n <= MAX_TOKENS for n in lengths)  # EOS is not allowed before 11 tokens
    assert len(result.audio) == sum(n * TOKEN_SAMPLES + pause for n in lengths)
    start = 0
    for n in lengths:  # each segment is speech followed by exact silence
        seg = result.audio[start : start + n * TOKEN_SAMPLES + pause]
        assert np.abs(seg[: n * TOKEN_SAMPLES]).max() > 100 and not seg[n * TOKEN_SAMPLES :].any()
        start += len(seg)
    info = result.reference
    assert not info.trimmed and not info.reference_free and info.prompt_text == "你好欢迎来到我们的节目。"
    t = result.timings
    assert t.tokens == sum(lengths) and 0 < t.gpt < t.total and 0 < t.sovits < t.total and result.notes == ()


def test_seed_reproduces_and_a_random_seed_is_reported(pipeline, ref_wav):
    a = pipeline.synthesize(_request(ref_wav, text="A short sentence to read.", seed=5))
    b = pipeline.synthesize(_request(ref_wav, text="A short sentence to read.", seed=5))
    assert np.array_equal(a.audio, b.audio) and a.seed == 5
    r = pipeline.synthesize(_request(ref_wav, text="A short sentence to read.", seed=None))
    again = pipeline.synthesize(_request(ref_wav, text="A short sentence to read.", seed=r.seed))
    assert np.array_equal(r.audio, again.audio)
    other = pipeline.synthesize(_request(ref_wav, text="A short sentence to read.", seed=6))
    assert not np.array_equal(a.audio, other.audio)


def test_batched_segments_equal_one_by_one_when_sampling_is_greedy(pipeline, ref_wav):
    greedy = {"top_k": 1, "text": EN_TEXT + " Two more words, and then the end."}
    one = pipeline.synthesize(_request(ref_wav, **greedy))
    batched = pipeline.synthesize(_request(ref_wav, batch_size=4, **greedy))
    assert len(one.segments) == 6
    for a, b in zip(one.tokens, batched.tokens, strict=True):
        assert torch.equal(a, b)
    assert np.array_equal(one.audio, batched.audio)


def test_length_buckets_decode_out_of_order_but_the_audio_keeps_the_text_order(
    pipeline, ref_wav, monkeypatch
):
    text = "Good day. A much longer sentence that goes on and on for a while. Thanks a lot. Another long sentence also going on."
    greedy = {"top_k": 1, "text": text, "split_method": "cut4"}
    one = pipeline.synthesize(_request(ref_wav, **greedy))
    batches = []
    real = pipeline.generate_tokens
    monkeypatch.setattr(
        pipeline,
        "generate_tokens",
        lambda phones, *a, **k: batches.append([len(p) for p in phones]) or real(phones, *a, **k),
    )
    chunks = list(pipeline.stream(_request(ref_wav, batch_size=2, **greedy), token_chunks=False))
    bucketed = chunks[-1].result
    assert (
        len(one.segments) == 4 and [len(b) for b in batches] == [2, 2] and bucketed.segments == one.segments
    )
    assert max(batches[0]) < min(batches[1])  # segments 0 and 2 (short) first, then 1 and 3
    assert [c.segment for c in chunks[:-1]] == [0, 1, 2, 3]  # the short pair (0, 2) is decoded first
    for a, b in zip(one.tokens, bucketed.tokens, strict=True):
        assert torch.equal(a, b)
    assert np.array_equal(one.audio, bucketed.audio)


def test_the_same_clip_is_not_encoded_twice(pipeline, ref_wav, tmp_path, monkeypatch):
    pipeline.clear_cache()
    calls, decoded = [], []
    real = pipeline.hubert.prompt_features
    monkeypatch.setattr(pipeline.hubert, "prompt_features", lambda wav: calls.append(1) or real(wav))
    real_decode = reference.decode_clip
    monkeypatch.setattr(reference, "decode_clip", lambda *a: decoded.append(1) or real_decode(*a))
    first = pipeline.synthesize(_request(ref_wav, text="Cache me."))
    copy = shutil.copy(ref_wav, tmp_path / "renamed.wav")  # same bytes, other name
    second = pipeline.synthesize(_request(copy, text="Cache me."))
    assert calls == [1] and decoded == [1] and not first.reference.cached and second.reference.cached
    assert first.reference.sha256 == second.reference.sha256
    assert np.array_equal(first.audio, second.audio)
    # Reference-free first, then with a prompt: the tokens are added to the cached entry.
    pipeline.clear_cache()
    pipeline.synthesize(_request(ref_wav, text="Cache me.", prompt_text=""))
    assert calls == [1]
    assert not pipeline.synthesize(_request(ref_wav, text="Cache me.")).reference.cached and calls == [1, 1]


def test_extra_references_average_the_timbre(pipeline, ref_wav, tmp_path):
    other = voice(tmp_path / "other.wav", 4.0, sr=44100)
    alone, *_ = pipeline.plan(_request(ref_wav))
    both, *_ = pipeline.plan(_request(ref_wav, extra_references=(str(other),)))
    second, *_ = pipeline.plan(_request(other))
    torch.testing.assert_close(both.timbre.ge, (alone.timbre.ge + second.timbre.ge) / 2)
    assert not torch.allclose(alone.timbre.ge, both.timbre.ge)


def test_a_12_s_reference_is_trimmed_and_its_prompt_cut_to_match(pipeline, tmp_path):
    ref12 = voice(tmp_path / "r12.wav", 12.0, pauses=(2.3, 4.6, 6.9, 9.2))
    prompt = "One two three, four five six. Seven eight! Nine ten? Eleven twelve."
    result = pipeline.synthesize(_request(ref12, prompt_text=prompt, prompt_language="en", text="Trim it."))
    info = result.reference
    assert info.trimmed and info.original_seconds == pytest.approx(12.0)
    assert 3.0 <= info.end_seconds - info.start_seconds <= 10.0
    assert any("best span between pauses" in n for n in result.notes)
    assert not info.reference_free and info.prompt_text in prompt and len(clauses(info.prompt_text)) >= 3
    unmatched = pipeline.synthesize(_request(ref12, prompt_text="Just one clause.", text="Trim it."))
    assert unmatched.reference.reference_free and any("reference-free mode" in n for n in unmatched.notes)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"text": "Привет, как дела?", "text_language": "auto"},
            r"text 'Привет, как дела\?' cannot be read as auto: its letters \(Приветкадл\) are of a script",
        ),
        ({"text": "...!!"}, "the text is empty"),
        (
            {"prompt_text": "Привет мир", "prompt_language": "en"},
            "prompt text 'Привет мир.' cannot be read as en",
        ),
    ],
)
def test_text_the_models_cannot_read_is_refused(pipeline, ref_wav, changes, message):
    with pytest.raises(TTSInputError, match=message):
        pipeline.synthesize(_request(ref_wav, **changes))


def test_partly_unreadable_text_is_read_and_noted(pipeline, ref_wav):
    result = pipeline.synthesize(_request(ref_wav, text="Hello Мир friends.", split_method="cut0"))
    assert any("cannot read were skipped: Мир" in n for n in result.notes)


def test_encoders_load_only_when_needed_and_missing_ones_are_named(tiny_home, ref_wav, tmp_path):
    spec = dataclasses.replace(
        spec_for(tiny_home), hubert_dir=tmp_path / "no-hubert", bert_dir=tmp_path / "no-bert"
    )
    pipe = TTSPipeline.load(spec)
    result = pipe.synthesize(_request(ref_wav, prompt_text="", text="English needs neither."))
    assert result.reference.reference_free and pipe._hubert is None and pipe._bert is None
    with pytest.raises(
        ModelLoadError, match=r"HuBERT model missing in .*no-hubert.*download_models.py chinese-hubert-base"
    ):
        pipe.synthesize(_request(ref_wav, prompt_text="With a prompt.", prompt_language="en", text="Hello."))
    with pytest.raises(ModelLoadError, match=r"BERT model missing.*chinese-roberta-wwm-ext-large"):
        pipe.synthesize(_request(ref_wav, prompt_text="", text="今天天气很不错。", text_language="all_zh"))


def test_chinese_text_gets_bert_features(pipeline):
    (segment,) = pipeline.segment_inputs("今天天气很不错。", "all_zh", "cut0")
    assert segment.bert.shape == (1024, len(segment.phones)) and segment.bert.abs().sum() > 0
    (english,) = pipeline.segment_inputs("Nothing Chinese here.", "en", "cut0")
    assert not english.bert.any()
