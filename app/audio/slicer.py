"""RMS silence slicer: cut long recordings into clips at quiet places.

Same behaviour and defaults as upstream GPT-SoVITS's slicer (``tools/slicer2.py``, the openvpi
audio-slicer, driven by ``tools/slice_audio.py``): frame RMS on a centred window, a cut wherever a
quiet stretch is long enough and the clip so far is long enough, at most ``max_sil_kept`` of silence
kept on each side, the quietest frame chosen as the cut point. Then each clip is mixed with a
peak-normalised copy of itself (``peak`` / ``alpha``). Our own implementation: runs of silence are
found with numpy instead of a per-frame Python loop.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from app.messages import Message


class SlicerOptionsError(ValueError):
    """Slicer parameters that cannot work together."""


@dataclass(frozen=True)
class SlicerOptions:
    """Slicer parameters; defaults are upstream GPT-SoVITS's web UI defaults."""

    # Frames whose RMS is below this level (dBFS) are candidate cut points.
    threshold_db: float = -34.0
    # Minimum clip length in ms; a shorter piece is joined with what follows it.
    min_length_ms: int = 4000
    # Shortest silence (ms) that may separate two clips.
    min_interval_ms: int = 300
    # RMS frame hop in ms (smaller: finer cut positions, more work).
    hop_ms: int = 10
    # Most silence (ms) kept at each side of a cut.
    max_sil_kept_ms: int = 500
    # Upstream "max": peak of the normalised part of each clip, in (0, 1].
    peak: float = 0.9
    # Upstream "alpha_mix": share of the peak-normalised clip mixed with the original (1 - alpha).
    alpha: float = 0.25

    def __post_init__(self) -> None:
        if self.hop_ms <= 0:
            template = "hop size must be positive, got {hop} ms"
            raise SlicerOptionsError(Message("slicer.err.hop", template, hop=self.hop_ms))
        if not self.min_length_ms >= self.min_interval_ms >= self.hop_ms:
            template = (
                "slicer settings must satisfy min_length >= min_interval >= hop size; got "
                "min_length={length} ms, min_interval={interval} ms, hop={hop} ms"
            )
            said = Message(
                "slicer.err.order",
                template,
                length=self.min_length_ms,
                interval=self.min_interval_ms,
                hop=self.hop_ms,
            )
            raise SlicerOptionsError(said)
        if self.max_sil_kept_ms < self.hop_ms:
            template = "max_sil_kept ({kept} ms) must be at least the hop size ({hop} ms)"
            raise SlicerOptionsError(
                Message("slicer.err.kept", template, kept=self.max_sil_kept_ms, hop=self.hop_ms)
            )
        if not np.isfinite(self.threshold_db) or self.threshold_db > 0:
            template = "threshold must be a level in dBFS at or below 0, got {threshold}"
            raise SlicerOptionsError(Message("slicer.err.threshold", template, threshold=self.threshold_db))
        if not 0.0 < self.peak <= 1.0:
            raise SlicerOptionsError(
                Message("slicer.err.peak", "peak (max) must be in (0, 1], got {peak}", peak=self.peak)
            )
        if not 0.0 <= self.alpha <= 1.0:
            raise SlicerOptionsError(
                Message("slicer.err.alpha", "alpha must be in [0, 1], got {alpha}", alpha=self.alpha)
            )


@dataclass(frozen=True)
class Segment:
    """A clip's place in the source, in samples: ``wav[start:end]``."""

    start: int
    end: int


@dataclass(frozen=True)
class _Frames:
    """Options converted to frame counts at one sample rate (upstream's rounding)."""

    hop: int  # samples per RMS frame
    win: int  # RMS window in samples
    min_length: int  # frames
    min_interval: int  # frames
    max_sil_kept: int  # frames
    threshold: float  # linear RMS

    @classmethod
    def at(cls, opts: SlicerOptions, sr: int) -> _Frames:
        hop = round(sr * opts.hop_ms / 1000)
        interval = sr * opts.min_interval_ms / 1000  # samples
        return cls(
            hop=hop,
            # The window never spans more than the shortest silence that counts, nor 4 hops.
            win=min(round(interval), 4 * hop),
            min_length=round(sr * opts.min_length_ms / 1000 / hop),
            min_interval=round(interval / hop),
            max_sil_kept=round(sr * opts.max_sil_kept_ms / 1000 / hop),
            threshold=10 ** (opts.threshold_db / 20.0),
        )


