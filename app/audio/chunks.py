"""Cut a long recording into pieces a model can take, and put the results back together.

Conversion models need memory that grows with the input (attention is quadratic in length), so a
song is processed in pieces of bounded length:

1. voiced stretches come from the silence slicer (:func:`app.audio.slicer.find_segments`); the
   quiet gaps between them become silence in the output (so-vits-svc 4.1 does the same);
2. a stretch longer than ``max_samples`` is split into pieces of at most that length that overlap
   by ``overlap`` samples (an unbroken song never reaches the model whole);
3. :class:`OverlapAdd` writes each converted piece at its place, cross-fading linearly inside
   the overlaps, so the weights of neighbouring pieces sum to one there.

Piece boundaries are multiples of ``align`` samples (the model's hop), so frame grids line up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.audio.slicer import Segment


@dataclass(frozen=True)
class Piece:
    """``wav[start:end]``, with ``fade_in``/``fade_out`` samples shared with the neighbouring pieces."""

    start: int
    end: int
    fade_in: int = 0  # overlap with the previous piece of the same stretch
    fade_out: int = 0  # overlap with the next piece

    @property
    def length(self) -> int:
        return self.end - self.start


def _align_down(x: int, align: int) -> int:
    return x - x % align


def plan_pieces(
    segments: Sequence[Segment], max_samples: int, overlap: int, *, align: int = 1, total: int | None = None
) -> list[Piece]:
    """Pieces covering ``segments``, each at most ``max_samples`` long (see module doc).

    Args:
        segments: voiced stretches in samples, in order.
        max_samples: longest piece (> ``overlap``).
        overlap: samples shared by consecutive pieces of one stretch (cross-fade length).
        align: piece starts are multiples of this; ends too, except at the end of the audio.
        total: length of the audio (ends are clipped to it).
    """
    if overlap < 0 or max_samples <= overlap:
        raise ValueError(f"the longest piece ({max_samples} samples) must exceed the overlap ({overlap})")
    max_samples = max(align, _align_down(max_samples, align))
    overlap = _align_down(overlap, align)
    step = max_samples - overlap
    if step <= 0:
        raise ValueError("the overlap leaves no room for progress; lower it or raise the piece length")
    pieces = []
    for seg in segments:
        start = _align_down(seg.start, align)
        end = seg.end if total is None else min(seg.end, total)
        if end <= start:
            continue
        fade_in = 0
        while True:
            stop = start + max_samples
            if stop >= end:
                pieces.append(Piece(start, end, fade_in, 0))
                break
            pieces.append(Piece(start, stop, fade_in, overlap))
            start, fade_in = start + step, overlap
    return pieces


class OverlapAdd:
    """Accumulates converted pieces into one output of ``total`` samples (module doc, step 3)."""

    def __init__(self, total: int, channels: int = 1) -> None:
        self.out = np.zeros((total,) if channels == 1 else (total, channels), dtype=np.float32)

    def add(self, piece: Piece, audio: np.ndarray) -> None:
        """Place ``audio`` (the converted ``piece``, ``piece.length`` samples) with its cross-fades."""
        audio = np.asarray(audio, dtype=np.float32)
        n = piece.length
        if len(audio) < n:
            audio = np.pad(audio, [(0, n - len(audio))] + [(0, 0)] * (audio.ndim - 1))
        audio = audio[:n].copy()
        weights = np.ones(n, dtype=np.float32)
        if piece.fade_in:
            weights[: piece.fade_in] = np.linspace(0.0, 1.0, piece.fade_in, endpoint=False, dtype=np.float32)
        if piece.fade_out:
            weights[n - piece.fade_out :] = np.linspace(
                1.0, 0.0, piece.fade_out, endpoint=False, dtype=np.float32
            )
        if audio.ndim == 2:
            weights = weights[:, None]
        end = min(piece.end, len(self.out))
        self.out[piece.start : end] += (audio * weights)[: end - piece.start]
