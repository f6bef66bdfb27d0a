"""Messages the page builds in Python (errors, warnings, status lines, summaries), in the reader's language.

Labels are translated in the browser (``ctx.t(key)``); a message with values in it (a file name, a
count, a duration) is rendered here, on the server, in the language of the request: the one forced
with ``webui.py --lang``, else the one the page shows (the footer's language switch included:
the page keeps it in the :data:`LANG_COOKIE` cookie, which every request carries), else the best of
the browser's ``Accept-Language`` that the app speaks, else English. Handlers never pass literal text to ``gr.Error``/``gr.Warning``/``gr.Info`` or to a
status box: they call :func:`say` / :func:`error` with a key of :data:`STRINGS` (one table per
language in this package), or :func:`error_from` with an exception whose text is a
:class:`~app.messages.Message` of a lower layer. ``tests/ui/test_messages.py`` holds them to it.
"""

from __future__ import annotations

import html
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path

import gradio as gr
from gradio.context import LocalContext

from app.messages import Message
from app.ui.i18n import LANGUAGES
from app.ui.messages import (
    asr,
    assets,
    audio,
    data,
    en,
    encoders,
    infer,
    ja,
    ko,
    models,
    names,
    prepare,
    presets,
    runs,
    separation,
    svc,
    text,
    vocoders,
    voice,
    zh,
    zh_tw,
)


def _joined(page: Mapping[str, str], lang: str) -> dict[str, str]:
    """One language's texts: the page's table and the layers' (``data``, ``voice``, ``infer``,
    ``presets``, ``audio``, ``runs``, ``names``, ``text``, ``prepare``, ``asr``, ``separation``,
    ``models``, ``svc``, ``assets``, ``vocoders``, ``encoders``); a key twice is a bug."""
    out = dict(page)
    layers = (
        data,
        voice,
        infer,
        presets,
        audio,
        runs,
        names,
        text,
        prepare,
        asr,
        separation,
        models,
        svc,
        assets,
        vocoders,
        encoders,
    )
    for tools in (layer.TEXTS[lang] for layer in layers):
        clash = sorted(set(out) & set(tools))
        if clash:
            raise ValueError(f"message keys defined twice: {clash}")
        out.update(tools)
    return out


STRINGS: dict[str, dict[str, str]] = {
    "en": _joined(en.TEXTS, "en"),
    "zh": _joined(zh.TEXTS, "zh"),
    "zh_TW": _joined(zh_tw.TEXTS, "zh_TW"),
    "ja": _joined(ja.TEXTS, "ja"),
    "ko": _joined(ko.TEXTS, "ko"),
}

# An Accept-Language entry ("zh-TW;q=0.8") -> its tag and weight.
_ENTRY = re.compile(r"^\s*([A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*)\s*(?:;\s*q\s*=\s*([0-9.]+))?\s*$")
_TRADITIONAL = ("zh-tw", "zh-hk", "zh-mo", "zh-hant")
# The cookie holding the locale the page shows (``<html lang>``: the browser's, or the one picked in
# the footer's settings); the page's script that keeps it is :data:`app.ui.page_language.LANG_SCRIPT`.
LANG_COOKIE = "studio_lang"


def language_of_tag(tag: str) -> str | None:
    """The app language for one BCP 47 tag ("zh-Hant-TW" -> "zh_TW", "ja-JP" -> "ja"), or None."""
    tag = tag.lower()
    if tag.startswith(_TRADITIONAL):
        return "zh_TW"
    base = tag.split("-")[0]
    return base if base in LANGUAGES else None


def language_of(accept_language: str) -> str:
    """The app language an ``Accept-Language`` header asks for (highest weight first; English if none)."""
    ranked = []
    for position, entry in enumerate(accept_language.split(",")):
        found = _ENTRY.match(entry)
        if not found:
            continue
        try:
            weight = float(found.group(2)) if found.group(2) else 1.0
        except ValueError:
            continue
        ranked.append((-weight, position, found.group(1)))
    for _, _, tag in sorted(ranked):
        lang = language_of_tag(tag)
        if lang is not None:
            return lang
    return "en"


