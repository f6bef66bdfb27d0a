"""Text frontend compatible with GPT-SoVITS v1/v2: text -> phones (and what BERT needs).

Public API (importing this package is cheap; dictionaries and models load on first use)::

    from app.text import text_to_phones, split_text, SplitMethod

    result = text_to_phones("你好，world!", mode="auto", version="v2")
    result.phones, result.phone_ids, result.word2ph, result.norm_text, result.segments

- :func:`text_to_phones` (:mod:`app.text.frontend`): language modes all_zh, en/all_en, all_ja,
  all_ko, all_yue, zh/ja/ko/yue (+ English), auto, auto_yue; inline ``{text|reading}``
  pronunciation overrides (:mod:`app.text.overrides`).
- :func:`split_text`, :func:`preview_split`, :class:`SplitMethod` (:mod:`app.text.split`):
  upstream's six sentence-splitting methods cut0..cut5.
- :func:`clean_text` (:mod:`app.text.cleaner`): one language segment -> phones.
- :func:`phones_to_ids` and ``app.text.symbols.symbols(version)`` (:mod:`app.text.symbols`):
  the v1 (322) and v2 (732) phone tables; unknown phones map to ``UNK``.

``python -m app.text "text" --lang auto --version v2`` prints the normalised text, phones and ids.
"""

from __future__ import annotations

from app.text.cleaner import CleanResult, UnsupportedLanguage, clean_text
from app.text.frontend import EmptyText, LanguageMode, Segment, TextResult, modes, text_to_phones
from app.text.overrides import OverrideError
from app.text.split import SplitMethod, split_text
from app.text.split import preview as preview_split
from app.text.symbols import phones_to_ids

__all__ = [
    "CleanResult",
    "EmptyText",
    "LanguageMode",
    "OverrideError",
    "Segment",
    "SplitMethod",
    "TextResult",
    "UnsupportedLanguage",
    "clean_text",
    "modes",
    "phones_to_ids",
    "preview_split",
    "split_text",
    "text_to_phones",
]
