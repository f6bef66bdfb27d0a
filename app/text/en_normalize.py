"""English text normalisation: numbers, money, times, units, fractions and ordinals to words.

Reproduces what GPT-SoVITS v1/v2 feeds its English G2P (``text/en_normalization/expend.py`` plus
``english.text_normalize``), quirks included, because the pretrained models were trained on exactly
those word sequences. Examples of the kept quirks (each visible in upstream's own outputs):

- a time is read as ``"<hour> <minute> a.m."`` even when the text already says ``p.m.``
  (``"9:43 p.m."`` -> ``"nine forty-three a.m. p.m."``), and ``"2:01"`` -> ``"two one a.m."``;
- a ``"-"`` right after whitespace swallows that whitespace (``"is -3"`` -> ``"isnegative 3"``);
- ``"7.11.5"`` -> ``"seven point one one.five"`` (only the first ``a.b`` is a decimal);
- ASCII ``;`` and ``:`` are not turned into commas but deleted with every other unsupported mark;
- an upper-case letter inside a word starts a new word (``"MacBook"`` -> ``"Mac Book"``).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Marks that GPT-SoVITS treats as punctuation phones (symbols.punctuation, order irrelevant here).
PUNCTUATION = "!?…,.-"

# Full-width sentence marks that are mapped before anything else (upstream's effective rep_map).
_FULLWIDTH = str.maketrans({"。": ".", "！": "!", "？": "?"})

# Unit suffixes glued to a number ("20h", "1.5km"): singular and plural readings.
_UNITS: dict[str, tuple[str, str]] = {
    "m": ("meter", "meters"),
    "km": ("kilometer", "kilometers"),
    "km/h": ("kilometer per hour", "kilometers per hour"),
    "ft": ("feet", "feet"),
    "L": ("liter", "liters"),
    "tbsp": ("tablespoon", "tablespoons"),
    "tsp": ("teaspoon", "teaspoons"),
    "h": ("hour", "hours"),
    "min": ("minute", "minutes"),
    "s": ("second", "seconds"),
    "°C": ("degree celsius", "degrees celsius"),
    "°F": ("degree fahrenheit", "degrees fahrenheit"),
}
# Alternation order matters: regex alternation is ordered, and backtracking picks the first unit
# after which a word boundary follows ("5min" tries "m" first, then "min").
_UNIT_ALTERNATION = "|".join(re.escape(u) for u in _UNITS)

_SUPERSCRIPTS = "⁰¹²³⁴⁵⁶⁷⁸⁹ˣʸⁿ"
# One operand of an arithmetic expression: signed number, bare decimal, or a single letter, each
# optionally followed by superscripts.
_OPERAND = rf"((-?)((\d+)(\.\d+)?[{_SUPERSCRIPTS}]*)|(\.\d+[{_SUPERSCRIPTS}]*)|([A-Za-z][{_SUPERSCRIPTS}]*))"

_RE_LIST_ORDINAL = re.compile(r"\b([0-9]+)\. ")  # "1. " list numbering -> "first, "
_RE_ARITHMETIC = re.compile(_OPERAND + r"\s+([\+\-\×÷=])\s+" + _OPERAND)
_RE_NEGATIVE = re.compile(r"(?:^|\s+)(-)(\d+)")
_RE_GROUPED = re.compile(r"([0-9][0-9\,]+[0-9])")
_RE_TIME = re.compile(r"\b([01]?[0-9]|2[0-3]):([0-5][0-9])\b")
_RE_MEASURE = re.compile(rf"\b([0-9]+(\.[0-9]+)?({_UNIT_ALTERNATION}))\b")
_RE_POUNDS_BEFORE = re.compile(r"£([0-9\.\,]*[0-9]+)")
_RE_POUNDS_AFTER = re.compile(r"([0-9\.\,]*[0-9]+)£")
_RE_DOLLARS_BEFORE = re.compile(r"\$([0-9\.\,]*[0-9]+)")
_RE_DOLLARS_AFTER = re.compile(r"([(0-9\.\,]*[0-9]+)\$")
_RE_DECIMAL = re.compile(r"([0-9]+\.\s*[0-9]+)")
_RE_FRACTION = re.compile(r"([0-9]+/[0-9]+)")
_RE_ORDINAL = re.compile(r"[0-9]+(st|nd|rd|th)")
_RE_NUMBER = re.compile(r"[0-9]+")
_RE_UNSUPPORTED = re.compile(r"[^ A-Za-z'.,?!\-]")
_RE_CAPITAL_INSIDE = re.compile(r"(?<!^)(?<![\s])([A-Z])")
_RE_REPEATED_PUNCT = re.compile("([" + re.escape(PUNCTUATION) + r"\s])([" + re.escape(PUNCTUATION) + "])+")

_OPERATOR_WORDS = {"+": " plus ", "-": " minus ", "×": " times ", "÷": " divided by ", "=": " Equals "}


@lru_cache(maxsize=1)
def _inflect():
    import inflect

    return inflect.engine()


def _words(number: int | str, **kwargs: object) -> str:
    """inflect's cardinal reading; digit by digit when inflect gives up (beyond decillions)."""
    try:
        return _inflect().number_to_words(number, **kwargs)
    except Exception:  # inflect raises its own NumOutOfRangeError and friends
        digits = re.sub(r"\D", "", str(number))
        return " ".join(_inflect().number_to_words(d) for d in digits)


def _list_ordinal(m: re.Match) -> str:
    return _inflect().ordinal(m.group(1)) + ", "