def current_language() -> str:
    """The language of the event being handled (``--lang``, else the page's, else the browser's);
    English outside one."""
    forced = getattr(LocalContext.blocks.get(None), "studio_lang", "auto")
    if forced != "auto":
        return forced
    request = LocalContext.request.get(None)
    headers = getattr(request, "headers", None) or {}
    shown = language_of_tag(_cookie(headers.get("cookie", ""), LANG_COOKIE) or "")
    return shown or language_of(headers.get("accept-language", ""))


def _cookie(header: str, name: str) -> str | None:
    """The value of cookie ``name`` in a ``Cookie`` header (None when absent or unreadable)."""
    # By hand: SimpleCookie drops every cookie after one it cannot parse (another app's, same host).
    for entry in header.split(";"):
        key, sep, value = entry.partition("=")
        if sep and key.strip() == name:
            return urllib.parse.unquote(value.strip().strip('"'))
    return None


def say(key: str, lang: str | None = None, **params: object) -> str:
    """The text of ``key`` in ``lang`` (default: the request's), its ``{fields}`` filled from ``params``."""
    return STRINGS[lang or current_language()][key].format(**params)


def render(text: str, lang: str | None = None) -> str:
    """``text`` in the reader's language when it is a :class:`Message` with a translation (its
    parameters too, when they are Messages), else as is. An uploaded file is named by its own name,
    not by the temporary folder gradio keeps it in."""
    if not isinstance(text, Message):
        return str(text)
    lang = lang or current_language()
    params = {
        name: render(value, lang) if isinstance(value, str) else value for name, value in text.params.items()
    }
    params = {name: _shown(value) for name, value in params.items()}
    if text.key in STRINGS["en"]:
        return text.render(STRINGS[lang][text.key], params)
    return text.render(text.template, params)


def _shown(value: object) -> object:
    """A path in gradio's upload folder -> the uploaded file's name (what the person chose)."""
    if isinstance(value, str) and value.startswith(_upload_roots()):
        return Path(value).name
    return value


def _upload_roots() -> tuple[str, ...]:
    from gradio.utils import get_upload_folder

    folder = get_upload_folder()
    return (str(Path(folder).resolve()) + "/", folder.rstrip("/") + "/")


def _html(lines: Sequence[str]) -> str:
    # gradio shows a toast's message as sanitised HTML: escape the text, one line per <br>.
    return "<br>".join(html.escape(line) for line in lines)


def error(key: str, **params: object) -> gr.Error:
    """A ``gr.Error`` saying ``key`` in the reader's language (``raise error("tts.err.x", name=...)``)."""
    return gr.Error(_html([say(key, **params)]))


def error_from(exc: BaseException, notes: Sequence[str] = ()) -> gr.Error:
    """A ``gr.Error`` for ``exc`` (a lower layer's refusal): its :class:`Message` translated, and
    ``notes`` (Messages too, when the layer gave them) one line each after it."""
    text = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
    lines = [render(text), *(say("common.note", note=render(n)) for n in notes)]
    return gr.Error(_html(lines))


def warning(key: str, **params: object) -> None:
    """A warning toast saying ``key`` in the reader's language."""
    gr.Warning(_html([say(key, **params)]))


def info(key: str, **params: object) -> None:
    """An information toast saying ``key`` in the reader's language."""
    gr.Info(_html([say(key, **params)]))


def term(prefix: str, value: str) -> str:
    """The translated name of ``value`` (a state, a stage) under ``prefix``; ``value`` itself when
    it has none (a new state added below without a name yet still shows)."""
    key = f"{prefix}.{value}"
    return say(key) if key in STRINGS["en"] else value


def say_in(
    table: Mapping[str, Mapping[str, str]], key: str, lang: str | None = None, /, **params: object
) -> str:
    """:func:`say` for a key of a tab's own table (its ``STRINGS``) rather than of :data:`STRINGS`."""
    return table[lang or current_language()][key].format(**params)


def error_in(
    table: Mapping[str, Mapping[str, str]], key: str, lang: str | None = None, /, **params: object
) -> gr.Error:
    """:func:`error` for a key of a tab's own table."""
    return gr.Error(_html([say_in(table, key, lang, **params)]))
