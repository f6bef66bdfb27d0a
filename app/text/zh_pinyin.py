"""Mandarin lexical resources, loaded on first use: jieba word segmentation and pypinyin readings.

Importing this module is cheap; jieba's dictionary (~1 s) and pypinyin's phrase dictionary load
on the first call and stay cached. jieba writes its prefix-dictionary cache to a private folder
under the system temp directory, never into the installed package.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

from app.text.symbols import ZH_FINALS

log = logging.getLogger(__name__)

JIEBA_CACHE_DIR = Path(tempfile.gettempdir()) / "sovits-studio-jieba"


@lru_cache(maxsize=1)
def _tokenizers() -> tuple[Any, Any]:
    with warnings.catch_warnings():
        # jieba 0.42 imports pkg_resources, which warns that it is deprecated; nothing to act on.
        warnings.simplefilter("ignore", UserWarning)
        import jieba
        import jieba.posseg

    # jieba logs "Building prefix dict ..." on stderr at DEBUG level; keep its warnings only.
    logging.getLogger("jieba").setLevel(logging.WARNING)
    JIEBA_CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tokenizer = jieba.Tokenizer()
    tokenizer.tmp_dir = str(JIEBA_CACHE_DIR)
    tokenizer.initialize()
    return tokenizer, jieba.posseg.POSTokenizer(tokenizer)


def words_with_pos(text: str) -> list[tuple[str, str]]:
    """jieba words of ``text`` with their part-of-speech tags (HMM on for unknown words)."""
    return [(pair.word, pair.flag) for pair in _tokenizers()[1].cut(text)]


def words(text: str) -> list[str]:
    """jieba's words of ``text`` (HMM on for unknown words); they concatenate to ``text``."""
    return list(_tokenizers()[0].cut(text))


def search_words(word: str) -> list[str]:
    """jieba's search-engine cut of ``word``: the word's dictionary sub-words, then the word."""
    return list(_tokenizers()[0].cut_for_search(word))


@lru_cache(maxsize=1)
def _pypinyin() -> tuple[Any, Any]:
    from pypinyin import Style, lazy_pinyin

    return lazy_pinyin, Style


@lru_cache(maxsize=8192)
def _readings(word: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    lazy_pinyin, style = _pypinyin()
    initials = lazy_pinyin(word, neutral_tone_with_five=True, style=style.INITIALS)
    finals = lazy_pinyin(word, neutral_tone_with_five=True, style=style.FINALS_TONE3)
    return tuple(initials), tuple(finals)


def initials_finals(word: str) -> tuple[list[str], list[str]]:
    """pypinyin initials and toned finals of ``word`` (phrase dictionary, strict, tone 5 = neutral).

    Non-Chinese runs come back unchanged in both lists (one item per run).
    """
    initials, finals = _readings(word)
    return list(initials), list(finals)


def finals_of(word: str) -> list[str]:
    """Toned finals of ``word`` (see :func:`initials_finals`)."""
    return list(_readings(word)[1])


# ---- pinyin -> phone symbols -------------------------------------------------------------------
_APICAL_RETROFLEX = {"zh", "ch", "sh", "r"}  # zhi chi shi ri: final "ir"
_APICAL_DENTAL = {"z", "c", "s"}  # zi ci si: final "i0"
# Finals spelled in full after a zero initial but contracted after a consonant (gui, liu, lun).
_CONTRACTED = {"uei": "ui", "iou": "iu", "uen": "un"}
_KNOWN_FINALS = frozenset(ZH_FINALS)


def _zero_initial(final: str) -> tuple[str, str]:
    """Initial and final symbols of a syllable without a consonant (yi, wu, yu, a, e, o ...)."""
    head, rest = final[0], final[1:]
    if head == "a":
        return "AA", final
    if head == "e":
        return "EE", final
    if head == "o":
        return "OO", final
    if head == "v":  # yu yuan yue yun
        return "y", final
    if head == "u":  # wu wa wai wan wang wei wen weng wo
        return "w", rest or "u"
    if head == "i":  # yi yin ying ya yao you yong yo, and the special ye -> E, yan -> En
        if rest in ("", "n", "ng"):
            return "y", final
        return "y", {"e": "E", "an": "En", "ou": "ou"}.get(rest, rest)
    return "EE", final


def syllable_symbols(initial: str, final: str) -> tuple[str, str] | None:
    """Initial and final phone symbols of one syllable, e.g. ("zh", "i") -> ("zh", "ir").

    ``final`` is pypinyin's strict final without tone. Returns None for syllables outside the
    Mandarin inventory (interjections such as hm, ng), which upstream cannot read either.
    """
    if not final:
        return None
    if not initial:
        pair = _zero_initial(final)
    elif final == "i" and initial in _APICAL_RETROFLEX:
        pair = initial, "ir"
    elif final == "i" and initial in _APICAL_DENTAL:
        pair = initial, "i0"
    else:
        pair = initial, _CONTRACTED.get(final, final)
    return pair if pair[1] in _KNOWN_FINALS else None
