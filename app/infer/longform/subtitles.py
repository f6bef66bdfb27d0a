"""Subtitle times and files: parse ``HH:MM:SS,mmm`` / ``MM:SS.mmm``, write SRT and WebVTT.

Times written are rounded to the millisecond (both formats' resolution); the cues come from the
audio actually produced (:mod:`app.infer.longform.assemble`), so they are exact to that rounding.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from app.messages import Message

_TIME = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:[.,](\d{1,3}))?$")


@dataclass(frozen=True)
class Cue:
    """One subtitle: text shown from ``start`` to ``end`` seconds."""

    start: float
    end: float
    text: str


def parse_time(text: str) -> float:
    """Seconds of ``01:02:03,456`` (SRT), ``01:02:03.456`` or ``02:03.456`` (WebVTT)."""
    match = _TIME.match(text.strip())
    if not match:
        template = "{text!r} is not a time; write HH:MM:SS,mmm (SRT) or HH:MM:SS.mmm (WebVTT)"
        raise ValueError(Message("subtitle.err.time", template, text=text))
    hours, minutes, seconds, millis = match.groups()
    if int(minutes) > 59 or int(seconds) > 59:
        template = "{text!r}: minutes and seconds must be below 60"
        raise ValueError(Message("subtitle.err.sixty", template, text=text))
    fraction = int((millis or "0").ljust(3, "0")) / 1000
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + fraction


def format_time(seconds: float, separator: str = ",") -> str:
    """``HH:MM:SS,mmm`` (``separator`` "." for WebVTT), rounded to the millisecond."""
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def to_srt(cues: Sequence[Cue]) -> str:
    """An SRT file of ``cues`` (numbered from 1)."""
    blocks = [
        f"{i}\n{format_time(c.start)} --> {format_time(c.end)}\n{c.text}\n" for i, c in enumerate(cues, 1)
    ]
    return "\n".join(blocks)


def to_vtt(cues: Sequence[Cue]) -> str:
    """A WebVTT file of ``cues``."""
    blocks = [f"{format_time(c.start, '.')} --> {format_time(c.end, '.')}\n{c.text}\n" for c in cues]
    return "WEBVTT\n\n" + "\n".join(blocks)
