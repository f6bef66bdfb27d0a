"""Inline pronunciation overrides: syntax, pinyin/Jyutping/ARPAbet/raw readings, clear errors."""

from __future__ import annotations

import pytest

from app.text.overrides import OverrideError, resolve, split_overrides


def test_split_keeps_order_and_ignores_braces_without_bar() -> None:
    assert split_overrides("a{重庆|chong2 qing4}b{x}c") == ["a", ("重庆", "chong2 qing4"), "b{x}c"]
    assert split_overrides("{A|EY1}") == [("A", "EY1")]


@pytest.mark.parametrize(
    ("written", "reading", "phones"),
    [
        ("重庆", "chong2 qing4", ("ch", "ong2", "q", "ing4")),
        ("绿", "lv4", ("l", "v4")),
        ("绿", "lü4", ("l", "v4")),
        ("去", "qu4", ("q", "v4")),
        ("月", "yue4", ("y", "ve4")),
        ("烟", "yan1", ("y", "En1")),
        ("也", "ye3", ("y", "E3")),
        ("有", "you3", ("y", "ou3")),
        ("为", "wei4", ("w", "ei4")),
        ("鬼", "gui3", ("g", "ui3")),
        ("死", "si3", ("s", "i03")),
        ("是", "shi4", ("sh", "ir4")),
        ("啊", "a5", ("AA", "a5")),
        ("二", "er4", ("EE", "er4")),
    ],
)
def test_pinyin(written: str, reading: str, phones: tuple[str, ...]) -> None:
    o = resolve(written, reading, "v2")
    assert o.lang == "zh" and o.phones == phones and o.word2ph == (2,) * len(written)


def test_jyutping_arpabet_and_raw() -> None:
    assert resolve("係", "hai6", "v2", yue=True).phones == ("Yh", "Yai6")
    en = resolve("GIF", "JH IH1 F", "v2")
    assert (en.lang, en.phones, en.word2ph) == ("en", ("JH", "IH1", "F"), None)
    raw = resolve("啊", "=AA a5 SP", "v1")
    assert (raw.lang, raw.phones) == ("raw", ("AA", "a5", "SP"))


@pytest.mark.parametrize(
    ("written", "reading", "message"),
    [
        ("重庆", "chong2", "one pinyin syllable per Chinese character"),
        ("好", "hao", "one pinyin syllable per Chinese character|not a pinyin syllable"),
        ("好", "hao7", "not a pinyin syllable"),
        ("嗯", "ng2", "not a Mandarin syllable"),
        ("好", "", "reading after '|' is empty"),
        (" ", "hao3", "written text before '|' is empty"),
        ("啊", "=AA zz", "not in the v2 phone table"),
        ("係", "hai9", "Jyutping"),
    ],
)
def test_errors_name_the_override(written: str, reading: str, message: str) -> None:
    with pytest.raises(OverrideError, match=message):
        resolve(written, reading, "v2", yue=reading == "hai9")


def test_cantonese_override_needs_v2() -> None:
    with pytest.raises(OverrideError, match="needs a v2 model"):
        resolve("係", "hai6", "v1", yue=True)
