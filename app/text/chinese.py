"""Mandarin: normalisation and grapheme-to-phoneme, as upstream GPT-SoVITS v1 (``chinese.py``)
and v2 (``chinese2.py``) do it.

``normalize`` spells out numbers and symbols (see :mod:`app.text.zh_normalize`), maps Chinese
punctuation to the six phone punctuation marks and drops every other character that is not a
Chinese character. ``g2p`` segments with jieba, reads with pypinyin's phrase dictionary (or the
G2PW model, see :mod:`app.text.g2pw`), applies tone sandhi and, from v2 on, erhua tones, and
returns initial + toned final per character with ``word2ph`` (phones per character).
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from pathlib import Path

import app.text.zh_pinyin as zh_pinyin
from app.text.symbols import PUNCTUATION, UNK, check_version
from app.text.types import G2P
from app.text.zh_lexicon import ERHUA_WORDS, NOT_ERHUA_WORDS
from app.text.zh_normalize import normalize_clauses
from app.text.zh_sandhi import apply_sandhi, merge_words

log = logging.getLogger(__name__)

_PUNCT = "".join(PUNCTUATION)
# Chinese and ASCII punctuation -> the phone punctuation marks.
_PUNCT_MAP = {
    "：": ",",
    "；": ",",
    "，": ",",
    "。": ".",
    "！": "!",
    "？": "?",
    "\n": ".",
    "·": ",",
    "、": ",",
    "...": "…",
    "$": ".",
    "/": ",",
    "—": "-",
    "~": "…",
    "～": "…",
}
_PUNCT_RE = re.compile("|".join(re.escape(p) for p in _PUNCT_MAP))
_NOT_READ = re.compile(rf"[^\u4e00-\u9fa5{re.escape(_PUNCT)}]+")
_REPEATED_PUNCT = re.compile(rf"([{re.escape(_PUNCT)}])([{re.escape(_PUNCT)}])+")
_AFTER_PUNCT = re.compile(rf"(?<=[{re.escape(_PUNCT)}])\s*")
_LATIN = re.compile("[a-zA-Z]+")


def map_punctuation(text: str) -> str:
    """Map punctuation to phone marks and drop what the reader cannot read (Latin, digits left)."""
    # 嗯 (n) and 呣 (m) have no initial/final reading: read them as 恩 and 母.
    text = text.replace("嗯", "恩").replace("呣", "母")
    return _NOT_READ.sub("", _PUNCT_RE.sub(lambda m: _PUNCT_MAP[m.group()], text))


def normalize(text: str, version: str = "v2") -> str:
    """Normalised Mandarin text: Chinese characters and the marks ! ? … , . - only."""
    check_version(version)
    out = "".join(map_punctuation(clause) for clause in normalize_clauses(text))
    # Repeated marks collapse to the first; a run of marks would leak the reference audio.
    return _REPEATED_PUNCT.sub(r"\1", out)


def _erhua(initials: list[str], finals: list[str], word: str, pos: str) -> tuple[list[str], list[str]]:
    """v2 erhua: a suffix 儿 takes the tone of the syllable before it (花儿 stays a full syllable)."""
    if finals and word[len(finals) - 1 : len(finals)] == "儿" and finals[-1] == "er1":
        finals[-1] = "er2"
    if word not in ERHUA_WORDS and (word in NOT_ERHUA_WORDS or pos in {"a", "j", "nr"}):
        return initials, finals
    if len(finals) != len(word):
        return initials, finals
    if (
        len(finals) >= 2
        and word[-1] == "儿"
        and finals[-1] in {"er2", "er5"}
        and word[-2:] not in NOT_ERHUA_WORDS
    ):
        finals[-1] = "er" + finals[-2][-1]
    return initials, finals


def _syllable_phones(initial: str, final: str) -> list[str]:
    """Phones of one character: a punctuation mark, or initial + toned final."""
    if initial == final:
        if initial in PUNCTUATION:
            return [initial]
        log.debug("no Mandarin reading for %r; using %s", initial, UNK)
        return [UNK]
    tone = final[-1:]
    pair = zh_pinyin.syllable_symbols(initial, final[:-1]) if tone in "12345" and tone else None
    if pair is None:
        log.debug("syllable %r+%r is not in the Mandarin inventory; using %s", initial, final, UNK)
        return [UNK]
    return [pair[0], pair[1] + tone]


def word_readings(
    clause: str, version: str, g2pw_dir: Path | None = None
) -> list[tuple[str, list[str], list[str]]]:
    """(word, initials, toned finals) for each word of one clause, sandhi and erhua applied."""
    words = merge_words(zh_pinyin.words_with_pos(clause))
    predicted = None
    if g2pw_dir is not None:
        import app.text.g2pw as g2pw  # lazy: onnxruntime, numpy

        predicted = g2pw.predict(clause, g2pw_dir)
    out = []
    start = 0
    for word, pos in words:
        end = start + len(word)
        if pos == "eng":
            start = end
            continue
        if predicted is not None:
            initials, finals = g2pw.word_initials_finals(word, predicted[start:end])
        else:
            initials, finals = zh_pinyin.initials_finals(word)
        start = end
        finals = apply_sandhi(word, pos, finals)
        if version != "v1":
            initials, finals = _erhua(initials, finals, word, pos)
        out.append((word, initials, finals))
    return out


@lru_cache(maxsize=8)
def _log_reader(g2pw_dir: Path | None) -> None:
    # Once per setting, so a log shows which reader decided the polyphones.
    if g2pw_dir is None:
        log.info("Mandarin polyphones: pypinyin phrase dictionary")
    else:
        log.info("Mandarin polyphones: G2PW model in %s", g2pw_dir)


def g2p(norm_text: str, version: str = "v2", g2pw_dir: Path | None = None) -> G2P:
    """Phones and ``word2ph`` of normalised Mandarin text (output of :func:`normalize`).

    ``g2pw_dir``: folder of the G2PW ONNX model; None reads polyphones with pypinyin's phrase
    dictionary (what upstream does when G2PW is off).
    """
    check_version(version)
    _log_reader(g2pw_dir)
    phones: list[str] = []
    word2ph: list[int] = []
    clauses = [c for c in _AFTER_PUNCT.split(norm_text) if c.strip() != ""]
    for clause in clauses:
        for _word, initials, finals in word_readings(_LATIN.sub("", clause), version, g2pw_dir):
            for initial, final in zip(initials, finals, strict=True):
                syllable = _syllable_phones(initial, final)
                phones += syllable
                word2ph.append(len(syllable))
    return G2P(tuple(phones), tuple(word2ph))
