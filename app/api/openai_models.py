"""Model ids of the OpenAI-compatible endpoints: OpenAI's TTS ids, dated snapshots included.

OpenAI SDKs and apps insist on sending a ``model``; every accepted id runs the same engine (the
voice's preset chooses the models). Accepted: a known base id (:data:`MODEL_IDS`), alone or
followed by a snapshot date, as OpenAI names its snapshots: ``-YYYY-MM-DD``
(``gpt-4o-mini-tts-2025-03-20``) or ``-MMDD`` (``tts-1-hd-1106``). Anything else is refused,
so a typo is not spoken silently by another model.
"""

from __future__ import annotations

import datetime as dt
import re

MODEL_IDS = ("gpt-sovits", "tts-1", "tts-1-hd", "gpt-4o-mini-tts")
OWNER = "sovits-studio"
# Longest base first: "tts-1-hd-1106" is tts-1-hd dated, not tts-1 with a suffix "hd-1106".
_DATED = re.compile(
    "(?P<base>"
    + "|".join(re.escape(m) for m in sorted(MODEL_IDS, key=len, reverse=True))
    + r")(?:-(?P<ymd>\d{4}-\d{2}-\d{2})|-(?P<md>\d{4}))?"
)
# A year for checking -MMDD (2024 is a leap year: 0229 is a date).
_LEAP_YEAR = 2024


def _is_date(text: str, fmt: str) -> bool:
    try:
        dt.datetime.strptime(text, fmt)
    except ValueError:
        return False
    return True


def model_base(model_id: str) -> str | None:
    """The known base id of ``model_id`` (itself, or without its snapshot date); None when unknown."""
    match = _DATED.fullmatch(model_id)
    if match is None:
        return None
    if match["ymd"] and not _is_date(match["ymd"], "%Y-%m-%d"):
        return None
    if match["md"] and not _is_date(f"{_LEAP_YEAR}{match['md']}", "%Y%m%d"):
        return None
    return match["base"]


def check_model(model_id: str) -> str:
    """``model_id`` unchanged; ValueError saying what is accepted otherwise."""
    if model_base(model_id) is None:
        raise ValueError(
            f"{model_id!r} is unknown; use one of {', '.join(MODEL_IDS)}, optionally with a "
            "snapshot date (-YYYY-MM-DD or -MMDD, e.g. gpt-4o-mini-tts-2025-03-20, tts-1-hd-1106)"
        )
    return model_id


def model_object(model_id: str) -> dict[str, object]:
    """OpenAI's model object for an accepted id."""
    return {"id": model_id, "object": "model", "created": 0, "owned_by": OWNER}
