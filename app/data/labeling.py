"""Proofreading edits on the rows of a ``.list``: pure functions over tuples of :class:`ListRow`.

Nothing here touches the file system. Edits that change audio (merging neighbours, splitting a
clip) return a *plan* saying which files to read and write; the workflow
:mod:`app.data.preprocess.proofread` carries it out and only then applies the new rows, so a
failed audio write leaves the rows as they were. Plans always write *new* files and never
overwrite a source clip (upstream's tool overwrites the first clip in place), so undoing a merge
or split restores rows whose audio is still on disk.

:class:`EditHistory` holds the current rows and the earlier states for undo.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from app.data.filelist import FileListError, ListRow
from app.messages import Message

Rows = tuple[ListRow, ...]
# Languages written without spaces between words: merged texts are joined without a separator.
_UNSPACED_LANGUAGES = frozenset({"zh", "ja", "yue"})
_LINE_BREAKS = re.compile(r"\s*[\r\n]+\s*")
# Undo depth; older states are forgotten.
DEFAULT_UNDO_LIMIT = 200


class EditError(ValueError):
    """An edit that cannot be applied (bad index, rows that cannot be merged, split point outside)."""


def _listed(indices: Sequence[int]) -> str:
    """Row indices as a message shows them: ``"3, 4, 5"``."""
    return ", ".join(str(i) for i in indices)


def _check_index(rows: Sequence[ListRow], index: int) -> None:
    if not 0 <= index < len(rows):
        template = "row {index} does not exist; the list has {count} rows (0-{last})"
        raise EditError(Message("edit.no_row", template, index=index, count=len(rows), last=len(rows) - 1))


def retext(rows: Sequence[ListRow], index: int, text: str) -> Rows:
    """Replace the text of row ``index``."""
    _check_index(rows, index)
    if not text.strip():
        raise EditError(
            Message(
                "edit.empty_text",
                "row {index}: the text cannot be empty; delete the row instead",
                index=index,
            )
        )
    if "|" in text:
        # Our reader keeps it, but upstream's dataset step splits on every "|" and would skip the row.
        template = "row {index}: the text must not contain '|' (upstream reads it as a field separator)"
        raise EditError(Message("edit.separator", template, index=index))
    try:
        # A pasted multi-line transcript becomes one line: the format has one row per line.
        new = rows[index].with_text(_LINE_BREAKS.sub(" ", text))
    except FileListError as exc:
        raise EditError(_row_problem(index, exc)) from None
    return (*rows[:index], new, *rows[index + 1 :])


def _row_problem(index: int, exc: Exception) -> Message:
    """``exc``'s message (kept, for translation) said of row ``index``."""
    return Message("edit.row_problem", "row {index}: {problem}", index=index, problem=exc.args[0])


def relang(rows: Sequence[ListRow], index: int, language: str) -> Rows:
    """Change the language of row ``index`` (an id such as ``ja`` or an upstream code such as ``JP``)."""
    _check_index(rows, index)
    try:
        new = rows[index].with_language(language)
    except FileListError as exc:
        raise EditError(_row_problem(index, exc)) from None
    return (*rows[:index], new, *rows[index + 1 :])


def delete(rows: Sequence[ListRow], indices: Sequence[int]) -> Rows:
    """Remove the rows at ``indices`` from the list (their audio files stay on disk)."""
    if not indices:
        raise EditError(Message("edit.none_selected", "no rows selected to delete"))
    for index in indices:
        _check_index(rows, index)
    gone = set(indices)
    return tuple(row for i, row in enumerate(rows) if i not in gone)


def join_texts(texts: Sequence[str], language: str) -> str:
    """Join transcripts of consecutive clips: no separator for zh/ja/yue, one space otherwise."""
    sep = "" if language in _UNSPACED_LANGUAGES else " "
    return sep.join(t.strip() for t in texts if t.strip())


@dataclass(frozen=True)
class MergePlan:
    """Join the audio of consecutive rows into one new clip."""

    sources: tuple[str, ...]  # audio paths of the merged rows, in order (as written in the list)
    gap_s: float  # seconds of silence inserted between consecutive clips
    target: str  # path of the new clip (as it will be written in the list)


@dataclass(frozen=True)
class SplitPlan:
    """Cut one clip into two new clips at a time."""

    source: str  # audio path of the row being split (as written in the list)
    at_s: float  # seconds from the start where the second part begins
    first: str  # path of the new clip holding [0, at_s)
    second: str  # path of the new clip holding [at_s, end)


@dataclass(frozen=True)
class MergeEdit:
    """Rows after a merge and the audio that must be written for them to be true."""

    rows: Rows  # the list after the merge
    plan: MergePlan  # the merged clip to write first


@dataclass(frozen=True)
class SplitEdit:
    """Rows after a split and the audio that must be written for them to be true."""

    rows: Rows  # the list after the split
    plan: SplitPlan  # the two clips to write first


