"""English frontend: upstream goldens, normaliser quirks, lexicon, OOV paths, offline guarantees."""

from __future__ import annotations

import importlib
import sys
from collections import defaultdict

import pytest

from app.text import en_lexicon, en_neural, english
from app.text.en_tagger import tag
from tests.text.golden_segments import golden_segments, report, symbol_set, to_table

MIN_RATE = 0.95


def test_goldens_english_segments(upstream_fixtures):
    """normalize + g2p of every English segment of every golden file, per group >= 95 %."""
    segments = golden_segments(upstream_fixtures, "en")
    assert segments, "the golden files hold no English segment"
    tables = {v: symbol_set(upstream_fixtures, v) for v in ("v1", "v2")}
    results: dict[str, list[tuple[bool, str]]] = defaultdict(list)
    for seg in segments:
        norm = english.normalize(seg.text, seg.version)
        phones = to_table(english.g2p(norm, seg.version).phones, tables[seg.version])
        good = norm == seg.norm_text and phones == seg.phones
        msg = f"{seg.where} {seg.text!r}: norm {norm!r} want {seg.norm_text!r}\n    got  {' '.join(phones)}\n    want {' '.join(seg.phones)}"
        results[seg.group].append((good, msg))
    failing = report(results, MIN_RATE)
    assert not failing, f"groups below {MIN_RATE:.0%}: {failing}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("It costs $3.5.", "It costs three dollars and fifty cents."),
        ("£1.01 each", "one pound and one penny each"),
        ("It is 13:05 now", "It is one five p.m. now"),
        ("at 10:00 sharp", "at ten o'clock a.m. sharp"),
        ("Add 3/4 cup and 1/2 spoon, 5/1 total", "Add three fourths cup and one half spoon, five total"),
        ("the 22nd time", "the twenty-second time"),
        ("run 5km or 1h", "run five kilometers or one hour"),
        ("It is -3 today", "It isnegative three today"),
        ("2 + 3 = 5", "two plus three Equals five"),
        ("In 1999 and 2005 and 1800", "In nineteen ninety-nine and two thousand five and eighteen hundred"),
        ("Café naïve", "Cafe naive"),
        ("e.g. this; i.e. that", "for example this that is that"),
        ("MacBook KPI", "Mac Book K P I"),
        ("Wait!!! Really??", "Wait! Really?"),
        ("你好。", "."),
        ("50% off", "fifty percent off"),
    ],
)
def test_normalize_matches_upstream_rules(text, expected):
    assert english.normalize(text, "v2") == expected


def test_normalize_survives_huge_numbers_and_odd_input():
    huge = "9" * 60
    out = english.normalize(f"{huge} and £,5 and $1.2.3", "v2")
    assert "nine" in out and "pounds" in out
    assert english.normalize("", "v2") == ""
    assert english.normalize("🙂\x00\x07", "v2") == ""


def test_g2p_basic_paths():
    lex = en_lexicon.lexicon()
    # Dictionary word, and the lone capital letter A read as a letter name.
    assert english.g2p("hello", "v2").phones == lex["hello"]
    assert english.g2p("hi", "v2").phones == (",", *lex["hi"])
    assert english.g2p("A", "v2").phones == (",", "EY1")
    # Unknown 3-letter word spelled out; upstream's deleted abbreviations are spelled too.
    assert english.g2p("xqz", "v2").phones == (*lex["x"], *lex["q"], *lex["z"])
    assert english.g2p("AI", "v2").phones == (",", "EY1", *lex["i"])
    # Possessive of an unknown word follows the final sound.
    assert english.g2p("zorblat's", "v2").phones[-1] == "S"
    # Compound split by wordsegment: each part from the dictionary.
    assert english.g2p("sunflowerpot", "v2").phones == (*lex["sunflower"], *lex["pot"])
    # Apostrophes become "-", punctuation passes through, short results get a leading ",".
    assert english.g2p("!", "v2").phones == (",", "!")
    assert english.g2p("", "v2").phones == (",",)