def frame_rms(wav: np.ndarray, win: int, hop: int) -> np.ndarray:
    """RMS per frame, frames centred on ``k * hop`` with zero padding (librosa ``feature.rms``).

    ``wav`` shape ``(T,)`` -> shape ``(1 + T // hop,)`` for even ``win``.
    """
    padded = np.pad(np.square(wav.astype(np.float64)), win // 2)
    # (frames, win) view without copying; summing each window directly (rather than differencing a
    # running sum) keeps digital silence at exactly 0, so the quietest-frame choice is exact.
    windows = np.lib.stride_tricks.sliding_window_view(padded, win)[::hop]
    return np.sqrt(windows.mean(axis=1))


def _argmin(rms: np.ndarray, lo: int, hi: int) -> int:
    """Index of the quietest frame in ``rms[lo:hi]`` (upstream slices past the end the same way)."""
    return int(np.argmin(rms[lo:hi])) + lo


def _silence_runs(quiet: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) frame of each run of ``True`` in ``quiet``."""
    edges = np.diff(np.concatenate(([0], quiet.astype(np.int8), [0])))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _cut_ranges(rms: np.ndarray, f: _Frames) -> list[tuple[int, int]]:
    """Frame ranges of silence to remove, in order (upstream's ``sil_tags``)."""
    total = len(rms)
    keep = f.max_sil_kept
    cuts: list[tuple[int, int]] = []
    clip_start = 0
    starts, ends = _silence_runs(rms < f.threshold)
    for s, i in zip(starts.tolist(), ends.tolist(), strict=True):
        if i == total:  # trailing silence: handled below
            break
        leading = s == 0 and i > keep
        long_enough = i - s >= f.min_interval and i - clip_start >= f.min_length
        if not (leading or long_enough):
            continue
        if i - s <= keep:
            # Short silence: one cut point at its quietest frame.
            pos = _argmin(rms, s, i + 1)
            cuts.append((0, pos) if s == 0 else (pos, pos))
            clip_start = pos
        elif i - s <= 2 * keep:
            # Medium silence: keep up to `keep` frames on each side, cut at the quietest points.
            pos = _argmin(rms, i - keep, s + keep + 1)
            pos_l = _argmin(rms, s, s + keep + 1)
            pos_r = _argmin(rms, i - keep, i + 1)
            if s == 0:
                cuts.append((0, pos_r))
                clip_start = pos_r
            else:
                cuts.append((min(pos_l, pos), max(pos_r, pos)))
                clip_start = max(pos_r, pos)
        else:
            # Long silence: drop its middle, keeping the quietest points near each edge.
            pos_l = _argmin(rms, s, s + keep + 1)
            pos_r = _argmin(rms, i - keep, i + 1)
            cuts.append((0, pos_r) if s == 0 else (pos_l, pos_r))
            clip_start = pos_r
    if len(starts) and ends[-1] == total and total - starts[-1] >= f.min_interval:
        s = int(starts[-1])
        pos = _argmin(rms, s, min(total, s + keep) + 1)
        cuts.append((pos, total + 1))
    return cuts


def find_segments(wav: np.ndarray, sr: int, options: SlicerOptions | None = None) -> list[Segment]:
    """Where to cut ``wav`` (float, shape ``(T,)``): the clips to keep, in order, in samples."""
    opts = options or SlicerOptions()
    if wav.ndim != 1:
        template = "expected mono audio of shape (T,), got shape {shape}"
        raise ValueError(Message("slicer.err.shape", template, shape=str(wav.shape)))
    if len(wav) == 0:
        return []
    f = _Frames.at(opts, sr)
    if f.hop < 1 or f.win < 1:
        template = "hop size {hop} ms is below one sample at {rate} Hz"
        raise SlicerOptionsError(Message("slicer.err.hop_rate", template, hop=opts.hop_ms, rate=sr))
    rms = frame_rms(wav, f.win, f.hop)
    total = len(rms)
    cuts = _cut_ranges(rms, f)
    frames = []
    if not cuts:
        frames.append((0, total))
    else:
        if cuts[0][0] > 0:
            frames.append((0, cuts[0][0]))
        frames += [(a[1], b[0]) for a, b in itertools.pairwise(cuts)]
        if cuts[-1][1] < total:
            frames.append((cuts[-1][1], total))
    segments = []
    for a, b in frames:
        start, end = min(a * f.hop, len(wav)), min(b * f.hop, len(wav))
        if end > start:
            segments.append(Segment(start, end))
    return segments


def normalize_clip(clip: np.ndarray, peak: float = 0.9, alpha: float = 0.25) -> np.ndarray:
    """Mix ``clip`` with a copy scaled to ``peak``: ``clip/max|clip| * peak * alpha + (1 - alpha) * clip``.

    A clip louder than full scale is first brought to a peak of 1. (Upstream divides it by its peak
    twice in that case, leaving it quieter than intended; here the second division uses the new peak.)
    A fully silent clip is returned unchanged instead of turning into NaN.
    """
    clip = np.asarray(clip, dtype=np.float32)
    top = float(np.abs(clip).max(initial=0.0))
    if top > 1.0:
        clip = clip / top
        top = 1.0
    if top == 0.0:
        return clip.copy()
    return (clip / top * (peak * alpha) + (1.0 - alpha) * clip).astype(np.float32)


def slice_audio(
    wav: np.ndarray, sr: int, options: SlicerOptions | None = None
) -> list[tuple[Segment, np.ndarray]]:
    """Cut ``wav`` at silences and normalise each clip; returns ``(segment, clip)`` pairs."""
    opts = options or SlicerOptions()
    return [
        (seg, normalize_clip(wav[seg.start : seg.end], opts.peak, opts.alpha))
        for seg in find_segments(wav, sr, opts)
    ]
