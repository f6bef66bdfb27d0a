"""Reading numbers as Chinese characters, the way upstream's zh normaliser (PaddleSpeech) reads them.

``cardinal("1203")`` -> 一千二百零三, ``digits("110", alt_one=True)`` -> 幺幺零,
``number("3.20")`` -> 三点二零 (a trailing zero of the fraction is read once, as upstream does).
"""

from __future__ import annotations

import unicodedata

DIGIT_CHARS = "零一二三四五六七八九"
# Place units by power of ten; 10^5..10^7 are read as 十万/百万/千万 through recursion.
_UNITS = ((8, "亿"), (4, "万"), (3, "千"), (2, "百"), (1, "十"))


def _digit(ch: str) -> str:
    # \d in Python regexes also matches non-ASCII decimal digits (Arabic-Indic, ...); read them too.
    return DIGIT_CHARS[unicodedata.decimal(ch)]


def digits(value: str, alt_one: bool = False) -> str:
    """Read each digit on its own (years, room and phone numbers); ``alt_one`` reads 1 as 幺."""
    out = "".join(_digit(ch) for ch in value)
    return out.replace("一", "幺") if alt_one else out


def _spell(value: str, use_zero: bool = True) -> list[str]:
    """Characters of an integer string (leading zeros allowed) with place units."""
    stripped = value.lstrip("0")
    if not stripped:
        return []
    if len(stripped) == 1:
        # A zero before a lone digit is spoken (e.g. the 零 of 一百零三), once.
        if use_zero and len(stripped) < len(value):
            return [DIGIT_CHARS[0], _digit(stripped)]
        return [_digit(stripped)]
    power, unit = next((p, u) for p, u in _UNITS if p < len(stripped))
    return [*_spell(value[:-power]), unit, *_spell(value[-power:])]


def cardinal(value: str) -> str:
    """Read an integer string as a quantity: 1203 -> 一千二百零三, 12 -> 十二, 0 -> 零."""
    if not value:
        return ""
    value = value.lstrip("0")
    if not value:
        return DIGIT_CHARS[0]
    chars = _spell(value)
    # 一十X is said 十X.
    if len(chars) >= 2 and chars[0] == "一" and chars[1] == "十":
        chars = chars[1:]
    return "".join(chars)


def number(value: str) -> str:
    """Read ``int`` or ``int.frac`` (either part may be empty): 3.5 -> 三点五, .5 -> 零点五."""
    parts = value.split(".")
    if len(parts) > 2:
        raise ValueError(f"number {value!r} has more than one decimal point")
    integer, fraction = (parts[0], "") if len(parts) == 1 else parts
    out = cardinal(integer)
    # Upstream keeps exactly one trailing zero of the fraction (3.20 -> 三点二零, 3.0 -> 三点零).
    fraction = fraction.rstrip("0") + "0" if fraction.endswith("0") else fraction
    if fraction:
        out = (out or DIGIT_CHARS[0]) + "点" + digits(fraction)
    return out


def clock_number(value: str) -> str:
    """Minutes and seconds of a time: a leading zero is read (05 -> 零五)."""
    out = number(value.lstrip("0"))
    return DIGIT_CHARS[0] + out if value.startswith("0") else out
