"""Cutting long text into the sentences synthesised one by one, upstream's six methods.

``SplitMethod`` names upstream's methods (its ids cut0..cut5 are the enum values, so requests
written for upstream's API work unchanged):

- ``NONE`` (cut0): no cut (text made of punctuation only becomes empty);
- ``FOUR_SENTENCES`` (cut1, the UI default): four clauses per piece;
- ``FIFTY_CHARS`` (cut2): clauses gathered until a piece passes 50 characters;
- ``ZH_PERIOD`` (cut3): at Chinese full stops 。;
- ``EN_PERIOD`` (cut4): at English full stops . (not inside numbers);
- ``PUNCTUATION`` (cut5, the API default): after every punctuation mark (not decimal points).

:func:`split_text` is the whole of upstream's pre-segmentation for synthesis (clause prefix,
method, merging of short pieces, final punctuation, the 510-character BERT limit);
:func:`preview` shows only the method's cut, as upstream's preview tool does.

Beyond upstream: a clause (text between clause marks) too long to be spoken in one go, such as
a passage without punctuation, a 2000-digit number or a 500-letter word, is cut by length at the
best break before the limit (a space, another mark, a change of script, a word boundary, else
anywhere) and each cut becomes a piece of its own. Upstream's cut at 510 characters only knew
clause marks: it put an empty piece first and kept the whole clause.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from enum import Enum

from app.messages import Message
from app.text.characters import normalize_characters


class SplitMethod(str, Enum):
    """Sentence-splitting methods; the values are upstream's ids."""

    NONE = "cut0"
    FOUR_SENTENCES = "cut1"
    FIFTY_CHARS = "cut2"
    ZH_PERIOD = "cut3"
    EN_PERIOD = "cut4"
    PUNCTUATION = "cut5"

    @classmethod
    def parse(cls, value: str | SplitMethod) -> SplitMethod:
        """Accept an enum member, its value ("cut1") or its name ("four_sentences")."""
        if isinstance(value, SplitMethod):
            return value
        key = str(value).strip()
        for member in cls:
            if key == member.value or key.upper() == member.name:
                return member
        names = ", ".join(f"{m.value} ({m.name.lower()})" for m in cls)
        template = "unknown text split method {value!r}: use one of {names}"
        raise ValueError(Message("text.err.split", template, value=value, names=names))


# Marks that end a clause for cut1/cut2 and for the first-clause test.
CLAUSE_MARKS = frozenset("，。？！,.?!~:：—…")
# Marks after which cut5 cuts.
_CUT5_MARKS = frozenset(",.;?!、，。？！;：…")
# Characters that make a piece "punctuation only" (dropped by every method).
_BLANK_PIECE = frozenset("!?…,.- ")
# Consecutive phone punctuation collapses to its first mark before splitting.
_REPEATED_PUNCT = re.compile(r"([!?…,.\-])([!?…,.\-])+")
MAX_PIECE_CHARS = 510  # BERT's 512 positions minus [CLS] and [SEP]
MIN_PIECE_CHARS = 5  # shorter pieces are merged into their neighbour
# A clause longer than this is cut by length. Measured in thirds of a syllable: a Latin letter
# counts 1 (~3 letters per English syllable), any other letter or digit 3 (a Chinese character,
# kana, Hangul syllable or digit is about one syllable). 300 = ~100 syllables, ~20-25 s of speech:
# well inside the 54 s a segment's GPT decode may last (25 tokens/s * max_sec 54 of the released
# models), and longer than the clauses of ordinary text, which are read as upstream reads them.
MAX_CLAUSE_UNITS = 300
_LATIN_END = "\u0250"  # Basic Latin to Latin Extended-B end before the IPA block


def _is_blank(piece: str) -> bool:
    return set(piece).issubset(_BLANK_PIECE)


def _clauses(text: str) -> list[str]:
    """Cut after every clause mark, keeping the mark ("……" and "——" count as one)."""
    text = text.replace("……", "。").replace("——", "，")
    if text[-1] not in CLAUSE_MARKS:
        text += "。"
    out, start = [], 0
    for i, ch in enumerate(text):
        if ch in CLAUSE_MARKS:
            out.append(text[start : i + 1])
            start = i + 1
    return out


