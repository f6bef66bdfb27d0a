"""Small value types shared by the per-language text modules."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class G2P:
    """Result of one language module's grapheme-to-phoneme step on normalised text."""

    # Phone symbol names, in order (members of the version's symbol table, or later mapped to UNK).
    phones: tuple[str, ...]
    # Phones per character of the normalised text (zh/yue only); None for other languages.
    word2ph: tuple[int, ...] | None = None
