"""Language names of upstream's legacy ``api.py`` (and of clients written for it) -> our language modes.

Upstream's api.py looks a language up in a table after ``.lower()``: its web UI's Chinese names
("中文", "中英混合", ...) and the mode ids ("all_zh", "zh", ...). Clients such as SillyTavern's
GSVI provider send the Chinese names. The ids are :class:`app.text.LanguageMode`'s values, so
only the names need a table; English names are accepted too.
"""

from __future__ import annotations

from app.text import LanguageMode, UnsupportedLanguage

# Upstream api.py's names (its dict_language) -> mode id. "中文" is Chinese only ("all_zh"), the
# "…英混合" names are that language mixed with English (the bare ids "zh", "ja", ...).
LEGACY_NAMES = {
    "中文": "all_zh",
    "粤语": "all_yue",
    "英文": "en",
    "日文": "all_ja",
    "韩文": "all_ko",
    "中英混合": "zh",
    "粤英混合": "yue",
    "日英混合": "ja",
    "韩英混合": "ko",
    "多语种混合": "auto",
    "多语种混合(粤语)": "auto_yue",
    "多语种混合（粤语）": "auto_yue",  # full-width parentheses, as some clients write it
    # English names (what clients show before translating to the names above).
    "chinese": "all_zh",
    "cantonese": "all_yue",
    "english": "en",
    "japanese": "all_ja",
    "korean": "all_ko",
    "multilingual": "auto",
}


def language_mode(value: str) -> str:
    """The mode id of an upstream language name or id (any case); ValueError listing the choices."""
    key = value.strip()
    mode = LEGACY_NAMES.get(key) or LEGACY_NAMES.get(key.lower())
    try:
        return LanguageMode.parse(mode or key).value
    except UnsupportedLanguage:
        names = ", ".join(n for n in LEGACY_NAMES if not n.isascii())
        ids = ", ".join(m.value for m in LanguageMode)
        raise ValueError(f"unknown language {value!r}: use one of {ids}, or {names}") from None
