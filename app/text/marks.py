"""Cutting text after chosen punctuation marks: upstream api.py's ``cut_punc``.

Upstream's legacy API cut the text after each mark of ``cut_punc`` that was in its list of 13
and silently skipped the others; here every punctuation mark or symbol given is a cut (callers
refuse other characters with :func:`is_punctuation`), and a "." between two digits is a decimal
point, not a cut. The cuts become line breaks: :func:`app.text.split.split_text` with cut0 reads
each line as one segment.
"""

from __future__ import annotations

import re
import unicodedata

_LINE_RUNS = re.compile(r"\n{2,}")


def is_punctuation(ch: str) -> bool:
    """True for a punctuation mark or symbol (Unicode categories P* and S*), e.g. "，" "." "~"."""
    return unicodedata.category(ch)[0] in "PS"


def cut_at_marks(text: str, marks: str) -> str:
    """``text`` with a line break after each of ``marks``; runs of line breaks collapse to one.

    Empty ``marks``: the text's own lines only (upstream's default, no ``cut_punc``).
    """
    cuts = set(marks)
    out = []
    for i, ch in enumerate(text):
        out.append(ch)
        decimal_point = (
            ch == "." and 0 < i < len(text) - 1 and text[i - 1].isdigit() and text[i + 1].isdigit()
        )
        if ch in cuts and not decimal_point:
            out.append("\n")
    return _LINE_RUNS.sub("\n", "".join(out)).strip("\n")
