"""Inline pronunciation overrides: ``{written text|reading}`` inside the text to synthesise.

Syntax (one override per pair of braces, no nesting):

- Mandarin pinyin, one syllable with tone digit (1-4, 5 = neutral) per Chinese character:
  ``{重庆|chong2 qing4}``, ``{还|huan2}``, ``{绿|lv4}`` (ü may be written ``v`` or ``ü``).
- Cantonese Jyutping in the yue modes (all_yue, yue, auto_yue), tones 1-6: ``{係|hai6}``.
- English ARPAbet phones (CMU dictionary symbols, stress digits on vowels): ``{GIF|JH IH1 F}``.
- Any symbols of the model's phone table, prefixed with ``=``: ``{啊|=AA a5}``.

The written text is kept for display (and, for Chinese, for the BERT features of its
characters); the reading replaces what the frontend would have read. Chinese overrides give
``word2ph`` per character (two phones each, initial + final). Braces that do not form an
override (no ``|``) are left in the text. A malformed reading raises :class:`OverrideError`
naming the override and what was wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.messages import Message
from app.text.symbols import (
    ARPA_BARE,
    ARPA_CONSONANTS,
    ARPA_VOWELS,
    YUE_PREFIX,
    symbol_to_id,
)
from app.text.zh_pinyin import syllable_symbols

OVERRIDE_RE = re.compile(r"\{([^{}|]+)\|([^{}]*)\}")
_PINYIN = re.compile(r"^([bpmfdtnlgkhjqxrzcsyw]|zh|ch|sh)?([aeiouvü][a-zü]*|ng|n|m|r)([1-5])$")
_JYUTPING = re.compile(r"^([a-z]+)([1-6])$")
_ARPABET = frozenset([v + s for v in ARPA_VOWELS for s in "012"] + list(ARPA_CONSONANTS) + list(ARPA_BARE))
_HAN = re.compile(r"[\u4e00-\u9fff]")


class OverrideError(ValueError):
    """An inline pronunciation override that cannot be read (its text a Message)."""


def _shown(written: str, tokens: list[str]) -> str:
    """The override as the reader wrote it (its reading's syllables one space apart)."""
    return f"{{{written}|{' '.join(tokens)}}}"


@dataclass(frozen=True)
class Override:
    """One ``{text|reading}`` span, resolved to phones."""

    # The written text between "{" and "|".
    text: str
    # Language the phones belong to: "zh", "yue", "en" or "raw" (symbols given with "=").
    lang: str
    # Phone symbols to use instead of reading ``text``.
    phones: tuple[str, ...]
    # Phones per character of ``text`` for zh/yue overrides; None otherwise.
    word2ph: tuple[int, ...] | None


def split_overrides(text: str) -> list[str | tuple[str, str]]:
    """Cut ``text`` into plain strings and (written, reading) override pairs, in order."""
    out: list[str | tuple[str, str]] = []
    pos = 0
    for m in OVERRIDE_RE.finditer(text):
        if m.start() > pos:
            out.append(text[pos : m.start()])
        out.append((m.group(1), m.group(2)))
        pos = m.end()
    if pos < len(text):
        out.append(text[pos:])
    return out


def _pinyin_phones(written: str, tokens: list[str]) -> tuple[list[str], list[int]]:
    phones: list[str] = []
    for token in tokens:
        m = _PINYIN.match(token.replace("ü", "v"))
        if m is None:
            template = "{override}: {token!r} is not a pinyin syllable with tone 1-5"
            raise OverrideError(
                Message("text.override.not_pinyin", template, override=_shown(written, tokens), token=token)
            )
        initial, final, tone = m.group(1) or "", m.group(2), m.group(3)
        pair = _split_pinyin(initial, final)
        if pair is None:
            template = "{override}: {token!r} is not a Mandarin syllable"
            raise OverrideError(
                Message("text.override.not_mandarin", template, override=_shown(written, tokens), token=token)
            )
        phones += [pair[0], pair[1] + tone]
    return phones, [2] * len(tokens)


def _split_pinyin(initial: str, final: str) -> tuple[str, str] | None:
    # Written pinyin to pypinyin's strict (initial, final): y/w are spelling, ju/qu/xu mean ü.
    if initial == "y":
        final = {"u": "v", "uan": "van", "ue": "ve", "un": "vn"}.get(final, final)
        if final.startswith("v"):
            return syllable_symbols("", final)
        return syllable_symbols("", final if final.startswith("i") else "i" + final)
    if initial == "w":
        return syllable_symbols("", final if final == "u" else "u" + final)
    if initial in ("j", "q", "x") and final.startswith("u"):
        final = "v" + final[1:]
    full = {"ui": "uei", "iu": "iou", "un": "uen"}.get(final, final)
    return syllable_symbols(initial, full if initial else final)


def _jyutping_phones(written: str, tokens: list[str]) -> tuple[list[str], list[int]]:
    from app.text.cantonese import split_syllable

    phones: list[str] = []
    for token in tokens:
        parts = split_syllable(token) if _JYUTPING.match(token) else None
        if parts is None:
            template = "{override}: {token!r} is not a Jyutping syllable with tone 1-6"
            raise OverrideError(
                Message("text.override.not_jyutping", template, override=_shown(written, tokens), token=token)
            )
        phones += [YUE_PREFIX + p for p in parts]
    return phones, [2] * len(tokens)


def resolve(written: str, reading: str, version: str, yue: bool = False) -> Override:
    """Turn one override into phones; ``yue`` reads lower-case syllables as Jyutping."""
    table = symbol_to_id(version)
    reading = reading.strip()
    if not written.strip():
        template = "{override}: the written text before '|' is empty"
        raise OverrideError(
            Message("text.override.no_written", template, override=f"{{{written}|{reading}}}")
        )
    if reading.startswith("="):
        phones = reading[1:].split()
        unknown = [p for p in phones if p not in table]
        if not phones or unknown:
            shown = f"{{{written}|{reading}}}"
            if not phones:
                template = "{override}: not in the {version} phone table: nothing given"
                raise OverrideError(
                    Message("text.override.no_phones", template, override=shown, version=version)
                )
            template = "{override}: not in the {version} phone table: {unknown}"
            message = Message(
                "text.override.unknown_phones",
                template,
                override=shown,
                version=version,
                unknown=str(unknown),
            )
            raise OverrideError(message)
        return Override(written, "raw", tuple(phones), None)
    tokens = reading.split()
    if not tokens:
        template = "{override}: the reading after '|' is empty"
        raise OverrideError(Message("text.override.no_reading", template, override=f"{{{written}|}}"))
    if all(t in _ARPABET for t in tokens):
        return Override(written, "en", tuple(tokens), None)
    han = _HAN.findall(written)
    if len(han) != len(written.strip()) or len(tokens) != len(han):
        template = (
            "{override}: give ARPAbet phones (upper case) for a word, or one {system} syllable per "
            "Chinese character ({characters} characters, {syllables} syllables)"
        )
        system = "Jyutping" if yue else "pinyin"
        shown = f"{{{written}|{reading}}}"
        message = Message(
            "text.override.count",
            template,
            override=shown,
            system=system,
            characters=len(han),
            syllables=len(tokens),
        )
        raise OverrideError(message)
    lang = "yue" if yue else "zh"
    if yue and version == "v1":
        template = "{override}: Cantonese needs a v2 model"
        raise OverrideError(
            Message("text.override.cantonese_v1", template, override=f"{{{written}|{reading}}}")
        )
    phones, word2ph = (_jyutping_phones if yue else _pinyin_phones)(written, tokens)
    unknown = [p for p in phones if p not in table]
    if unknown:
        template = "{override}: syllables outside the {version} phone table: {unknown}"
        message = Message(
            "text.override.outside_table",
            template,
            override=f"{{{written}|{reading}}}",
            version=version,
            unknown=str(unknown),
        )
        raise OverrideError(message)
    return Override(written.strip(), lang, tuple(phones), tuple(word2ph))
