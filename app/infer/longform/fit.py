"""Dubbing: fit a line's speech into its cue's time slot with the model's own speed.

The SoVITS decoder stretches its frame sequence by ``1 / speed`` (upstream's ``speed_factor``),
so a line's speech lasts about ``d1 / speed`` where ``d1`` is its length at speed 1. A line
longer than its slot is synthesised again faster, at ``speed = base * d / slot`` (with a small
margin for rounding to frames), never above ``max_speed``; a line shorter than its slot is padded
with silence (it is never slowed down). A line still too long at ``max_speed`` is reported.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.infer.request import SPEED_RANGE
from app.messages import Message

# Relative margin added to the computed speed: the decoder rounds lengths to whole frames.
SPEED_MARGIN = 0.02
# Syntheses of one line at most (the first at the voice's speed, then faster ones).
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class FitOptions:
    """Limits of time fitting."""

    # Fastest speed a line may be spoken at (1.0 = never faster than the voice's own speed).
    max_speed: float = 1.5
    # Speech up to this many seconds longer than its slot still counts as fitting.
    tolerance_s: float = 0.02

    def __post_init__(self) -> None:
        if not 1.0 <= self.max_speed <= SPEED_RANGE[1]:
            template = "max_speed must be between 1 and {most:g}, got {value:g}"
            raise ValueError(
                Message("fit.err.max_speed", template, most=SPEED_RANGE[1], value=self.max_speed)
            )
        if not 0.0 <= self.tolerance_s <= 1.0:
            template = "tolerance_s must be between 0 and 1 s, got {value:g}"
            raise ValueError(Message("fit.err.tolerance", template, value=self.tolerance_s))


@dataclass(frozen=True)
class FitReport:
    """How one cue was fitted."""

    # Index of the line (cue) in the script.
    line: int
    # The cue's slot, seconds.
    slot: float
    # The speech produced, seconds.
    duration: float
    # The speed it was spoken at.
    speed: float
    # True when the speech ends within its slot (plus the tolerance).
    fits: bool

    @property
    def overflow(self) -> float:
        """Seconds the speech runs past its slot (0 when it fits)."""
        return max(0.0, self.duration - self.slot)


def next_speed(duration: float, slot: float, speed: float, options: FitOptions) -> float | None:
    """The speed of the next attempt, or None when the line fits or cannot go faster.

    ``duration``: seconds of speech at ``speed``; ``slot``: seconds available.
    """
    if duration <= slot + options.tolerance_s or speed >= options.max_speed:
        return None
    wanted = speed * duration / slot * (1.0 + SPEED_MARGIN)
    return min(options.max_speed, wanted)
