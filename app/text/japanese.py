"""Japanese: Open JTalk phones with prosody marks, as GPT-SoVITS v1/v2 produce them.

The text is cut at every character that is not Japanese (kana, kanji, ``々``, Latin letters,
digits and their full-width forms); each Japanese run goes through Open JTalk's front end and
its full-context labels are turned into phones plus prosody marks (the ESPnet / r9y9 scheme):

- ``[`` pitch rises after this mora, ``]`` pitch falls after it, ``#`` accent-phrase boundary
  (``#`` is not in GPT-SoVITS' symbol tables, so it ends up as ``UNK``, exactly as upstream);
- ``_`` a pause inside the run; the run's start ``^`` and end ``$``/``?`` marks are dropped.

The marks that cut the text are kept in between (full-width ones mapped to ASCII), spaces are
dropped. Unvoiced vowels (``A I U E O``) are written as ordinary vowels.

The dictionary is the Open JTalk 1.11 NAIST-jdic that Debian's ``open-jtalk-mecab-naist-jdic``
installs; it is passed to Open JTalk explicitly, so pyopenjtalk never downloads its own copy.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache
from pathlib import Path

from app.text.types import G2P

# Debian's open-jtalk-mecab-naist-jdic (the same 1.11 dictionary upstream downloads).
DEFAULT_DICT_DIR = Path("/var/lib/mecab/dic/open-jtalk/naist-jdic")

PUNCTUATION = "!?…,.-"
_JA_CLASS = r"A-Za-z\d\u3005\u3040-\u30ff\u4e00-\u9fff\uff11-\uff19\uff21-\uff3a\uff41-\uff5a\uff66-\uff9d"
_JA_START = re.compile(f"[{_JA_CLASS}]")  # a run worth sending to Open JTalk starts with one
_NON_JA = re.compile(f"[^{_JA_CLASS}]")  # every such character cuts the text
_REPEATED_PUNCT = re.compile("([" + re.escape(PUNCTUATION) + "])([" + re.escape(PUNCTUATION) + "])+")
# Marks between runs mapped to GPT-SoVITS punctuation phones.
_MARK_PHONES = {
    "：": ",",
    "；": ",",
    "，": ",",
    "。": ".",
    "！": "!",
    "？": "?",
    "\n": ".",
    "·": ",",
    "、": ",",
}
_VOWELS_AND_MORAIC = frozenset(["a", "i", "u", "e", "o", "A", "I", "U", "E", "O", "N", "cl"])
_UNVOICED_VOWELS = frozenset("AEIOU")

_P3 = re.compile(r"\-(.*?)\+")  # current phone
_A1 = re.compile(r"/A:([0-9\-]+)\+")  # mora position relative to the accent nucleus
_A2 = re.compile(r"\+(\d+)\+")  # mora position in the accent phrase, from the start
_A3 = re.compile(r"\+(\d+)/")  # mora position in the accent phrase, from the end
_F1 = re.compile(r"/F:(\d+)_")  # morae in the accent phrase
_E3 = re.compile(r"!(\d+)_")  # 1 when the utterance is a question
_MISSING = -50  # value for a feature the label lacks ("xx"), as ESPnet uses


class JapaneseDictionaryMissing(FileNotFoundError):
    """The Open JTalk dictionary folder does not exist."""


def normalize(text: str, version: str = "v2") -> str:
    """Upstream's Japanese normalisation: only runs of ``!?…,.-`` collapse to their first mark."""
    del version
    return _REPEATED_PUNCT.sub(r"\1", text)


def g2p(norm_text: str, version: str = "v2", *, dict_dir: Path = DEFAULT_DICT_DIR) -> G2P:
    """Phones and prosody marks of normalised Japanese text (same for v1 and v2 tables)."""
    del version
    jtalk = _open_jtalk(Path(dict_dir))
    text = norm_text.replace("％", "パーセント").lower()  # lower-case Latin: no effect on kana
    runs = _NON_JA.split(text)
    marks = _NON_JA.findall(text)
    phones: list[str] = []
    for i, run in enumerate(runs):
        if _JA_START.match(run):
            phones += _prosody_phones(jtalk, run)[1:-1]
        if i < len(marks) and marks[i] != " ":
            phones.append(marks[i])
    return G2P(phones=tuple(_MARK_PHONES.get(p, p) for p in phones))


class _JTalk:
    """One Open JTalk instance; its C state is not thread-safe, so calls are serialised."""

    def __init__(self, dict_dir: Path) -> None:
        from pyopenjtalk.openjtalk import OpenJTalk  # the extension class, not the downloading module API

        self._jtalk = OpenJTalk(dn_mecab=str(dict_dir).encode("utf-8"))
        self._lock = threading.Lock()

    def labels(self, text: str) -> list[str]:
        with self._lock:
            return list(self._jtalk.make_label(self._jtalk.run_frontend(text)))


@lru_cache(maxsize=4)
def _open_jtalk(dict_dir: Path) -> _JTalk:
    if not (dict_dir / "sys.dic").is_file():
        raise JapaneseDictionaryMissing(
            f"Open JTalk dictionary not found in {dict_dir} (no sys.dic). Install the Debian package "
            "open-jtalk-mecab-naist-jdic, or pass the folder of an Open JTalk 1.11 dictionary as dict_dir."
        )
    return _JTalk(dict_dir)


def _feature(pattern: re.Pattern[str], label: str) -> int:
    m = pattern.search(label)
    return int(m.group(1)) if m else _MISSING


def _prosody_phones(jtalk: _JTalk, text: str) -> list[str]:
    """Phones with ``^ [ ] # _ $ ?`` marks for one run (ESPnet's pyopenjtalk_g2p_prosody)."""
    labels = jtalk.labels(text)
    out: list[str] = []
    for n, label in enumerate(labels):
        p3 = _P3.search(label).group(1)
        if p3 in _UNVOICED_VOWELS:
            p3 = p3.lower()
        if p3 == "sil":
            if n == 0:
                out.append("^")
            elif n == len(labels) - 1:
                question = _feature(_E3, label)
                if question == 0:
                    out.append("$")
                elif question == 1:
                    out.append("?")
            continue
        if p3 == "pau":
            out.append("_")
            continue
        out.append(p3)

        a1, a2, a3 = _feature(_A1, label), _feature(_A2, label), _feature(_A3, label)
        f1 = _feature(_F1, label)
        a2_next = _feature(_A2, labels[n + 1])
        if a3 == 1 and a2_next == 1 and p3 in _VOWELS_AND_MORAIC:
            out.append("#")  # accent phrase ends after this mora
        elif a1 == 0 and a2_next == a2 + 1 and a2 != f1:
            out.append("]")  # pitch falls after the accent nucleus
        elif a2 == 1 and a2_next == 2:
            out.append("[")  # pitch rises after the first mora
    return out
