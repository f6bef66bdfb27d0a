"""Korean frontend: upstream goldens, jamo phones, Latin letters, offline construction."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from app.text import korean
from tests.text.golden_segments import golden_segments, report, symbol_set, to_table

MIN_RATE = 0.95


def test_goldens_korean_segments(upstream_fixtures):
    segments = golden_segments(upstream_fixtures, "ko")
    assert segments, "the golden files hold no Korean segment"
    table = symbol_set(upstream_fixtures, "v2")
    results: dict[str, list[tuple[bool, str]]] = defaultdict(list)
    for seg in segments:
        norm = korean.normalize(seg.text, seg.version)
        phones = to_table(korean.g2p(norm, seg.version).phones, table)
        good = norm == seg.norm_text and phones == seg.phones
        msg = f"{seg.where} {seg.text!r}\n    got  {' '.join(phones)}\n    want {' '.join(seg.phones)}"
        results[seg.group].append((good, msg))
    failing = report(results, MIN_RATE)
    assert not failing, f"groups below {MIN_RATE:.0%}: {failing}"


def test_single_char_symbols_match_the_v2_table(upstream_fixtures):
    symbols = json.loads((upstream_fixtures / "symbols_v2.json").read_text(encoding="utf-8"))["symbols"]
    assert frozenset(s for s in symbols if len(s) == 1) == korean.V2_SINGLE_CHAR_SYMBOLS


def test_jamo_phones_spaces_and_compound_vowels():
    phones = korean.g2p("안녕 와", "v2").phones
    # 안녕 -> ㅇㅏㄴㄴㅣㅓㅇ (ㅕ split into ㅣㅓ), space -> 空, 와 -> ㅇㅗㅏ, trailing jamo gets "."
    assert phones == ("ㅇ", "ㅏ", "ㄴ", "ㄴ", "ㅣ", "ㅓ", "ㅇ", "空", "ㅇ", "ㅗ", "ㅏ", ".")


def test_latin_letters_read_as_korean_letter_names():
    assert korean.g2p("KBS", "v2").phones == korean.g2p("케이비에스", "v2").phones


@pytest.mark.parametrize("text", ["", "!!!", "🙂", "ab\x00c"])
def test_odd_input_gives_defined_phones(text):
    phones = korean.g2p(text, "v2").phones
    assert all(p in korean.V2_SINGLE_CHAR_SYMBOLS for p in phones)


def test_unknown_characters_become_stop_symbol():
    assert korean.UNKNOWN_PHONE in korean.g2p("사랑🙂", "v2").phones


def test_numbers_are_spelled_out():
    assert korean.g2p("3개", "v2").phones == korean.g2p("세개", "v2").phones


def test_g2pk2_is_built_without_nltk_downloads(monkeypatch):
    import sys

    import nltk

    calls: list[tuple] = []

    def record(*args, **kwargs):
        calls.append(args)
        return False

    monkeypatch.setattr(nltk, "download", record)
    for name in [m for m in sys.modules if m == "g2pk2" or m.startswith("g2pk2.")]:
        monkeypatch.delitem(sys.modules, name)
    pronouncer = korean._Pronouncer()  # fresh import of g2pk2 and a fresh G2p
    assert calls == []
    assert nltk.download is record  # restored after the import
    assert pronouncer("국물") == "궁물"
