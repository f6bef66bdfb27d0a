"""State of one proofreading session in the Label tab, without any gradio.

A :class:`ProofSession` is an immutable value kept in a ``gr.State``: the opened list, the edit
history, the lines that could not be read (kept and written back), the filter and the page shown.
Every action first takes in what the page's text boxes and language menus show
(:func:`sync_page`), so no edit is lost by paging, filtering or saving (upstream's proofreading tool
rolls back text that was not "submitted" before paging).

Paths from the browser are confined to the data folder: the list, the audio folder, and every clip
played or written. Lines whose audio path leads outside (``..``, absolute, symbolic links, Windows
drive or share paths without an audio folder) are not rows: they are reported with the unreadable
lines and written back unchanged. Rows sharing a clip name are reported too (they stay editable).
The report groups issues by kind with counts and the first line numbers, however long the list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from app.data.audio_place import AudioPathError, AudioPlace, locate_rows
from app.data.filelist import (
    LANGUAGE_CODES,
    FileListError,
    IssueGroup,
    LineError,
    ListRow,
    duplicate_names,
    group_issues,
    read_list,
    write_list,
)
from app.data.labeling import EditError, EditHistory, delete, filter_rows, relang, retext
from app.data.preprocess.proofread import clip_durations, merge_rows, split_row
from app.messages import Message
from app.paths import PathOutsideRoot, resolve_inside
from app.ui.messages import render, say, term

PAGE_SIZE = 10  # rows per page (upstream's proofreading tool shows 10 too)
DETAIL_LINES = 20  # issues listed one by one under the per-kind summary


class SessionError(ValueError):
    """An action the user asked for cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class ProofSession:
    """One opened ``.list`` being proofread."""

    home: Path  # data folder; every path used must stay inside it
    list_path: Path | None = None  # the opened .list (None before one is opened)
    place: AudioPlace = field(default_factory=AudioPlace)  # how listed audio paths map to files
    history: EditHistory = field(
        default_factory=lambda: EditHistory(())
    )  # rows now, and earlier states for undo
    saved: tuple[ListRow, ...] = ()  # rows as last read or saved, to tell unsaved changes
    bad_lines: tuple[LineError, ...] = ()  # lines that are not rows: shown, and written back unchanged
    notices: tuple[LineError, ...] = ()  # issues of rows kept (repeated clip names), as found on opening
    durations: Mapping[str, float] = field(default_factory=dict)  # wav_path -> seconds
    query: str = ""  # text filter
    min_s: float | None = None  # duration filter, seconds
    max_s: float | None = None
    page: int = 0  # 0-based page of the filtered rows
    shown: tuple[int, ...] = ()  # row indices in the page's slots, top to bottom
    discard_request: tuple[str, str] | None = (
        None  # (list, audio folder) asked for while changes were unsaved
    )

    @property
    def rows(self) -> tuple[ListRow, ...]:
        return self.history.rows

    @property
    def unsaved(self) -> bool:
        return self.rows != self.saved

    @property
    def visible(self) -> tuple[int, ...]:
        """Indices of the rows passing the filter."""
        return filter_rows(self.rows, self.query, self.min_s, self.max_s, self.durations)

    @property
    def pages(self) -> int:
        return max(1, -(-len(self.visible) // PAGE_SIZE))


def _inside(path: str | Path, home: Path, what: str) -> Path:
    """``path`` inside the data folder; ``what`` is the key naming it ("label.what.list")."""
    try:
        return resolve_inside(path, home)
    except PathOutsideRoot as exc:
        raise SessionError(say("label.err.where", what=say(what), problem=render(exc.args[0]))) from None


def open_list(home: Path, list_path: str, audio_dir: str = "") -> ProofSession:
    """Open ``list_path`` (relative to the data folder, or absolute inside it)."""
    if not list_path.strip():
        raise SessionError(say("label.err.no_list"))
    path = _inside(list_path.strip(), home, "label.what.list")
    if path.suffix != ".list":
        raise SessionError(say("label.err.not_list", file=str(path)))
    folder = _inside(audio_dir.strip(), home, "label.what.audio") if audio_dir.strip() else None
    try:
        parsed = read_list(path)
    except FileListError as exc:
        raise SessionError(exc.args[0]) from None
    place = AudioPlace(audio_dir=folder, base=path.parent, root=Path(home))
    located = locate_rows(parsed.rows, parsed.line_numbers, place)
    session = ProofSession(
        home=Path(home),
        list_path=path,
        place=place,
        history=EditHistory(located.rows),
        saved=located.rows,
        bad_lines=tuple(sorted(parsed.errors + located.refused, key=lambda e: e.line_no)),
        notices=duplicate_names(located.rows, located.line_numbers),
    )
    return show_page(_measure(session), 0)


def open_or_warn(current: ProofSession, list_path: str, audio_dir: str = "") -> tuple[ProofSession, str]:
    """Open a list, unless that would drop unsaved changes: then warn, and open on the second request."""
    request = (list_path.strip(), audio_dir.strip())
    if current.unsaved and current.discard_request != request:
        name = current.list_path.name if current.list_path else say("label.what.list")
        note = say("label.unsaved_warn", name=name)
        return replace(current, discard_request=request), note
    return open_list(current.home, list_path, audio_dir), ""


def _measure(session: ProofSession) -> ProofSession:
    """Durations of rows whose clip is inside the data folder and not measured yet."""
    todo = [r for r in session.rows if r.wav_path not in session.durations and audio_file(session, r)]
    if not todo:
        return session
    return replace(session, durations={**session.durations, **clip_durations(todo, session.place)})


def audio_file(session: ProofSession, row: ListRow) -> Path | None:
    """The clip of ``row`` when it exists inside the data folder, else None (never played or written)."""
    try:
        path = resolve_inside(session.place.locate(row), session.home)
    except (AudioPathError, PathOutsideRoot):
        return None
    return path if path.is_file() else None


def show_page(session: ProofSession, page: int) -> ProofSession:
    """Show page ``page`` (clamped) of the filtered rows."""
    visible = session.visible
    page = min(max(0, page), max(0, -(-len(visible) // PAGE_SIZE) - 1))
    return replace(session, page=page, shown=visible[page * PAGE_SIZE : (page + 1) * PAGE_SIZE])


def set_filter(session: ProofSession, query: str, min_s: float | None, max_s: float | None) -> ProofSession:
    if min_s is not None and max_s is not None and min_s > max_s:
        raise SessionError(say("label.err.min_max", low=min_s, high=max_s))
    return show_page(replace(session, query=query or "", min_s=min_s, max_s=max_s), 0)


def sync_page(session: ProofSession, texts: Sequence[str], languages: Sequence[str]) -> ProofSession:
    """Take in the text and language shown in each slot; each change is one undo step."""
    history = session.history
    for slot, index in enumerate(session.shown):
        row = history.rows[index]
        text = (texts[slot] or "").strip() if slot < len(texts) else row.text
        if text != row.text:
            try:
                edit = Message("label.edit.text", "edit text of row {row}", row=index + 1)
                history = history.apply(retext(history.rows, index, text), edit)
            except EditError as exc:
                raise SessionError(exc.args[0]) from None
        language = languages[slot] if slot < len(languages) else row.language
        if language and language != row.language:
            edit = Message("label.edit.language", "language of row {row}", row=index + 1)
            history = history.apply(relang(history.rows, index, language), edit)
    return replace(session, history=history)


def selected(session: ProofSession, checks: Sequence[bool]) -> list[int]:
    """Row indices ticked in the page's slots."""
    return [index for slot, index in enumerate(session.shown) if slot < len(checks) and checks[slot]]


def _after_edit(session: ProofSession, history: EditHistory) -> ProofSession:
    return show_page(_measure(replace(session, history=history)), session.page)


def delete_rows(session: ProofSession, indices: Sequence[int]) -> ProofSession:
    if not indices:
        raise SessionError(say("label.err.tick_delete"))
    label = Message("label.edit.delete", "delete rows {rows}", rows=_numbers(indices))
    return _after_edit(session, session.history.apply(delete(session.rows, indices), label))


def _require_audio(session: ProofSession, indices: Sequence[int]) -> None:
    for index in indices:
        if audio_file(session, session.rows[index]) is None:
            raise SessionError(say("label.err.row_audio", row=index + 1, file=session.rows[index].wav_path))


def merge_selected(session: ProofSession, indices: Sequence[int], gap_s: float) -> ProofSession:
    """Merge the ticked adjacent rows into one clip with ``gap_s`` seconds of silence between them."""
    if len(indices) < 2:
        raise SessionError(say("label.err.tick_merge"))
    _require_audio(session, indices)
    try:
        edited = merge_rows(session.rows, indices, gap_s, session.place)
    except EditError as exc:
        raise SessionError(exc.args[0]) from None
    label = Message("label.edit.merge", "merge rows {rows}", rows=_numbers(sorted(indices)))
    return _after_edit(session, session.history.apply(edited.rows, label))


def split_selected(session: ProofSession, indices: Sequence[int], at_s: float) -> ProofSession:
    """Split the one ticked row at ``at_s`` seconds into two clips."""
    if len(indices) != 1:
        raise SessionError(say("label.err.tick_split"))
    _require_audio(session, indices)
    try:
        edited = split_row(session.rows, indices[0], at_s, session.place)
    except EditError as exc:
        raise SessionError(exc.args[0]) from None
    label = Message("label.edit.split", "split row {row} at {at:.2f} s", row=indices[0] + 1, at=at_s)
    return _after_edit(session, session.history.apply(edited.rows, label))


def undo(session: ProofSession) -> ProofSession:
    if not session.history.can_undo:
        raise SessionError(say("label.err.no_undo"))
    return _after_edit(session, session.history.undo())


def save(session: ProofSession) -> tuple[ProofSession, str]:
    """Write the rows (then the unreadable lines, unchanged) and return a summary naming the backup."""
    if session.list_path is None:
        raise SessionError(say("label.err.not_open"))
    written = write_list(session.list_path, session.rows, extra_lines=[e.line for e in session.bad_lines])
    summary = say("label.saved", rows=written.rows, file=str(written.path))
    if written.kept_lines:
        summary += say("label.saved.kept", count=written.kept_lines)
    if written.backup is not None:
        summary += say("label.saved.backup", file=written.backup.name)
    return replace(session, saved=session.rows), summary


@dataclass(frozen=True)
class SlotView:
    """What one row slot of the page shows."""

    index: int  # row index in the list
    label: str  # "#12 · 3.4 s · clip.wav"
    text: str
    language: str  # language id (zh, en, ja, ko, yue)
    audio: Path | None  # clip to play; None when missing or outside the data folder


def page_view(session: ProofSession) -> list[SlotView]:
    views = []
    for index in session.shown:
        row = session.rows[index]
        seconds = session.durations.get(row.wav_path)
        length = f"{seconds:.1f} s" if seconds is not None else say("label.no_audio")
        views.append(
            SlotView(
                index,
                f"#{index + 1} · {length} · {row.wav_name}",
                row.text,
                row.language,
                audio_file(session, row),
            )
        )
    return views


def status_line(session: ProofSession) -> str:
    """One line: list, rows, filter result, page, unsaved changes, undo."""
    if session.list_path is None:
        return ""
    parts = [say("label.status.rows", file=str(session.list_path), rows=len(session.rows))]
    if len(session.visible) != len(session.rows):
        parts.append(say("label.status.matching", count=len(session.visible)))
    parts.append(say("label.status.page", page=session.page + 1, pages=session.pages))
    if session.bad_lines:
        parts.append(say("label.status.unreadable", count=len(session.bad_lines)))
    if session.notices:
        parts.append(say("label.status.repeated", count=len(session.notices)))
    if session.unsaved:
        parts.append(say("label.status.unsaved"))
    if session.history.last_edit:
        parts.append(say("label.status.undo", edit=render(session.history.last_edit)))
    return " · ".join(parts)


def _numbers(indices: Sequence[int]) -> str:
    """Row indices as the page numbers them: ``"1, 2"``."""
    return ", ".join(str(i + 1) for i in indices)


def _lines_text(group: IssueGroup) -> str:
    """The group's first line numbers, and how many more, in the reader's language."""
    text = ", ".join(str(n) for n in group.line_numbers)
    more = group.count - len(group.line_numbers)
    return text + ", … " + say("label.issues.more_lines", count=more) if more > 0 else text


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("`", "'")


def bad_lines_table(session: ProofSession) -> str:
    """Markdown report of the list's issues: one row per kind (count, first line numbers), then the first lines."""
    issues = sorted(session.bad_lines + session.notices, key=lambda e: e.line_no)
    if not issues:
        return ""
    lines = [
        "#### " + say("label.issues.title", count=len(issues), unread=len(session.bad_lines)),
        "",
        say("label.issues.kinds_head"),
        "|---|---|---:|",
    ]
    lines += [
        f"| {_cell(term('list.kind', g.kind))} | {_lines_text(g)} | {g.count} |" for g in group_issues(issues)
    ]
    lines += ["", say("label.issues.lines_head"), "|---:|---|---|"]
    for bad in issues[:DETAIL_LINES]:
        lines.append(f"| {bad.line_no} | {_cell(render(bad.reason))} | `{_cell(bad.shown)}` |")
    if len(issues) > DETAIL_LINES:
        lines.append("| … | " + say("label.issues.more", count=len(issues) - DETAIL_LINES) + " | |")
    return "\n".join(lines)


LANGUAGE_CHOICES = tuple(LANGUAGE_CODES)  # ids shown in each row's language menu
