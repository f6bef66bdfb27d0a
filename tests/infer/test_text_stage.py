"""The text stage on long and unusual text: cut by length, other languages skipped with a note,
control characters never spoken, "the text is empty" only for text with nothing readable; and one
long unpunctuated text synthesised end to end with the tiny models."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.infer import TTSInputError, TTSRequest
from app.infer.scripts import speaks
from app.infer.stages.text import TextStage
from app.text import SplitMethod
from app.text.characters import normalize_characters
from app.text.split import MAX_PIECE_CHARS
from app.text.symbols import ids_to_phones
from tests.infer.tiny import MAX_TOKENS

BERT_DIM = 8
ANY_CHAR = st.one_of(
    st.characters(exclude_categories=()),  # any code point, surrogates included
    st.sampled_from([chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))] + ["\u200b", "\ufeff", "\u200d"]),
    st.sampled_from(list("你好中文abc XYZ０１ＡＺ123 .,，。!?、かカ한")),
)


class _ZeroBert:
    """Stands in for BERT: zero features of the right shape."""

    def text_features_batch(self, results) -> list[torch.Tensor]:
        return [torch.zeros(BERT_DIM, len(r.phones)) for r in results]


@pytest.fixture(scope="module")
def stage() -> TextStage:
    return TextStage("v2", BERT_DIM, lambda: _ZeroBert())


def _spoken(stage: TextStage, text: str, language: str, method: str = "cut5") -> tuple[list, list[str]]:
    notes: list[str] = []
    segments = stage.segments(text, language, method, notes)
    for s in segments:
        assert 0 < len(s.text) <= MAX_PIECE_CHARS and s.bert.shape == (BERT_DIM, len(s.phones))
        assert speaks(tuple(ids_to_phones(s.phones, "v2"))), s.text
    return segments, notes


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.text(ANY_CHAR, max_size=50),
    st.sampled_from(["all_zh", "en", "all_ja", "all_ko", "zh", "ja", "auto"]),
    st.sampled_from([m.value for m in SplitMethod]),
)
def test_any_unicode_is_read_or_refused_with_a_reason(stage, text, mode, method) -> None:
    try:
        _spoken(stage, text, mode, method)
    except TTSInputError as exc:
        readable = any(c.isalnum() for c in normalize_characters(text))
        if "the text is empty" in str(exc):
            assert not readable, f"readable text {text!r} called empty"
        else:
            assert "cannot be read" in str(exc) or "override" in str(exc).lower(), str(exc)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.text(st.sampled_from(list("你好世界中文，。abc xyz 12")), min_size=2, max_size=30),
    st.lists(
        st.tuples(st.integers(0, 30), st.sampled_from(["\x00", "\x07", "\x1b", "\x7f", "\x9f", "\u200b"])),
        max_size=5,
    ),
)
def test_control_characters_never_become_phones(stage, text, inserts) -> None:
    dirty = text
    for at, ch in inserts:
        dirty = dirty[:at] + ch + dirty[at:]
    try:
        clean = [s.phones for s in stage.segments(text, "zh", "cut5")]
    except TTSInputError as exc:
        with pytest.raises(TTSInputError, match=re.escape(str(exc).split(":")[0])):
            stage.segments(dirty, "zh", "cut5")
        return
    assert [s.phones for s in stage.segments(dirty, "zh", "cut5")] == clean


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("我们今天去公园玩然后一起吃饭" * 200, "zh"),
        ("the quick brown fox jumps over the lazy dog " * 60, "en"),
        ("きょうはいいてんきですねわたしはがっこうにいきます" * 100, "ja"),
        ("1234567890" * 200, "zh"),
        ("1234567890" * 200, "en"),
        ("abcdefghij" * 50, "en"),
    ],
    ids=["zh", "en", "ja", "digits-zh", "digits-en", "long-word"],
)
def test_long_unpunctuated_text_is_read_in_bounded_segments(stage, text, language) -> None:
    segments, notes = _spoken(stage, text, language, "cut1")
    assert len(segments) >= 2 and notes == []


@pytest.mark.parametrize(
    ("text", "mode", "skipped", "kept"),
    [
        ("你好世界，hello there, how are you", "en", "你好世界", "hello there,"),
        ("I like 你好世界 very much", "en", "你好世界", "I like 你好世界 very much."),
        ("今天天气很好。こんにちは。我们走吧", "zh", "こんにちは", "今天天气很好。"),
        ("今天天气很好。こんにちは。我们走吧", "all_zh", "こんにちは", "今天天气很好。"),
        ("今日はいい天気。안녕하세요。行きましょう", "all_ja", "안녕하세요", "今日はいい天気。"),
        ("안녕하세요. 你好世界. 감사합니다", "all_ko", "你好世界", "안녕하세요."),
    ],
)
def test_another_language_is_skipped_with_a_note(stage, text, mode, skipped, kept) -> None:
    segments, notes = _spoken(stage, text, mode)
    assert segments[0].text == kept
    assert any(skipped in n and mode in n for n in notes), notes


def test_auto_and_mixed_modes_read_each_language_in_its_own(stage) -> None:
    for text, mode in [("我喜欢 hello world 这个词", "zh"), ("I like 你好世界 very much", "auto")]:
        segments, notes = _spoken(stage, text, mode)
        phones = ids_to_phones(segments[0].phones, "v2")
        assert notes == [] and "L" in phones and any(p[-1].isdigit() and p[0].islower() for p in phones)


def test_full_width_letters_and_digits_are_read(stage) -> None:
    for mode in ["zh", "en"]:
        (full,), notes = _spoken(stage, "ＡＢＣ１２３", mode)
        (ascii_,), _ = _spoken(stage, "ABC123", mode)
        assert full.phones == ascii_.phones and notes == []


def test_empty_only_for_text_with_nothing_readable(stage) -> None:
    for text in ["", "   ", "\x00\x01\x1f\x7f\x9f", "\u200b\ufeff", "。，！", "\n\x0b\x0c"]:
        with pytest.raises(TTSInputError, match="the text is empty"):
            stage.segments(text, "zh", "cut5")
    with pytest.raises(TTSInputError, match=r"cannot be read as en: its letters .*mode does not read"):
        stage.segments("你好世界。こんにちは", "en", "cut5")
    with pytest.raises(TTSInputError, match=r"cannot be read as zh: its letters .* of a script"):
        stage.segments("Привет, как дела?", "zh", "cut5")


def test_prompt_ending_is_decided_without_control_characters(stage) -> None:
    assert stage.prompt("你好世界。\x00\u200b", "all_zh").text == "你好世界。"
    assert stage.prompt("hello world\x07", "en").text == "hello world."


def test_long_unpunctuated_text_is_synthesised(pipeline, ref_wav) -> None:
    text = "我们今天去公园玩然后一起吃饭再看一场电影" * 60  # 1200 characters, no punctuation
    request = TTSRequest(
        text=text,
        text_language="zh",
        reference=str(ref_wav),
        prompt_text="你好欢迎来到我们的节目",
        prompt_language="all_zh",
        split_method="cut1",
        seed=3,
        batch_size=4,
    )
    result = pipeline.synthesize(request)
    assert len(result.segments) >= 10 and all(len(s) <= 101 for s in result.segments)
    assert "".join(s.removesuffix("。") for s in result.segments).lstrip("。") == text
    assert all(1 <= t.numel() <= MAX_TOKENS for t in result.tokens) and len(result.tokens) == len(
        result.segments
    )
    assert result.audio.dtype == np.int16 and np.abs(result.audio).max() > 100 and result.notes == ()