def _cut0(text: str) -> list[str]:
    return [] if _is_blank(text) else [text]


def _cut1(text: str) -> list[str]:
    text = text.strip("\n")
    clauses = _clauses(text)
    if len(clauses) > 4:
        pieces = ["".join(clauses[i : i + 4]) for i in range(0, len(clauses), 4)]
        # Upstream's slicing folds the last group into the one before it (5..8 clauses: one piece).
        pieces[-2:] = ["".join(pieces[-2:])]
    else:
        pieces = [text]
    return [p for p in pieces if not _is_blank(p)]


def _cut2(text: str) -> list[str]:
    text = text.strip("\n")
    clauses = _clauses(text)
    if len(clauses) < 2:
        return [text]
    pieces, current = [], ""
    for clause in clauses:
        current += clause
        if len(current) > 50:
            pieces.append(current)
            current = ""
    if current:
        pieces.append(current)
    if len(pieces) > 1 and len(pieces[-1]) < 50:  # a short tail joins the piece before
        pieces[-2:] = [pieces[-2] + pieces[-1]]
    return [p for p in pieces if not _is_blank(p)]


def _cut3(text: str) -> list[str]:
    pieces = text.strip("\n").strip("。").split("。")
    return [p for p in pieces if not _is_blank(p)]


def _cut4(text: str) -> list[str]:
    pieces = re.split(r"(?<!\d)\.(?!\d)", text.strip("\n").strip("."))
    return [p for p in pieces if not _is_blank(p)]


def _cut5(text: str) -> list[str]:
    text = text.strip("\n")
    pieces, current = [], []
    for i, ch in enumerate(text):
        current.append(ch)
        decimal_point = (
            ch == "." and 0 < i < len(text) - 1 and text[i - 1].isdigit() and text[i + 1].isdigit()
        )
        if ch in _CUT5_MARKS and not decimal_point:
            pieces.append("".join(current))
            current = []
    if current:
        pieces.append("".join(current))
    return [p for p in pieces if not set(p).issubset(_CUT5_MARKS)]


_METHODS: dict[SplitMethod, Callable[[str], list[str]]] = {
    SplitMethod.NONE: _cut0,
    SplitMethod.FOUR_SENTENCES: _cut1,
    SplitMethod.FIFTY_CHARS: _cut2,
    SplitMethod.ZH_PERIOD: _cut3,
    SplitMethod.EN_PERIOD: _cut4,
    SplitMethod.PUNCTUATION: _cut5,
}


def cut(text: str, method: str | SplitMethod) -> list[str]:
    """The pieces one method makes of ``text`` (no pre- or post-processing)."""
    if not text.strip("\n"):
        return []
    return _METHODS[SplitMethod.parse(method)](text)


def preview(text: str, method: str | SplitMethod) -> str:
    """What upstream's split preview shows: the method's pieces, one per line."""
    text = normalize_characters(text)
    if not text.strip():
        return ""
    return "\n".join(cut(text, method))


def _merge_short(pieces: list[str], threshold: int) -> list[str]:
    if len(pieces) < 2:
        return pieces
    out, current = [], ""
    for piece in pieces:
        current += piece
        if len(current) >= threshold:
            out.append(current)
            current = ""
    if current:
        if out:
            out[-1] += current
        else:
            out.append(current)
    return out


def _units(ch: str) -> int:
    """Length of ``ch`` in thirds of a syllable (see :data:`MAX_CLAUSE_UNITS`)."""
    if ch.isalpha() and ch < _LATIN_END:
        return 1
    return 3 if ch.isalnum() else 0


def spoken_units(text: str) -> int:
    """Estimated spoken length of ``text`` in thirds of a syllable (see :data:`MAX_CLAUSE_UNITS`)."""
    return sum(_units(ch) for ch in text)


def _script(ch: str) -> str:
    """A coarse class of ``ch`` whose changes are places to cut a long clause."""
    if ch.isdigit():
        return "digit"
    if ch.isalpha():
        return "latin" if ch < _LATIN_END else unicodedata.name(ch, "?").split(" ")[0]
    return "other"


