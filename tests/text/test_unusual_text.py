"""Long and unusual text: cut by length, control characters dropped, full-width letters read.

Property tests run the splitter and the frontend on generated strings of any Unicode (control,
format, surrogate, private-use and unassigned code points included); targeted tests cover each
class of text that used to be refused or misread.
"""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.text import EmptyText, OverrideError, SplitMethod, split_text, text_to_phones
from app.text.characters import normalize_characters
from app.text.split import CLAUSE_MARKS, MAX_CLAUSE_UNITS, MAX_PIECE_CHARS, spoken_units

# Every C0 and C1 control character, and the invisible format characters met in pasted text.
CONTROLS = [chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))]
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u200e", "\u202e"]
# Control characters removed outright (the others are line breaks or tabs).
DROPPED = [c for c in CONTROLS if not c.isspace()] + INVISIBLE
_CLAUSE_MARK = re.compile("[" + re.escape("".join(sorted(CLAUSE_MARKS))) + "]")

ANY_CHAR = st.one_of(
    st.characters(exclude_categories=()),  # any code point, surrogates included
    st.sampled_from(CONTROLS + INVISIBLE),
    st.sampled_from(list("你好中文abcXYZ０１ＡＺｚ0123 .,，。!?、かカ한")),
)
# Runs that make long clauses: Han, Latin, digits, kana, emoji, with rare breaks.
RUNS = st.lists(
    st.sampled_from(
        ["我们今天", "abcdefgh", "1234567", "かきくけこ", "한국어", "😀", " ", "、", "\x00", "\u200b"]
    ),
    max_size=300,
).map("".join)


def _readable(text: str) -> bool:
    return any(c.isalnum() for c in normalize_characters(text))


def _check_pieces(text: str, pieces: list[str]) -> None:
    assert bool(pieces) or not _readable(text), "readable text gave no piece"
    for piece in pieces:
        assert piece and len(piece) <= MAX_PIECE_CHARS
        assert not any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in piece if c not in "\t\r")
        for clause in _CLAUSE_MARK.split(piece):
            assert spoken_units(clause) <= MAX_CLAUSE_UNITS, clause


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(ANY_CHAR, max_size=400), st.sampled_from(list(SplitMethod)), st.sampled_from(["zh", "en"]))
def test_split_text_on_any_unicode(text: str, method: SplitMethod, language: str) -> None:
    _check_pieces(text, split_text(text, method, language))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(RUNS, st.sampled_from(list(SplitMethod)))
def test_split_text_bounds_long_runs(text: str, method: SplitMethod) -> None:
    _check_pieces(text, split_text(text, method, "zh"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.text(ANY_CHAR, max_size=40),
    st.sampled_from(["all_zh", "en", "all_ja", "all_ko", "all_yue", "zh", "ja", "auto", "auto_yue"]),
)
def test_frontend_never_crashes_on_any_unicode(text: str, mode: str) -> None:
    try:
        r = text_to_phones(text, mode, "v2")
    except EmptyText:
        assert not normalize_characters(text).strip()
        return
    except OverrideError:
        assert "{" in text or "|" in text or "}" in text
        return
    assert r.phones and len(r.phones) == len(r.phone_ids)
    assert normalize_characters(r.text) == r.text  # nothing left for a reader to turn into a phone


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.text(st.sampled_from(list("你好世界中文abc xyz 123,。!")), min_size=1, max_size=20),
    st.lists(st.tuples(st.integers(0, 20), st.sampled_from(DROPPED)), max_size=6),
    st.sampled_from(["all_zh", "en", "zh", "auto"]),
)
def test_control_characters_add_no_phone(text: str, inserts: list[tuple[int, str]], mode: str) -> None:
    dirty = text
    for at, ch in inserts:
        dirty = dirty[:at] + ch + dirty[at:]
    try:
        clean = text_to_phones(text, mode, "v2")
    except EmptyText:
        with pytest.raises(EmptyText):
            text_to_phones(dirty, mode, "v2")
        return
    assert text_to_phones(dirty, mode, "v2").phones == clean.phones


