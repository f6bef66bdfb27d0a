"""Cantonese (yue, v2 only): normalisation and Jyutping-based G2P, as upstream GPT-SoVITS v2.

Text goes through the Mandarin number/date normaliser (the characters are the same), then
ToJyutping gives one Jyutping syllable per character. Each syllable becomes two phones, a
"Y"-prefixed onset and a "Y"-prefixed toned rhyme (``jat1`` -> ``Yj``, ``Yat1``), with
upstream's splitting rule: the first entry of :data:`_ONSETS` the syllable starts with is the
onset, the rest (or the onset's last letter when nothing is left) the rhyme.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from typing import Any

from app.text.symbols import PUNCTUATION, UNK, YUE_PREFIX
from app.text.types import G2P
from app.text.zh_normalize import normalize_clauses

log = logging.getLogger(__name__)


def _words(text: str) -> tuple[str, ...]:
    """Whitespace-separated items of a compact table string."""
    return tuple(text.split())


_PUNCT = "".join(PUNCTUATION)
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
    # Quotes and brackets become an apostrophe, which the filter below then drops.
    **dict.fromkeys('“”"‘’（）()《》【】[]「」', "'"),
    "—": "-",
    "～": "-",
    "~": "-",
}
_PUNCT_RE = re.compile("|".join(re.escape(p) for p in _PUNCT_MAP))
_NOT_READ = re.compile(rf"[^\u4e00-\u9fa5{re.escape(_PUNCT)}]+")
_ALL_PUNCT = re.compile(rf"^[{re.escape(_PUNCT)}]+$")
_JYUTPING = re.compile(r"^([a-z]+[1-6]+[ ]?)+$")

# Onsets tried in this order (upstream's list, which also holds rhymes that start a syllable
# without a consonant: aa, ai, ong ...). "sp", "spl", "spn", "sil" are never produced.
_ONSETS = _words(
    "aa aai aak aap aat aau ai au ap at ak a p b e ts t dz d kw k gw g f h l m ng n s y w c z j "
    "ong on ou oi ok o uk ung sp spl spn sil"
)


def normalize(text: str, version: str = "v2") -> str:
    """Normalised Cantonese text: Chinese characters and the marks ! ? … , . - only."""
    out = []
    for clause in normalize_clauses(text):
        mapped = _PUNCT_RE.sub(lambda m: _PUNCT_MAP[m.group()], clause)
        out.append(_NOT_READ.sub("", mapped))
    return "".join(out)


@lru_cache(maxsize=1)
def _jyutping_reader() -> Any:
    import ToJyutping  # lazy: loads its dictionary

    return ToJyutping


def _syllables(text: str) -> list[str | None]:
    """One Jyutping string per character (None where ToJyutping has no reading)."""
    out: list[str | None] = []
    for chars, jyutping in _jyutping_reader().get_jyutping_list(text):
        if _ALL_PUNCT.match(chars):
            out += list(chars)
        elif jyutping is None or not _JYUTPING.search(jyutping):
            log.debug("no Jyutping reading for %r; using %s", chars, UNK)
            out += [None] * len(chars)
        else:
            out.append(jyutping)
    return out


def split_syllable(syllable: str) -> list[str] | None:
    """Onset and toned rhyme of one syllable, without the "Y" prefix: "jat1" -> ["j", "at1"]."""
    tone = syllable[-1] if syllable[-1].isdigit() else ""
    bare = syllable[:-1] if tone else syllable
    for onset in _ONSETS:
        if bare.startswith(onset):
            rhyme = bare[len(onset) :] or onset[-1]
            return [onset, rhyme + tone]
    return None


def g2p(norm_text: str, version: str = "v2") -> G2P:
    """Phones and ``word2ph`` of normalised Cantonese text (output of :func:`normalize`)."""
    phones: list[str] = []
    word2ph: list[int] = []
    for syllable in _syllables(norm_text):
        if syllable is not None and (syllable in PUNCTUATION or syllable == "_"):
            phones.append(syllable)
            word2ph.append(1)
            continue
        parts = split_syllable(syllable) if syllable else None
        if parts is None:
            phones.append(UNK)
            word2ph.append(1)
            continue
        phones += [p if p in PUNCTUATION else YUE_PREFIX + p for p in parts]
        word2ph.append(2)
    return G2P(tuple(phones), tuple(word2ph))
