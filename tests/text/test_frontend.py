"""Frontend: language modes, the leading-"." retry, overrides in context, robustness on odd input."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.text import EmptyText, LanguageMode, UnsupportedLanguage, modes, text_to_phones
from app.text.characters import normalize_characters
from app.text.symbols import symbol_to_id


def test_all_zh_reads_latin_runs_as_english() -> None:
    r = text_to_phones("K8792次列车。", "all_zh", "v2")
    assert [(s.lang, s.text) for s in r.segments] == [("en", "K"), ("zh", "8792次列车。")]
    assert r.norm_text == "K八七九二次列车."
    assert r.word2ph is None  # the English segment has none
    assert r.phones[:3] == (",", "K", "EY1")  # under four English phones: a leading ","


def test_mixed_mode_reads_non_english_as_the_chosen_language() -> None:
    r = text_to_phones("我最近在学shopping，感觉不错。", "zh", "v2")
    assert [s.lang for s in r.segments] == ["zh", "en", "zh"]
    yue = text_to_phones("我最近在学shopping，感觉不错。", "yue", "v2")
    assert [s.lang for s in yue.segments] == ["yue", "en", "yue"]
    assert yue.phones[0].startswith("Y")


def test_all_yue_and_auto_yue_read_chinese_as_cantonese() -> None:
    assert {s.lang for s in text_to_phones("我哋一齊去飲茶。", "all_yue", "v2").segments} == {"yue"}
    assert "yue" in {s.lang for s in text_to_phones("Hello，我哋去飲茶。", "auto_yue", "v2").segments}


def test_en_mode_is_one_english_segment_and_all_en_is_an_alias() -> None:
    a = text_to_phones("Hello 你好 world.", "en", "v2")
    b = text_to_phones("Hello 你好 world.", "all_en", "v2")
    assert len(a.segments) == 1 and a.segments[0].lang == "en"
    assert a.phones == b.phones and b.mode == "en"


def test_short_text_is_read_again_with_a_leading_dot() -> None:
    r = text_to_phones("好。", "all_zh", "v2")
    assert r.retried_with_leading_dot
    assert r.phones == (".", "h", "ao3", ".")
    assert r.text == "好。"
    long = text_to_phones("你好，欢迎来到这里。", "all_zh", "v2")
    assert not long.retried_with_leading_dot


def test_ids_and_word2ph_are_consistent() -> None:
    r = text_to_phones("你好，欢迎来到我们的节目！", "all_zh", "v1")
    table = symbol_to_id("v1")
    assert r.phone_ids == tuple(table[p] for p in r.phones)
    assert r.word2ph is not None and sum(r.word2ph) == len(r.phones) and len(r.word2ph) == len(r.norm_text)


def test_overrides_replace_the_reading() -> None:
    plain = text_to_phones("我要还钱给他。", "all_zh", "v2")
    assert plain.phones[4:6] == ("h", "ai2")
    r = text_to_phones("我要{还钱|huan2 qian2}给他。", "all_zh", "v2")
    assert r.phones[4:8] == ("h", "uan2", "q", "ian2")
    assert len(r.phones) == len(plain.phones)
    seg = r.segments[1]
    assert seg.override and seg.lang == "zh" and seg.word2ph == (2, 2) and seg.norm_text == "还钱"
    assert r.word2ph is not None and sum(r.word2ph) == len(r.phones)
    en = text_to_phones("I like {GIF|JH IH1 F} files.", "en", "v2")
    assert en.segments[1].phones == ("JH", "IH1", "F") and en.segments[1].lang == "en"


def test_errors_are_clear() -> None:
    with pytest.raises(EmptyText, match="empty"):
        text_to_phones("  \n", "auto", "v2")
    with pytest.raises(UnsupportedLanguage, match="unknown language mode 'fr'"):
        text_to_phones("bonjour", "fr", "v2")
    with pytest.raises(UnsupportedLanguage, match="needs ko, which v1 models cannot read"):
        text_to_phones("안녕하세요", "all_ko", "v1")
    with pytest.raises(ValueError, match="unknown text version"):
        text_to_phones("你好", "all_zh", "v3")
    assert "all_ko" not in modes("v1") and "auto" in modes("v1") and "auto_yue" in modes("v2")


def test_mode_parse() -> None:
    assert LanguageMode.parse("ALL_ZH") is LanguageMode.ALL_ZH
    assert LanguageMode.parse("all_en") is LanguageMode.EN
    assert LanguageMode.ALL_YUE.languages == frozenset({"yue"})


@pytest.mark.parametrize(
    "text", ["。", "!?", "😀😀", "\u200b你\ufeff", "𠀀", "١٢٣", "---", "￥", "^", "{}", "{|}"]
)
@pytest.mark.parametrize("mode", ["all_zh", "en", "all_ja", "all_ko", "all_yue", "zh", "auto", "auto_yue"])
def test_odd_input_gives_a_result(text: str, mode: str) -> None:
    r = text_to_phones(text, mode, "v2")
    assert r.phones and len(r.phone_ids) == len(r.phones)


def test_ten_thousand_characters() -> None:
    text = ("今天天气很好，我们去公园散步。Hello world! " * 300)[:10000]
    r = text_to_phones(text, "auto", "v2")
    assert len(r.phones) > 5000
    assert all(p in symbol_to_id("v2") for p in r.phones)


_ALPHABET = [
    *"你好一不儿的了中文字abcXYZ 0123456789.,!?。，！？、…—~:;'\"()[]{}|@#%^&*+-=/\\\t\n",
    *["😀", "\x00", "\x1b", "\u200b", "か", "カ", "한", "Ω", "é", "ß", "𠀀"],
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.text(alphabet=st.sampled_from(_ALPHABET), max_size=40),
    st.sampled_from(["all_zh", "auto", "zh", "all_yue"]),
)
def test_never_crashes(text: str, mode: str) -> None:
    from app.text import OverrideError

    try:
        r = text_to_phones(text, mode, "v2")
    except EmptyText:
        assert not normalize_characters(text).strip()  # blank once control characters are gone
        return
    except OverrideError:
        assert "|" in text
        return
    table = symbol_to_id("v2")
    assert all(p in table for p in r.phones)
    assert r.retried_with_leading_dot or len(r.phones) >= 6
    if r.word2ph is not None:
        assert sum(r.word2ph) == len(r.phones)
