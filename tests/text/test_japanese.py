"""Japanese frontend: upstream goldens, prosody marks, punctuation, dictionary handling."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from app.text import japanese
from tests.text.golden_segments import golden_segments, report, symbol_set, to_table

MIN_RATE = 0.95


def test_goldens_japanese_segments(upstream_fixtures):
    segments = golden_segments(upstream_fixtures, "ja")
    assert segments, "the golden files hold no Japanese segment"
    tables = {v: symbol_set(upstream_fixtures, v) for v in ("v1", "v2")}
    results: dict[str, list[tuple[bool, str]]] = defaultdict(list)
    for seg in segments:
        norm = japanese.normalize(seg.text, seg.version)
        phones = to_table(japanese.g2p(norm, seg.version).phones, tables[seg.version])
        good = norm == seg.norm_text and phones == seg.phones
        msg = f"{seg.where} {seg.text!r}\n    got  {' '.join(phones)}\n    want {' '.join(seg.phones)}"
        results[seg.group].append((good, msg))
    failing = report(results, MIN_RATE)
    assert not failing, f"groups below {MIN_RATE:.0%}: {failing}"


def test_prosody_marks_and_punctuation():
    phones = japanese.g2p("こんにちは、世界！", "v2").phones
    assert phones[:6] == ("k", "o", "[", "N", "n", "i")
    assert "," in phones and phones[-1] == "!"
    assert "^" not in phones and "$" not in phones
    # Spaces between runs vanish; other marks pass through (later mapped to UNK by the table).
    assert " " not in japanese.g2p("はい いいえ", "v2").phones
    assert "「" in japanese.g2p("「はい」", "v2").phones


def test_unvoiced_vowels_written_lowercase_and_latin_lowercased():
    phones = japanese.g2p("です", "v2").phones
    assert phones[-1] == "u" and all(p not in {"A", "I", "U", "E", "O"} for p in phones)
    assert japanese.g2p("NICE", "v2").phones == japanese.g2p("nice", "v2").phones


def test_normalize_collapses_only_ascii_punctuation_runs():
    assert japanese.normalize("はい!!??", "v2") == "はい!"
    assert japanese.normalize("はい。。", "v2") == "はい。。"


def test_empty_and_symbol_only_text():
    assert japanese.g2p("", "v2").phones == ()
    assert japanese.g2p("🙂", "v2").phones == ("🙂",)


def test_missing_dictionary_is_a_clear_error(tmp_path: Path):
    with pytest.raises(japanese.JapaneseDictionaryMissing, match="open-jtalk-mecab-naist-jdic"):
        japanese.g2p("こんにちは", "v2", dict_dir=tmp_path / "nowhere")


def test_long_text():
    phones = japanese.g2p("今日はいい天気ですね。" * 900, "v2").phones
    assert phones.count(".") == 900
