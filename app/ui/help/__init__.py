"""One-line help under the page's controls, in every language.

A control whose label key is ``K`` gets the text of ``help.K`` as its ``info`` (the grey line under
it), attached once the page is built (:func:`attach_help`): tabs need not name help keys, and a
control added later gets its help by adding one key per language here.
"""

from __future__ import annotations

import gradio as gr

from app.ui.help import en, ja, ko, zh, zh_tw

STRINGS: dict[str, dict[str, str]] = {
    "en": en.TEXTS,
    "zh": zh.TEXTS,
    "zh_TW": zh_tw.TEXTS,
    "ja": ja.TEXTS,
    "ko": ko.TEXTS,
}
PREFIX = "help."


def label_key(block: gr.blocks.Block) -> str | None:
    """The translation key of ``block``'s label, or None when its label is plain text or absent."""
    label = getattr(block, "label", None)
    return label.key if isinstance(label, gr.i18n.I18nData) else None


def attach_help(demo: gr.Blocks, i18n: gr.I18n) -> int:
    """Give every control of ``demo`` whose label has a help text that text as its ``info`` (unless it
    has one already); returns how many got one."""
    given = 0
    for block in demo.blocks.values():
        key = label_key(block)
        if key is None or not hasattr(block, "info") or block.info:
            continue
        if PREFIX + key in STRINGS["en"]:
            block.info = i18n(PREFIX + key)
            given += 1
    return given
