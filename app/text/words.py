"""Words of a read text with the phones each one gave: phone spans back to words or characters.

Word timestamps (:mod:`app.infer.alignment`) align the GPT's tokens to phones; these units turn a
phone span into text. Per language segment of a :class:`~app.text.frontend.TextResult`:

- Chinese and Cantonese: one unit per character of the normalised text (the reader's ``word2ph``);
- English: one unit per token (:func:`app.text.english.word_phone_counts`);
- other languages and ``{text|reading}`` overrides: the segment is one unit (their readers give no
  per-word phone counts).

Any segment whose counts would not add up to its phones falls back to one unit, so the units of a
text always cover its phones exactly, in order.
"""

from __future__ import annotations

from app.text.frontend import Segment, TextResult

# (text of a word or character, how many phones it was read as); zero-phone units are dropped.
WordUnits = tuple[tuple[str, int], ...]


def word_units(result: TextResult) -> WordUnits:
    """Units of ``result`` in phone order; their counts sum to ``len(result.phones)``."""
    units: list[tuple[str, int]] = []
    for segment in result.segments:
        units += _segment_units(segment)
    return tuple((text, n) for text, n in units if n > 0)


def _segment_units(segment: Segment) -> list[tuple[str, int]]:
    whole = [(segment.norm_text.strip() or segment.text.strip(), len(segment.phones))]
    if segment.override:
        return whole
    if segment.word2ph is not None and len(segment.word2ph) == len(segment.norm_text):
        units = list(zip(segment.norm_text, segment.word2ph, strict=True))
    elif segment.lang == "en":
        from app.text.english import word_phone_counts  # loads the tagger and lexicon on first use

        units = list(word_phone_counts(segment.norm_text))
    else:
        return whole
    return units if sum(n for _, n in units) == len(segment.phones) else whole


def is_word(text: str) -> bool:
    """True for a unit with a letter or a digit (punctuation units take time but are not words)."""
    return any(c.isalnum() for c in text)
