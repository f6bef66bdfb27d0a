"""Per-language dispatch (upstream clean_text): language tables per version, fallbacks, UNK."""

from __future__ import annotations

import pytest

from app.text import cleaner
from app.text.types import G2P


def test_unreadable_language_reads_as_a_comma_like_upstream() -> None:
    assert cleaner.clean_text("bonjour", "fr", "v2").phones == (",",)
    assert cleaner.clean_text("안녕하세요", "ko", "v1").phones == (",",)  # v1 has no Korean
    assert cleaner.clean_text("안녕하세요", "ko", "v2").phones[0] == "ㅇ"


def test_check_language_gives_a_clear_error() -> None:
    assert cleaner.languages("v1") == ("zh", "ja", "en")
    with pytest.raises(
        cleaner.UnsupportedLanguage, match="'yue' is not available for v1: use one of zh, ja, en"
    ):
        cleaner.check_language("yue", "v1")


def test_word2ph_only_for_chinese_and_cantonese() -> None:
    assert cleaner.clean_text("你好。", "zh", "v2").word2ph == (2, 2, 1)
    assert cleaner.clean_text("你好。", "yue", "v2").word2ph == (2, 2, 1)
    assert cleaner.clean_text("Hello there.", "en", "v2").word2ph is None


def test_phones_outside_the_table_become_unk(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.text import english

    monkeypatch.setattr(english, "g2p", lambda text, version: G2P(("HH", "@@", "AY1", "!")))
    assert cleaner.clean_text("hi", "en", "v2").phones == ("HH", "UNK", "AY1", "!")


def test_misaligned_reader_output_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.text import chinese

    monkeypatch.setattr(chinese, "g2p", lambda text, version: G2P(("n", "i3"), (2, 2)))
    with pytest.raises(RuntimeError, match="2 phones / 2 word2ph entries for 2 characters"):
        cleaner.clean_text("你好", "zh", "v2")
