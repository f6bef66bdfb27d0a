"""Texts of the tab keys in the languages added after English and Simplified Chinese.

English and Simplified Chinese live next to the code (each tab's ``STRINGS``); Traditional Chinese
(Taiwan), Japanese and Korean live here, one flat table per language, so a tab module stays short.
A tab wraps its table in :func:`complete`, which adds these texts for the tab's own keys: a tab's
``STRINGS`` then has every language of :data:`app.ui.i18n.LANGUAGES` on its own (a page built from
one tab, as tests do, is complete too). A text a tab gives itself for one of these languages wins.
"""

from __future__ import annotations

from collections.abc import Mapping

from app.ui.locales import ja, ko, zh_tw

TABLE: dict[str, dict[str, str]] = {"zh_TW": zh_tw.TEXTS, "ja": ja.TEXTS, "ko": ko.TEXTS}


def complete(strings: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    """``strings`` plus, for each language of :data:`TABLE`, the texts of its English keys found here."""
    out = {lang: dict(texts) for lang, texts in strings.items()}
    keys = strings["en"]
    for lang, texts in TABLE.items():
        found = {key: texts[key] for key in keys if key in texts}
        out[lang] = {**found, **strings.get(lang, {})}
    return out
