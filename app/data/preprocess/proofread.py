"""The audio side of proofreading: clip durations, and merging or splitting clips on disk.

:mod:`app.data.labeling` decides what the rows become and plans the audio; this module writes the
new clips with :func:`app.audio.save_audio` and only then returns the new rows, so a failure
leaves the list untouched. New clips go next to their source with a fresh name; source clips are
never overwritten, which keeps :class:`~app.data.labeling.EditHistory` undo truthful.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from app.audio import AudioError, audio_info, load_audio, save_audio
from app.data.audio_place import AudioPathError, AudioPlace
from app.data.filelist import ListRow, listed_name
from app.data.labeling import EditError, MergeEdit, MergePlan, SplitEdit, SplitPlan, plan_merge, plan_split
from app.messages import Message
from app.paths import fit_file_name

__all__ = [
    "AudioPlace",
    "clip_durations",
    "merge_rows",
    "missing_audio",
    "split_row",
    "write_merge",
    "write_split",
]

logger = logging.getLogger(__name__)


def clip_durations(rows: Sequence[ListRow], place: AudioPlace = AudioPlace()) -> dict[str, float]:
    """Seconds of audio per row ``wav_path``, read from file headers; unreadable clips are left out."""
    durations: dict[str, float] = {}
    for row in rows:
        try:
            durations[row.wav_path] = audio_info(place.path(row)).duration
        except (AudioError, AudioPathError) as exc:
            logger.warning("no duration for %s: %s", row.wav_path, exc)
    return durations


def missing_audio(rows: Sequence[ListRow], place: AudioPlace = AudioPlace()) -> tuple[int, ...]:
    """Indices of rows whose audio file does not exist (or lies outside the place)."""
    return tuple(i for i, row in enumerate(rows) if not _exists(place, row))


def _exists(place: AudioPlace, listed: ListRow | str) -> bool:
    try:
        return place.path(listed).exists()
    except AudioPathError:
        return False


def _sibling(listed: str, new_name: str) -> str:
    """``listed`` with its file name replaced, keeping the list's own path style."""
    name = listed_name(listed)
    return listed[: len(listed) - len(name)] + new_name


def _fresh_names(
    listed: str, suffixes: Sequence[str], rows: Sequence[ListRow], place: AudioPlace
) -> list[str]:
    """New listed paths ``<stem><suffix>.wav`` beside ``listed``, unused by rows and not on disk.

    A long stem is shortened (:func:`app.paths.fit_file_name`) so the new name still fits.
    """
    stem = Path(listed_name(listed)).stem
    used = {r.wav_path for r in rows}
    counter = 0
    while True:
        tag = f"-{counter}" if counter else ""
        names = [_sibling(listed, fit_file_name(stem, f"{suffix}{tag}.wav")) for suffix in suffixes]
        if not any(n in used or _exists(place, n) for n in names):
            return names
        counter += 1


def _load(place: AudioPlace, listed: str, sr: int | None = None) -> tuple[np.ndarray, int]:
    path = place.path(listed)
    rate = sr or audio_info(path).sample_rate
    return load_audio(path, rate, allow_silent=True), rate


def write_merge(plan: MergePlan, place: AudioPlace = AudioPlace()) -> Path:
    """Write the merged clip of ``plan`` (at the first clip's sample rate) and return its file."""
    first, rate = _load(place, plan.sources[0])
    gap = np.zeros(round(plan.gap_s * rate), dtype=np.float32)
    pieces = [first]
    for listed in plan.sources[1:]:
        wav, _ = _load(place, listed, rate)
        pieces += [gap, wav]
    return save_audio(place.path(plan.target), np.concatenate(pieces), rate)


def write_split(plan: SplitPlan, place: AudioPlace = AudioPlace()) -> tuple[Path, Path]:
    """Write the two parts of ``plan`` and return their files."""
    wav, rate = _load(place, plan.source)
    cut = round(plan.at_s * rate)
    if not 0 < cut < len(wav):
        template = "{file}: split point {at:.2f} s is outside the clip"
        raise EditError(Message("proof.err.split_point", template, file=plan.source, at=plan.at_s))
    first = save_audio(place.path(plan.first), wav[:cut], rate)
    second = save_audio(place.path(plan.second), wav[cut:], rate)
    return first, second


def _problem(exc: Exception) -> str:
    """``exc``'s text, its Message kept when it has one (the page translates it)."""
    return exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)


def merge_rows(
    rows: Sequence[ListRow], indices: Sequence[int], gap_s: float, place: AudioPlace = AudioPlace()
) -> MergeEdit:
    """Merge adjacent rows: write ``<first stem>_merged.wav`` beside the first clip, return the new rows."""
    ordered = sorted(set(indices))
    anchor = rows[ordered[0]].wav_path if ordered and 0 <= ordered[0] < len(rows) else None
    # The target name only matters once plan_merge has accepted the selection.
    target = _fresh_names(anchor, ["_merged"], rows, place)[0] if anchor else "merged.wav"
    edited = plan_merge(rows, ordered, gap_s, target)
    for listed in edited.plan.sources:
        if not _exists(place, listed):
            template = "audio file {file} not found (or outside the data folder); cannot merge"
            raise EditError(Message("proof.err.merge_missing", template, file=listed))
    try:
        written = write_merge(edited.plan, place)
    except AudioPathError as exc:
        raise EditError(
            Message("proof.err.merge", "cannot merge: {problem}", problem=_problem(exc))
        ) from None
    logger.info("merged %d clips into %s", len(ordered), written)
    return edited


def split_row(
    rows: Sequence[ListRow],
    index: int,
    at_s: float,
    place: AudioPlace = AudioPlace(),
    texts: tuple[str, str] | None = None,
) -> SplitEdit:
    """Split row ``index`` at ``at_s`` seconds into ``<stem>_part1.wav`` and ``<stem>_part2.wav``."""
    if not 0 <= index < len(rows):
        template = "row {index} does not exist; the list has {count} rows"
        raise EditError(Message("proof.err.no_row", template, index=index, count=len(rows)))
    row = rows[index]
    try:
        path = place.path(row)
        duration = audio_info(path).duration
    except (AudioError, AudioPathError) as exc:
        template = "row {index}: cannot split: {problem}"
        raise EditError(
            Message("proof.err.split_row", template, index=index, problem=_problem(exc))
        ) from None
    targets = _fresh_names(row.wav_path, ["_part1", "_part2"], rows, place)
    edited = plan_split(rows, index, at_s, duration, (targets[0], targets[1]), texts)
    try:
        write_split(edited.plan, place)
    except AudioPathError as exc:
        raise EditError(
            Message("proof.err.split", "cannot split: {problem}", problem=_problem(exc))
        ) from None
    logger.info("split %s at %.2f s", path, at_s)
    return edited
