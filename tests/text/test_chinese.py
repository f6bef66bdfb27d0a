"""Mandarin G2P: tone sandhi, erhua (v2 only), word2ph, resources loaded lazily and cached outside the package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.text import chinese, zh_pinyin
from app.text.cleaner import clean_text

REPO = Path(__file__).resolve().parents[2]


def phones(text: str, version: str = "v2") -> str:
    return " ".join(chinese.g2p(chinese.normalize(text, version), version).phones)


# Readings recorded from upstream GPT-SoVITS (G2PW off) for each rule.
@pytest.mark.parametrize(
    ("text", "reading"),
    [
        ("不怕", "b u2 p a4"),  # 不 before a 4th tone
        ("看不懂", "k an4 b u5 d ong3"),  # X不X
        ("一天", "y i4 t ian1"),  # 一 before non-4th tone
        ("一段", "y i2 d uan4"),  # 一 before 4th tone
        ("第一", "d i4 y i1"),  # ordinal
        ("看一看", "k an4 y i5 k an4"),  # reduplication
        ("一零一", "y i1 l ing2 y i1"),  # digit sequence
        ("你好", "n i2 h ao3"),  # 3-3 -> 2-3
        ("展览馆", "zh an2 l an2 g uan3"),  # 3-3-3, 2+1
        ("纸老虎", "zh ir3 l ao2 h u3"),  # 3-3-3, 1+2
        ("好喜欢", "h ao2 x i3 h uan5"),
        ("所有人", "s uo2 y ou3 r en2"),
        ("东西", "d ong1 x i5"),  # neutral-tone word list
        ("桌子", "zh uo1 z i05"),
        ("我们", "w o3 m en5"),
        ("走了", "z ou3 l e5"),
        ("奶奶", "n ai3 n ai5"),
        ("五个", "w u3 g e5"),
        ("上来", "sh ang4 l ai5"),
        ("嗯", "EE en1"),  # read as 恩
    ],
)
def test_tone_sandhi(text: str, reading: str) -> None:
    assert phones(text) == reading


def test_erhua_tone_is_v2_only() -> None:
    assert phones("这儿", "v2") == "zh e4 EE er4"
    assert phones("这儿", "v1") == "zh e4 EE er2"
    assert phones("一会儿", "v2") == "y i2 h ui4 EE er4"
    assert phones("一会儿", "v1") == "y i2 h ui4 EE er5"
    assert phones("花儿", "v2") == "h ua1 EE er2"  # a full syllable, not erhua


def test_word2ph_counts_phones_per_character() -> None:
    norm = chinese.normalize("你好，欢迎！", "v2")
    g = chinese.g2p(norm, "v2")
    assert norm == "你好,欢迎!"
    assert g.word2ph == (2, 2, 1, 2, 2, 1)
    assert sum(g.word2ph) == len(g.phones)


def test_latin_letters_are_not_read() -> None:
    assert chinese.g2p("OK好", "v2").phones == ("h", "ao3")


def test_syllables_outside_the_inventory_become_unk() -> None:
    assert chinese._syllable_phones("", "hm5") == ["UNK"]
    assert chinese._syllable_phones("x", "x") == ["UNK"]
    assert chinese._syllable_phones(",", ",") == [","]


def test_pinyin_to_symbols_rules() -> None:
    assert zh_pinyin.syllable_symbols("zh", "i") == ("zh", "ir")
    assert zh_pinyin.syllable_symbols("s", "i") == ("s", "i0")
    assert zh_pinyin.syllable_symbols("g", "uei") == ("g", "ui")
    assert zh_pinyin.syllable_symbols("", "ian") == ("y", "En")
    assert zh_pinyin.syllable_symbols("", "ie") == ("y", "E")
    assert zh_pinyin.syllable_symbols("", "uo") == ("w", "o")
    assert zh_pinyin.syllable_symbols("", "van") == ("y", "van")
    assert zh_pinyin.syllable_symbols("", "er") == ("EE", "er")
    assert zh_pinyin.syllable_symbols("", "ng") is None


def test_pause_marks_become_sp2_sp3() -> None:
    r = clean_text("你好￥世界", "zh", "v2")
    assert r.phones == ("n", "i2", "h", "ao3", "SP2", "sh", "ir4", "j", "ie4")
    assert clean_text("好^吧", "zh", "v1").phones == ("h", "ao3", "SP3", "b", "a5")
    assert r.word2ph == (2, 2, 1, 2, 2)


def test_import_is_cheap_and_jieba_cache_is_outside_the_package() -> None:
    code = (
        "import sys, app.text, app.text.chinese, app.text.frontend\n"
        "heavy = [m for m in ('jieba', 'pypinyin', 'opencc', 'ToJyutping', 'torch', 'transformers') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    phones("你好")  # loads jieba here
    assert zh_pinyin.JIEBA_CACHE_DIR.is_dir()
    assert REPO not in zh_pinyin.JIEBA_CACHE_DIR.parents
    assert not list((REPO / "app").rglob("jieba*.cache"))


def test_log_says_which_polyphone_reader(caplog: pytest.LogCaptureFixture) -> None:
    chinese._log_reader.cache_clear()
    with caplog.at_level("INFO", logger="app.text.chinese"):
        chinese.g2p("好", "v2")
    assert "Mandarin polyphones: pypinyin phrase dictionary" in caplog.text