@pytest.mark.parametrize("ch", DROPPED)
def test_each_control_character_is_dropped(ch: str) -> None:
    assert text_to_phones(f"你好{ch}世界", "zh", "v2").phones == text_to_phones("你好世界", "zh", "v2").phones
    assert text_to_phones(f"good{ch} day", "en", "v2").phones == text_to_phones("good day", "en", "v2").phones
    with pytest.raises(EmptyText):
        text_to_phones(ch * 3, "auto", "v2")
    assert split_text(ch * 3, "cut5") == []


def test_line_separating_controls_cut_like_line_breaks() -> None:
    for ch in "\x0b\x0c\x1c\x1d\x1e\x1f\x85\u2028\u2029":
        assert split_text(f"第一行的内容{ch}第二行的内容", "cut0") == split_text(
            "第一行的内容\n第二行的内容", "cut0"
        )


@pytest.mark.parametrize("mode", ["zh", "all_zh", "en", "auto", "all_ja"])
def test_full_width_letters_and_digits_are_read_as_ascii(mode: str) -> None:
    full = text_to_phones("ＡＢＣ１２３ｘｙｚ", mode, "v2")
    assert full.text == "ABC123xyz"
    assert full.phones == text_to_phones("ABC123xyz", mode, "v2").phones
    assert {"EY1", "B", "S", "IY1"} <= set(full.phones)  # the letters are spelled, not dropped


def test_full_width_marks_keep_their_width() -> None:
    # "，！？：～" are marks upstream tells apart from ASCII ones: only letters and digits change.
    assert normalize_characters("你好，世界！ＡＢ？") == "你好，世界！AB？"


def _pieces_keep_text(text: str, pieces: list[str], stop: str) -> None:
    joined = "".join(p.removesuffix(stop) for p in pieces)
    assert joined.replace(" ", "") == text.replace(" ", "")


@pytest.mark.parametrize(
    ("text", "language", "stop"),
    [
        ("我们今天去公园玩然后一起吃饭" * 250, "zh", "。"),  # 3500 characters, no punctuation
        ("the quick brown fox jumps over the lazy dog " * 80, "en", "."),
        ("きょうはいいてんきですねわたしはがっこうにいきます" * 120, "ja", "。"),
        ("1234567890" * 200, "zh", "。"),  # a 2000-digit number
        ("1234567890" * 200, "en", "."),
        ("abcdefghij" * 50, "en", "."),  # a 500-letter word
    ],
    ids=["zh", "en", "ja", "digits-zh", "digits-en", "long-word"],
)
def test_long_unpunctuated_text_is_cut_by_length(text: str, language: str, stop: str) -> None:
    for method in SplitMethod:
        pieces = split_text(text, method, language)
        assert len(pieces) >= 2
        _check_pieces(text, pieces)
        _pieces_keep_text(text.strip(), pieces, stop)


def test_long_clauses_are_cut_at_sensible_points() -> None:
    words = "the quick brown fox jumps over the lazy dog"
    en = split_text(f"{words} " * 40, "cut0", "en")
    assert len(en) > 1 and all(set(p.removesuffix(".").split()) <= set(words.split()) for p in en)
    zh = split_text("我们今天去公园玩然后一起吃饭" * 40, "cut0", "zh")  # cut between jieba's words
    assert len(zh) > 1
    assert all(
        p.endswith(("我们。", "今天。", "公园。", "然后。", "一起。", "吃饭。", "去。", "玩。")) for p in zh
    )
    mixed = split_text(("中文字" * 20 + "abc") * 20, "cut0", "zh")
    assert all(p.endswith("abc。") or p.endswith("字。") for p in mixed)


def test_ordinary_clauses_are_not_cut() -> None:
    text = (
        "今天天气很好，我们一起去公园散步吧。The weather is lovely today, so let us take a walk in the park."
    )
    assert split_text(text, "cut0") == [text]
    sentence = (
        "This sentence has no comma and goes on for quite a while but stays well within a breath of speech."
    )
    assert split_text(sentence, "cut0", "en") == [sentence]
