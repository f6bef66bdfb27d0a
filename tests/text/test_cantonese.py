"""Cantonese (v2): normalisation through the Mandarin rules, Jyutping onset/rhyme phones."""

from __future__ import annotations

from app.text import cantonese
from app.text.cleaner import clean_text


def test_reading_of_a_sentence() -> None:
    r = clean_text("今日係3月13號。", "yue", "v2")
    assert r.norm_text == "今日系三月十三号."
    assert r.phones == (
        "Yg", "Yam1", "Yj", "Yat6", "Yh", "Yai6", "Ys", "Yaam1", "Yj", "Yyut6",
        "Ys", "Yap6", "Ys", "Yaam1", "Yh", "You6", ".",
    )  # fmt: skip
    assert r.word2ph == (2, 2, 2, 2, 2, 2, 2, 2, 1)


def test_syllable_split_follows_upstream_onset_list() -> None:
    assert cantonese.split_syllable("ngo5") == ["ng", "o5"]
    assert cantonese.split_syllable("m4") == ["m", "m4"]  # syllabic m: the onset's letter again
    assert cantonese.split_syllable("ng5") == ["ng", "g5"]
    assert cantonese.split_syllable("aa3") == ["aa", "a3"]  # no consonant: "aa" is the onset
    assert cantonese.split_syllable("jyu4") == ["j", "yu4"]
    assert cantonese.split_syllable("xyz1") is None


def test_brackets_and_quotes_are_dropped() -> None:
    assert cantonese.normalize("「你好」（嗎）~", "v2") == "你好吗-"


def test_characters_without_reading_become_unk() -> None:
    # ToJyutping has no reading for the radical 乄 (upstream would raise a TypeError).
    g = cantonese.g2p("你乄", "v2")
    assert g.phones == ("Yn", "Yei5", "UNK")
    assert g.word2ph == (2, 1)


def test_multi_syllable_readings_map_to_unk_like_upstream() -> None:
    # 卅 reads "saa1 aa6": upstream keeps the two syllables as one string, an unknown phone.
    r = clean_text("卅", "yue", "v2")
    assert r.phones[0] == "Ys" and r.phones[1] == "UNK"
    assert r.word2ph == (2,)