def test_oov_words_use_neural_model():
    word = "permalink"  # not in the lexicon, and wordsegment keeps it whole
    assert word not in en_lexicon.lexicon()
    assert english._wordsegment().segment(word) == [word]
    phones = english.g2p(word, "v2").phones
    assert phones == tuple(en_neural.load()(word))
    assert len(phones) >= 6


def test_homographs_follow_context():
    rec = en_lexicon.homographs()["record"]
    phones = english.g2p("I want to record the record.", "v2").phones
    joined = " ".join(phones)
    assert " ".join(rec.first) in joined and " ".join(rec.second) in joined
    assert joined.index(" ".join(rec.first)) < joined.index(" ".join(rec.second))
    read = en_lexicon.homographs()["read"]
    assert english.g2p("I have read it", "v2").phones[-5:-2] == read.second
    assert english.g2p("Please read it", "v2").phones[-5:-2] == read.first
    assert tag(["the", "complex", "problem"])[1] == "JJ"


def test_project_lexicon_parses_and_overrides_cmudict():
    lex = en_lexicon.lexicon()
    assert lex["chatgpt"] == ("CH", "AE1", "T", "JH", "IY1", "P", "IY1", "T", "IY1")
    assert lex["office"] == ("AO1", "F", "AH0", "S")  # CMUdict 0.7b reading restored
    assert "netflix" not in lex  # removed: upstream's dictionary lacks it
    for word in en_lexicon.SPELLED_ABBREVIATIONS:
        assert word not in lex
    patch = en_lexicon.parse_lexicon("foo F UW1\n-bar\n# c\n", "x.txt")
    assert patch.entries == {"foo": ("F", "UW1")} and patch.removals == frozenset({"bar"})
    with pytest.raises(ValueError, match=r"x\.txt:2"):
        en_lexicon.parse_lexicon("ok OW1\nlonely\n", "x.txt")


def test_neural_model_matches_g2p_en(monkeypatch):
    """Our numpy decoder reproduces g2p_en's predict() on the same bundled checkpoint."""
    import nltk

    calls = []
    monkeypatch.setattr(nltk, "download", lambda *a, **k: calls.append(a) or False)
    monkeypatch.delitem(sys.modules, "g2p_en", raising=False)
    monkeypatch.delitem(sys.modules, "g2p_en.g2p", raising=False)
    g2p_en = importlib.import_module("g2p_en.g2p")
    reference = object.__new__(g2p_en.G2p)
    reference.graphemes = list(en_neural.GRAPHEMES)
    reference.phonemes = list(en_neural.PHONEMES)
    reference.g2idx = {g: i for i, g in enumerate(reference.graphemes)}
    reference.idx2p = dict(enumerate(reference.phonemes))
    reference.load_variables()
    ours = en_neural.load()
    words = ["blorptastic", "zyxw", "quizzaciously", "a.m.", "don't", "x", "supercalifragilistic"]
    words += sorted(en_lexicon.lexicon())[::2500]
    for word in words:
        assert ours(word) == reference.predict(word), word


def test_english_never_imports_g2p_en_or_downloads(monkeypatch):
    import nltk

    def refuse(*args, **kwargs):
        raise AssertionError("the English frontend tried an NLTK download")

    monkeypatch.setattr(nltk, "download", refuse)
    monkeypatch.delitem(sys.modules, "g2p_en", raising=False)
    monkeypatch.delitem(sys.modules, "g2p_en.g2p", raising=False)
    english.g2p(english.normalize("The quizzaciously flimbered record is read.", "v2"), "v2")
    assert "g2p_en" not in sys.modules


def test_long_text_is_handled():
    text = "The quick brown fox jumps over 13 lazy dogs. " * 220  # ~10,000 characters
    phones = english.g2p(english.normalize(text, "v2"), "v2").phones
    assert len(phones) > 5000