def plan_merge(rows: Sequence[ListRow], indices: Sequence[int], gap_s: float, target: str) -> MergeEdit:
    """Merge consecutive rows ``indices`` into one row whose audio will be ``target``.

    The rows must be adjacent, of one speaker and one language. The merged row takes the first
    row's place; its text joins the texts (see :func:`join_texts`).
    """
    ordered = sorted(set(indices))
    if len(ordered) < 2:
        raise EditError(Message("edit.merge_two", "select at least two adjacent rows to merge"))
    for index in ordered:
        _check_index(rows, index)
    if ordered != list(range(ordered[0], ordered[-1] + 1)):
        template = "rows {rows} are not adjacent; only neighbouring rows can be merged"
        raise EditError(Message("edit.not_adjacent", template, rows=_listed(ordered)))
    if not 0.0 <= gap_s <= 10.0:
        raise EditError(Message("edit.gap", "gap {gap} s is outside 0-10 s", gap=gap_s))
    chosen = [rows[i] for i in ordered]
    if len({r.speaker for r in chosen}) > 1:
        template = "rows {rows} belong to different speakers; fix the speaker names first"
        raise EditError(Message("edit.speakers", template, rows=_listed(ordered)))
    if len({r.language for r in chosen}) > 1:
        template = "rows {rows} have different languages; set one language first"
        raise EditError(Message("edit.languages", template, rows=_listed(ordered)))
    if target in {r.wav_path for r in rows}:
        template = "{target} is already used by a row; choose a new file for the merged clip"
        raise EditError(Message("edit.target_used", template, target=target))
    first = chosen[0]
    merged = replace(first, wav_path=target, text=join_texts([r.text for r in chosen], first.language))
    new_rows = (*rows[: ordered[0]], merged, *rows[ordered[-1] + 1 :])
    plan = MergePlan(tuple(r.wav_path for r in chosen), float(gap_s), target)
    return MergeEdit(new_rows, plan)


def plan_split(
    rows: Sequence[ListRow],
    index: int,
    at_s: float,
    duration_s: float,
    targets: tuple[str, str],
    texts: tuple[str, str] | None = None,
) -> SplitEdit:
    """Split row ``index`` (a clip of ``duration_s`` seconds) at ``at_s`` into two new clips.

    ``targets`` are the paths of the two parts. Each part keeps the row's speaker and language;
    its text is ``texts`` when given, otherwise the whole text (to be corrected by the user, as the
    split point in the text cannot be known from the audio alone).
    """
    _check_index(rows, index)
    if not 0.0 < at_s < duration_s:
        template = "row {index}: split point {at:.2f} s must lie inside the clip (0-{duration:.2f} s)"
        raise EditError(Message("edit.split_point", template, index=index, at=at_s, duration=duration_s))
    used = {r.wav_path for r in rows}
    if targets[0] == targets[1] or used & set(targets):
        template = "row {index}: split targets {targets} must be two new, different files"
        raise EditError(Message("edit.split_targets", template, index=index, targets=", ".join(targets)))
    row = rows[index]
    first_text, second_text = texts if texts is not None else (row.text, row.text)
    try:
        parts = (
            replace(row, wav_path=targets[0]).with_text(first_text),
            replace(row, wav_path=targets[1]).with_text(second_text),
        )
    except FileListError as exc:
        raise EditError(_row_problem(index, exc)) from None
    plan = SplitPlan(row.wav_path, float(at_s), targets[0], targets[1])
    return SplitEdit((*rows[:index], *parts, *rows[index + 1 :]), plan)


def filter_rows(
    rows: Sequence[ListRow],
    text: str = "",
    min_s: float | None = None,
    max_s: float | None = None,
    durations: Mapping[str, float] | None = None,
) -> tuple[int, ...]:
    """Indices of rows whose text contains ``text`` (case-insensitive) and whose duration is in range.

    ``durations`` maps a row's ``wav_path`` to seconds; a row with no known duration passes a
    duration filter only when no bound is set (it is shown, so unreadable audio is not hidden).
    """
    needle = text.strip().casefold()
    keep = []
    for i, row in enumerate(rows):
        if needle and needle not in row.text.casefold():
            continue
        if min_s is not None or max_s is not None:
            seconds = (durations or {}).get(row.wav_path)
            if seconds is None:
                continue
            if min_s is not None and seconds < min_s:
                continue
            if max_s is not None and seconds > max_s:
                continue
        keep.append(i)
    return tuple(keep)


@dataclass(frozen=True)
class EditHistory:
    """Current rows plus earlier states for undo; every method returns a new history."""

    rows: Rows  # the list as it is now
    past: tuple[tuple[str, Rows], ...] = ()  # (what the edit did, rows before it), oldest first
    limit: int = DEFAULT_UNDO_LIMIT  # most undo steps kept

    def apply(self, rows: Sequence[ListRow], label: str) -> EditHistory:
        """Record an edit that turned the current rows into ``rows``; a no-op is not recorded."""
        rows = tuple(rows)
        if rows == self.rows:
            return self
        past = (*self.past, (label, self.rows))[-self.limit :]
        return replace(self, rows=rows, past=past)

    @property
    def can_undo(self) -> bool:
        return bool(self.past)

    @property
    def last_edit(self) -> str | None:
        """Description of the edit :meth:`undo` would revert."""
        return self.past[-1][0] if self.past else None

    def undo(self) -> EditHistory:
        """Go back one edit. Raises :class:`EditError` when there is nothing to undo."""
        if not self.past:
            raise EditError(Message("edit.nothing_to_undo", "nothing to undo"))
        _, rows = self.past[-1]
        return replace(self, rows=rows, past=self.past[:-1])