def _arithmetic(m: re.Match) -> str:
    return m.group(1) + _OPERATOR_WORDS[m.group(8)] + m.group(9)


def _negative(m: re.Match) -> str:
    # The leading whitespace is part of the match and is dropped, as upstream does.
    return f"negative {m.group(2)}"


def _time(m: re.Match) -> str:
    hours, minutes = int(m.group(1)), int(m.group(2))
    period = "a.m." if hours < 12 else "p.m."
    if hours > 12:
        hours -= 12
    if minutes == 0:
        return f"{_words(hours)} o'clock {period}"
    return f"{_words(hours)} {_words(minutes)} {period}"


def _measure(m: re.Match) -> str:
    whole, decimals, unit = m.group(1), m.group(2), m.group(3)
    value = int(whole.replace(unit, "").replace(".", ""))
    singular = decimals is None and value == 1
    return whole.replace(unit, " " + _UNITS[unit][0 if singular else 1])


def _money(amount: str, major: tuple[str, str], minor: tuple[str, str], fallback: str) -> str:
    """``"3.5"`` with (dollar, dollars), (cent, cents) -> ``"3 dollars and 50 cents"`` (digits stay)."""
    parts = amount.split(".")
    if len(parts) > 2:
        return f"{amount} {fallback}"
    # Commas left here were not between two digits; upstream would crash on int(); drop them.
    whole_txt, frac_txt = parts[0].replace(",", ""), (parts[1].replace(",", "") if len(parts) > 1 else "")
    whole = int(whole_txt) if whole_txt else 0
    frac = int(frac_txt.ljust(2, "0")) if frac_txt else 0
    whole_unit = major[0] if whole == 1 else major[1]
    frac_unit = minor[0] if frac == 1 else minor[1]
    if whole and frac:
        return f"{whole} {whole_unit} and {frac} {frac_unit}"
    if whole:
        return f"{whole} {whole_unit}"
    if frac:
        return f"{frac} {frac_unit}"
    return f"zero {major[1]}"


def _pounds(m: re.Match) -> str:
    return _money(m.group(1), ("pound", "pounds"), ("penny", "pence"), "pounds")


def _dollars(m: re.Match) -> str:
    amount = m.group(1).replace("(", "")
    return _money(amount, ("dollar", "dollars"), ("cent", "cents"), "dollars")


def _decimal(m: re.Match) -> str:
    whole, frac = m.group(1).split(".")
    # Every character after the point is read on its own, spaces included ("1. 5" keeps its gap).
    return whole + " point " + " ".join(frac)


def _fraction(m: re.Match) -> str:
    numerator, denominator = (int(x) for x in m.group(0).split("/"))
    top = _words(numerator)
    if denominator == 1:
        return top
    if denominator == 2:
        return f"{top} {'half' if numerator == 1 else 'halves'}"
    bottom = _inflect().ordinal(_words(denominator))
    return f"{top} {bottom}{'s' if numerator > 1 else ''}"


def _ordinal(m: re.Match) -> str:
    return _words(m.group(0))


def _number(m: re.Match) -> str:
    num = int(m.group(0))
    if 1000 < num < 3000:
        # Years: "nineteen fifty-one", "two thousand nine", "fifteen hundred".
        if num == 2000:
            return "two thousand"
        if 2000 < num < 2010:
            return "two thousand " + _words(num % 100)
        if num % 100 == 0:
            return _words(num // 100) + " hundred"
        return _words(num, andword="", zero="oh", group=2).replace(", ", " ")
    return _words(num, andword="")


def expand(text: str) -> str:
    """Upstream's ``en_normalization.expend.normalize``: numbers and symbols to words, then clean-up."""
    text = _RE_LIST_ORDINAL.sub(_list_ordinal, text)
    while _RE_ARITHMETIC.search(text):
        text = _RE_ARITHMETIC.sub(_arithmetic, text)
    text = _RE_NEGATIVE.sub(_negative, text)
    text = _RE_GROUPED.sub(lambda m: m.group(1).replace(",", ""), text)
    text = _RE_TIME.sub(_time, text)
    text = _RE_MEASURE.sub(_measure, text)
    text = _RE_POUNDS_BEFORE.sub(_pounds, text)
    text = _RE_POUNDS_AFTER.sub(_pounds, text)
    text = _RE_DOLLARS_BEFORE.sub(_dollars, text)
    text = _RE_DOLLARS_AFTER.sub(_dollars, text)
    text = _RE_DECIMAL.sub(_decimal, text)
    text = _RE_FRACTION.sub(_fraction, text)
    text = _RE_ORDINAL.sub(_ordinal, text)
    text = _RE_NUMBER.sub(_number, text)
    # Strip accents: decompose, drop the combining marks.
    text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    text = text.replace("%", " percent")
    text = _RE_UNSUPPORTED.sub("", text)
    text = re.sub(r"(?i)i\.e\.", "that is", text)
    text = re.sub(r"(?i)e\.g\.", "for example", text)
    return _RE_CAPITAL_INSIDE.sub(r" \1", text)


def dedup_punctuation(text: str) -> str:
    """Keep only the first of a run of punctuation marks (also after whitespace), as upstream does."""
    return _RE_REPEATED_PUNCT.sub(r"\1", text)


def normalize(text: str) -> str:
    """Upstream ``english.text_normalize``: full-width marks, :func:`expand`, punctuation runs."""
    return dedup_punctuation(expand(text.translate(_FULLWIDTH)))
