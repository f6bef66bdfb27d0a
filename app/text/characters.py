"""Characters the readers never see: control and format characters, full-width Latin and digits.

:func:`normalize_characters` runs before splitting and before language segmentation, so every
later step works on characters a reader can say something about:

- control characters (``\\x00``-``\\x1f``, ``\\x7f``-``\\x9f``) are removed, except the line
  breaks and tabs upstream's rules already handle; the other whitespace controls (vertical tab,
  form feed, the file/group/record/unit separators, NEL) and the Unicode line and paragraph
  separators become line breaks, where the text splitter cuts;
- format characters (zero-width space/joiners, BOM, soft hyphen, bidi marks) and lone surrogates
  are removed: they are invisible, and left in they cut a word into two language runs;
- full-width Latin letters and digits (``ＡＢＣ１２３``) become ASCII (their NFKC form), so the
  language segmenter sees English and numbers; the Chinese normaliser converted them only after
  segmentation, by which time the letters had been given to the Chinese reader, which drops
  them. Other full-width forms (``，！？：～``) keep their width: they are marks upstream's rules
  tell apart from the ASCII ones.
"""

from __future__ import annotations

import re
import unicodedata

# Whitespace controls and Unicode separators that end a line (str.splitlines' set, minus \r\n).
_LINE_BREAKS = "\x0b\x0c\x1c\x1d\x1e\x1f\x85\u2028\u2029"
# Kept as they are: upstream's splitter and normalisers handle them.
_KEPT_CONTROLS = frozenset("\t\n\r")
# Unicode categories removed: control, format, surrogate.
_REMOVED_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})
# Full-width digits, upper- and lower-case Latin letters (U+FF10-FF19, U+FF21-FF3A, U+FF41-FF5A).
_FULLWIDTH_ALNUM = re.compile("[\uff10-\uff19\uff21-\uff3a\uff41-\uff5a]")


def _removed(ch: str) -> bool:
    return ch not in _KEPT_CONTROLS and unicodedata.category(ch) in _REMOVED_CATEGORIES


def normalize_characters(text: str) -> str:
    """``text`` without control/format characters, line separators as "\\n", full-width alnum as ASCII."""
    if text.isascii() and text.isprintable():
        return text  # the common case: nothing to do
    text = text.translate({ord(c): "\n" for c in _LINE_BREAKS})
    text = "".join(c for c in text if not _removed(c))
    return _FULLWIDTH_ALNUM.sub(lambda m: unicodedata.normalize("NFKC", m.group()), text)
