"""Texts of the tab keys in the languages added after English and Simplified Chinese.

English and Simplified Chinese live next to the code (each tab's ``STRINGS``); Traditional Chinese
(Taiwan), Japanese and Korean live here, one flat table per language, so a tab module stays short.
A new key may get its zh_TW/ja/ko text either here or in the tab's ``STRINGS``, not both
(:func:`app.ui.i18n.merge` refuses a key defined twice).
"""

from __future__ import annotations

from app.ui.locales import ja, ko, zh_tw

TABLE: dict[str, dict[str, str]] = {"zh_TW": zh_tw.TEXTS, "ja": ja.TEXTS, "ko": ko.TEXTS}