def _break(text: str, start: int, limit: int) -> int:
    """Where to end the chunk ``text[start:]`` that must end at ``limit`` or before.

    The latest break in the second half of the span, preferring a space, then any mark, then a
    change of script, then a word boundary (jieba), else ``limit`` itself.
    """
    low = start + max(1, (limit - start) // 2)
    spans = range(limit, low - 1, -1)
    for ok in (
        lambda p: text[p - 1].isspace() or text[p].isspace(),
        lambda p: not (text[p - 1].isalnum() and text[p].isalnum()),
        lambda p: _script(text[p - 1]) != _script(text[p]),
    ):
        for p in spans:
            if ok(p):
                return p
    from app.text.zh_pinyin import words  # jieba: loaded only for a long clause without breaks

    best, p = limit, start
    for word in words(text[start : limit + 1]):  # one past the limit: is ``limit`` a word's end?
        p += len(word)
        if p > limit:
            break
        if p >= low:
            best = p
    return best


def cut_by_length(
    body: str, max_chars: int = MAX_PIECE_CHARS - 1, max_units: int = MAX_CLAUSE_UNITS
) -> list[str]:
    """``body`` (text without clause marks) cut at its best breaks so no chunk passes ``max_units``
    (see :data:`MAX_CLAUSE_UNITS`) or ``max_chars``; the last chunk is what is left."""
    out, start, units = [], 0, 0
    for i, ch in enumerate(body):
        units += _units(ch)
        if units > max_units or i - start >= max_chars:
            end = _break(body, start, i)
            out.append(body[start:end])
            start, units = end, spoken_units(body[end : i + 1])
    out.append(body[start:])
    return out


_CLAUSE = re.compile("[^" + re.escape("".join(sorted(CLAUSE_MARKS))) + "]*.?", re.DOTALL)


def _bounded(piece: str, stop: str, max_len: int = MAX_PIECE_CHARS) -> list[str]:
    """``piece`` as pieces of at most ``max_len`` characters without a clause too long to read.

    Clauses are grouped into pieces of at most ``max_len`` (upstream's cut for BERT); a clause
    over :data:`MAX_CLAUSE_UNITS` or ``max_len`` is cut by length, each cut a piece ending in
    ``stop`` (the text between is kept; whitespace at a cut is dropped).
    """
    out: list[str] = []
    current = ""
    for clause in _CLAUSE.findall(piece):
        body, mark = (clause[:-1], clause[-1]) if clause and clause[-1] in CLAUSE_MARKS else (clause, "")
        if len(body) >= max_len or spoken_units(body) > MAX_CLAUSE_UNITS:
            *heads, clause = cut_by_length(body, max_len - 1)
            clause += mark
            if current:
                out.append(current)
                current = ""
            out += [h.strip() + stop for h in heads if h.strip()]
        if current and len(current + clause) > max_len:
            out.append(current)
            current = ""
        current += clause
    if current.strip():
        out.append(current)
    return out


def split_text(
    text: str, method: str | SplitMethod = SplitMethod.FOUR_SENTENCES, language: str = "zh"
) -> list[str]:
    """Sentences to synthesise one by one, as upstream's TTS pre-segmentation makes them.

    ``language`` is the text's language mode; "en" uses "." instead of "。" where a full stop
    is added. Returns [] for text with nothing to read.
    """
    method = SplitMethod.parse(method)
    stop = "." if language in ("en", "all_en") else "。"
    text = _REPEATED_PUNCT.sub(r"\1", normalize_characters(text)).strip("\n")
    if not text:
        return []
    first_clause = re.split("[" + re.escape("".join(sorted(CLAUSE_MARKS))) + "]", text)[0].strip()
    if text[0] not in CLAUSE_MARKS and len(first_clause) < 4:
        text = stop + text  # a very short first clause is read badly without a lead-in
    pieces = cut(text, method)
    pieces = [p for p in "\n".join(pieces).split("\n") if p not in ("", " ")]
    out = []
    for piece in _merge_short(pieces, MIN_PIECE_CHARS):
        if not piece.strip() or not re.sub(r"\W+", "", piece):
            continue  # blank or symbols only
        if piece[-1] not in CLAUSE_MARKS:
            piece += stop
        out.extend(_bounded(piece, stop))
    return out
