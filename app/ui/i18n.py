"""Translation tables: shared strings here, each tab module adds its own ``STRINGS``.

Keys are stable ids (``"dataset.run"``); the text shown is looked up in the browser's language
(or the one forced with ``webui.py --lang``). Code never compares against displayed text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # gradio loads with the page, not with ``webui.py --help`` (which reads LANGUAGES)
    import gradio as gr

LANGUAGES = ("en", "zh", "zh_TW", "ja", "ko")
# Browser locales that should get each language (gradio matches the exact locale code first, then
# the language part: "zh-TW" gets Traditional Chinese, any other "zh-…" Simplified).
LOCALE_ALIASES = {
    "en": ("en", "en-US", "en-GB"),
    "zh": ("zh", "zh-CN", "zh-Hans", "zh-SG", "zh-Hans-CN"),
    "zh_TW": ("zh-TW", "zh-HK", "zh-MO", "zh-Hant", "zh-Hant-TW", "zh-Hant-HK"),
    "ja": ("ja", "ja-JP"),
    "ko": ("ko", "ko-KR"),
}

Strings = Mapping[str, Mapping[str, str]]

COMMON: dict[str, dict[str, str]] = {
    "en": {
        "app.header": "# SoVITS Studio\nFew-shot voice cloning and singing voice conversion, running on this machine.",
    },
    "zh": {
        "app.header": "# SoVITS Studio\n少样本语音克隆与歌声转换，在本机运行。",
    },
    "zh_TW": {
        "app.header": "# SoVITS Studio\n少樣本語音複製與歌聲轉換，在本機執行。",
    },
    "ja": {
        "app.header": "# SoVITS Studio\n少量サンプルの音声クローンと歌声変換を、このマシン上で実行します。",
    },
    "ko": {
        "app.header": "# SoVITS Studio\n적은 샘플로 하는 음성 복제와 노래 음성 변환을 이 컴퓨터에서 실행합니다.",
    },
}


def merge(tables: Iterable[Strings]) -> dict[str, dict[str, str]]:
    """Merge per-module tables; a key defined twice is a bug and raises."""
    out: dict[str, dict[str, str]] = {lang: {} for lang in LANGUAGES}
    for table in tables:
        for lang, strings in table.items():
            if lang not in out:
                raise ValueError(
                    f"translation table for unsupported language {lang!r}; supported: {LANGUAGES}"
                )
            clash = sorted(set(out[lang]) & set(strings))
            if clash:
                raise ValueError(f"translation keys defined twice for {lang!r}: {clash}")
            out[lang].update(strings)
    missing = {lang: sorted(set(out["en"]) - set(out[lang])) for lang in LANGUAGES}
    missing = {lang: keys for lang, keys in missing.items() if keys}
    if missing:
        raise ValueError(f"translation keys without text: {missing}")
    return out


def build_i18n(tables: Iterable[Strings], lang: str = "auto") -> gr.I18n:
    """A ``gr.I18n`` for the merged ``tables``; ``lang`` other than "auto" forces one language."""
    import gradio as gr

    merged = merge(tables)
    if lang != "auto" and lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}; choose auto or one of {', '.join(LANGUAGES)}")
    by_locale = {}
    for code, aliases in LOCALE_ALIASES.items():
        for locale in aliases:
            by_locale[locale] = merged[code if lang == "auto" else lang]
    return gr.I18n(**by_locale)


def text(tables: Iterable[Strings], key: str, lang: str = "en") -> str:
    """The plain text of ``key`` (for messages built in Python, e.g. gr.Error)."""
    return merge(tables)[lang][key]
