"""Which letters the text frontend can read, to refuse text it would silently drop.

The frontend reads Chinese, English, Japanese, Korean and Cantonese; letters of other scripts
(Cyrillic, Arabic, Thai, ...) come out as nothing, so a Russian sentence would be "read" as a
pause. The pipeline refuses a segment with no readable letter and notes the skipped characters.
"""

from __future__ import annotations

import unicodedata

# Unicode character-name prefixes of the scripts the frontend reads.
READABLE_SCRIPTS = ("LATIN", "CJK", "HIRAGANA", "KATAKANA", "HANGUL", "FULLWIDTH LATIN", "HALFWIDTH KATAKANA")
LANGUAGES = "Chinese, English, Japanese, Korean and Cantonese"
# Phones that carry no speech: punctuation and pauses.
SILENT_PHONES = frozenset({"!", "?", "…", ",", ".", "-", "SP", "SP2", "SP3", "_", "UNK"})


def unreadable_letters(text: str) -> str:
    """The distinct letters of ``text`` outside the readable scripts, in order of appearance."""
    seen: dict[str, None] = {}
    for ch in text:
        if ch.isalpha() and not unicodedata.name(ch, "").startswith(READABLE_SCRIPTS):
            seen.setdefault(ch, None)
    return "".join(seen)


def speaks(phones: tuple[str, ...]) -> bool:
    """True when ``phones`` hold at least one phone that is not punctuation or a pause."""
    return any(p not in SILENT_PHONES for p in phones)
