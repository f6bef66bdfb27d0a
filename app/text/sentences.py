"""Sentences cut from text that arrives in pieces (an LLM's tokens), as soon as each one is complete.

:class:`SentenceCutter` takes fragments of any size (a character, a word, a paragraph) and hands
back each sentence once its end is certain, so speech can start while the rest is still written:

- a sentence ends after a mark of :data:`SENTENCE_ENDS` and the closing quotes or brackets that
  follow it. CJK marks (``。！？；…``) and line breaks end it wherever they stand; ASCII marks
  (``. ! ? ;``) only before white space, so ``3.14``, ``e.g.x`` or ``a?b`` stay whole. The end is
  decided when the next character arrives (is ``3.`` followed by ``14`` or by a space?), or by
  :meth:`SentenceCutter.flush`;
- a sentence shorter than :data:`MIN_SENTENCE_UNITS` ("Hi.", "OK!") is joined to the next one: a
  piece of one syllable is read badly, as upstream's merging of short pieces knows;
- text that grows past :data:`MAX_WAIT_UNITS` (~10 s of speech) without a sentence end is cut
  after its last clause mark (a comma, a colon, ``、``), or without any mark by length at its best
  break (:func:`app.text.split.cut_by_length`: a space, a change of script, a word boundary), so
  a run-on text never holds speech back for long.

Known limit: an abbreviation before a space ("e.g. this") ends a sentence; the next one is read
as a sentence of its own, which costs a pause, not a word.

The marks are those of :mod:`app.text.split` (the pipeline cuts each sentence further with the
request's split method); lengths are spoken units (:func:`app.text.split.spoken_units`: thirds of
a syllable), so CJK and Latin text wait for the same amount of speech.
"""

from __future__ import annotations

from app.text.split import CLAUSE_MARKS, MAX_PIECE_CHARS, cut_by_length, spoken_units

# Marks that end a sentence. Full-width and CJK marks end it wherever they stand; the ASCII ones
# only before white space (decimal points, abbreviations inside words, URLs).
SENTENCE_ENDS = frozenset(".!?;。！？；｡…\n")
_ENDS_ANYWHERE = frozenset("。！？；｡…\n")
# Closing quotes and brackets that belong to the sentence before them ("Go!" she said).
_CLOSERS = frozenset("\"'”’」』）)]】》〉»")
# Marks after which a long clause may be cut (split's clause marks plus the enumeration comma).
_CLAUSE_ENDS = (CLAUSE_MARKS | {"、", ";", "；"}) - {"—", "~"}
# Shorter sentences wait for the next one: two syllables (six thirds), e.g. "你好。" but not "Hi.".
MIN_SENTENCE_UNITS = 6
# Text past ~50 syllables (~10 s of speech; split.MAX_CLAUSE_UNITS is twice this) without a
# sentence end is cut: at its last clause mark, else by length.
MAX_WAIT_UNITS = 150


def _sentence_end(text: str, i: int, final: bool) -> int | None:
    """Where the sentence ended by ``text[i]`` stops (after its closers), -1 when not known yet,
    None when ``text[i]`` ends no sentence."""
    mark = text[i]
    if mark not in SENTENCE_ENDS:
        return None
    j = i + 1
    while j < len(text) and ((text[j] in SENTENCE_ENDS and text[j] != "\n") or text[j] in _CLOSERS):
        j += 1  # "?!", "...", "。」"
    if j == len(text):
        return j if final else -1
    if mark in _ENDS_ANYWHERE or text[j].isspace():
        return j
    return None


def _speakable(piece: str) -> bool:
    return spoken_units(piece) > 0


class SentenceCutter:
    """Fragments in, complete sentences out (see the module docstring).

    ``feed`` returns the sentences a fragment completed; ``flush`` the rest, whatever its length;
    ``clear`` drops what is pending. Sentences come back stripped of surrounding white space;
    pieces without a letter or digit ("...", an emoji) are dropped.
    """

    def __init__(self, max_units: int = MAX_WAIT_UNITS) -> None:
        # Spoken units of text held without a sentence end before it is cut.
        self.max_units = max_units
        self._pending = ""

    @property
    def pending(self) -> str:
        """Text received and not yet handed back."""
        return self._pending

    def feed(self, fragment: str) -> list[str]:
        """Add ``fragment``; the sentences it completed, in order."""
        self._pending += fragment
        return self._take(final=False)

    def flush(self) -> list[str]:
        """Everything pending, as sentences (the last one ends where the text ends)."""
        return self._take(final=True)

    def clear(self) -> str:
        """Drop the pending text; returns it."""
        dropped, self._pending = self._pending, ""
        return dropped

    def _take(self, final: bool) -> list[str]:
        text = self._pending
        out: list[str] = []
        start = i = 0
        while i < len(text):
            end = _sentence_end(text, i, final)
            if end is None:
                i += 1
                continue
            if end < 0:
                break
            if spoken_units(text[start:end]) >= MIN_SENTENCE_UNITS:
                out.append(text[start:end])
                start = end
            i = end
        rest = text[start:]
        if final:
            if _speakable(rest):
                if out and spoken_units(rest) < MIN_SENTENCE_UNITS:
                    out[-1] += rest  # a short tail joins the sentence before
                else:
                    out.append(rest)
            rest = ""
        else:
            heads, rest = self._cut_long(rest)
            out += heads
        self._pending = rest
        return [s.strip() for s in out if _speakable(s)]

    def _cut_long(self, rest: str) -> tuple[list[str], str]:
        """Pieces cut off a clause too long to wait for its sentence end, and what stays pending."""
        heads: list[str] = []
        while spoken_units(rest) > self.max_units:
            cut = self._last_clause_end(rest)
            if cut is None:
                break
            heads.append(rest[:cut])
            rest = rest[cut:]
        if spoken_units(rest) > self.max_units or len(rest) >= MAX_PIECE_CHARS:
            *more, rest = cut_by_length(rest, MAX_PIECE_CHARS - 1, self.max_units)
            heads += more
        return heads, rest

    def _last_clause_end(self, text: str) -> int | None:
        """The index after the last clause mark of ``text`` that leaves a sentence long enough,
        only where the next character is known (an ASCII mark must be followed by white space)."""
        for i in range(len(text) - 2, -1, -1):
            mark = text[i]
            if mark not in _CLAUSE_ENDS or not (mark > "\x7f" or text[i + 1].isspace()):
                continue
            if spoken_units(text[: i + 1]) < MIN_SENTENCE_UNITS:
                return None
            return i + 1
        return None
