"""Which letters the text frontend can read, to skip and name text it would silently drop.

The frontend reads Chinese, English, Japanese, Korean and Cantonese; letters of other scripts
(Cyrillic, Arabic, Thai, ...) come out as nothing, so a Russian sentence would be "read" as a
pause. A language mode reads only its own languages (and English): kana in an "all_zh" request
or Chinese in an "en" request come out as nothing too. The pipeline skips a segment with nothing
to say, notes the skipped letters, and refuses a text only when no segment says anything.
"""

from __future__ import annotations

import unicodedata

from app.messages import Message
from app.text import LanguageMode

# Unicode character-name prefixes of the scripts the frontend reads.
READABLE_SCRIPTS = ("LATIN", "CJK", "HIRAGANA", "KATAKANA", "HANGUL", "FULLWIDTH LATIN", "HALFWIDTH KATAKANA")
# The scripts each language reads besides Latin (English is read in every mode).
LANGUAGE_SCRIPTS = {
    "zh": ("CJK",),
    "yue": ("CJK",),
    "ja": ("CJK", "HIRAGANA", "KATAKANA", "HALFWIDTH KATAKANA"),
    "ko": ("HANGUL",),
}
LANGUAGES = Message("tts.text.languages", "Chinese, English, Japanese, Korean and Cantonese")
# Phones that carry no speech: punctuation and pauses (空/停: the Korean reader's space and pause).
SILENT_PHONES = frozenset({"!", "?", "…", ",", ".", "-", "SP", "SP2", "SP3", "_", "UNK", "空", "停"})


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


def unread_letters(text: str, mode: str) -> str:
    """The distinct letters of ``text`` in a readable script that language ``mode`` does not read."""
    parsed = LanguageMode.parse(mode)
    scripts = (
        "LATIN",
        "FULLWIDTH LATIN",
        *(s for lang in parsed.languages for s in LANGUAGE_SCRIPTS.get(lang, ())),
    )
    seen: dict[str, None] = {}
    for ch in text:
        if ch.isalpha():
            name = unicodedata.name(ch, "")
            if name.startswith(READABLE_SCRIPTS) and not name.startswith(scripts):
                seen.setdefault(ch, None)
    return "".join(seen)
