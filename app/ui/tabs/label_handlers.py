"""Event handlers of the Label tab's editor: read the page into a typed :class:`PageState`, act, re-render.

Every edit button sends the whole page (the session, each slot's text, language and tick box, the
filter and edit fields) as one ``{component: value}`` dict: Gradio's set-of-components inputs.
:func:`read_page` turns that dict into a :class:`PageState` in one place, so actions are plain
functions of typed values. The rules live in :mod:`app.ui.tabs.label_session`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np

from app.audio import AudioError, audio_info, load_audio
from app.ui.messages import error, error_from
from app.ui.tabs.label_session import (
    PAGE_SIZE,
    ProofSession,
    SessionError,
    SlotView,
    bad_lines_table,
    delete_rows,
    merge_selected,
    open_or_warn,
    page_view,
    save,
    selected,
    set_filter,
    show_page,
    split_selected,
    status_line,
    sync_page,
    undo,
)

Component = gr.components.Component
# What an action returns: the new session, and optionally a note shown under the status line.
Outcome = ProofSession | tuple[ProofSession, str]


@dataclass(frozen=True)
class LabelPage:
    """The editor's components that edit events read (each slot's fields in slot order)."""

    session: gr.State
    texts: tuple[gr.Textbox, ...]
    languages: tuple[gr.Dropdown, ...]
    checks: tuple[gr.Checkbox, ...]
    query: gr.Textbox  # filter: text contains
    min_s: gr.Number  # filter: shortest clip, seconds (0: none)
    max_s: gr.Number  # filter: longest clip, seconds (0: none)
    page: gr.Number  # 1-based page number
    gap: gr.Slider  # silence between merged clips, seconds
    split_at: gr.Number  # split point, seconds

    @property
    def inputs(self) -> set[Component]:
        """All of them, as a set: Gradio then hands the handler one ``{component: value}`` dict."""
        fields = (self.query, self.min_s, self.max_s, self.page, self.gap, self.split_at)
        return {self.session, *self.texts, *self.languages, *self.checks, *fields}


@dataclass(frozen=True)
class PageState:
    """What the editor showed when a button was pressed."""

    session: ProofSession
    texts: tuple[str, ...]  # per slot, as typed
    languages: tuple[str | None, ...]  # per slot
    checks: tuple[bool, ...]  # per slot: ticked
    query: str
    min_s: float  # 0: no bound
    max_s: float  # 0: no bound
    page: int  # 1-based, as typed
    gap_s: float
    split_at_s: float


def _number(value: float | str | None) -> float:
    """A number field's value; an emptied field counts as 0 (the fields' "none")."""
    return float(value) if value not in (None, "") else 0.0


def read_page(page: LabelPage, values: Mapping[Component, Any]) -> PageState:
    """The typed view of one event's ``{component: value}`` inputs."""
    return PageState(
        session=values[page.session],
        texts=tuple(values[c] for c in page.texts),
        languages=tuple(values[c] for c in page.languages),
        checks=tuple(bool(values[c]) for c in page.checks),
        query=values[page.query] or "",
        min_s=_number(values[page.min_s]),
        max_s=_number(values[page.max_s]),
        page=int(_number(values[page.page])),
        gap_s=_number(values[page.gap]),
        split_at_s=_number(values[page.split_at]),
    )


# -- rendering ---------------------------------------------------------------------------------------
def _player_value(view: SlotView) -> tuple[int, np.ndarray] | None:
    """(rate, int16 samples) for gr.Audio; clips may lie anywhere in the data folder, not only in output/."""
    if view.audio is None:
        return None
    try:
        rate = audio_info(view.audio).sample_rate
        wav = load_audio(view.audio, rate, allow_silent=True)
    except AudioError:
        return None
    return rate, (np.clip(wav, -1.0, 1.0) * 32767).astype(np.int16)


def render(session: ProofSession, note: str = "") -> list:
    """Values for [state, status, bad lines, page, then per slot: row, check, audio, text, language]."""
    views = page_view(session)
    status = status_line(session) + (f"\n\n{note}" if note else "")
    rows, checks, audios, texts, langs = [], [], [], [], []
    for slot in range(PAGE_SIZE):
        if slot < len(views):
            view = views[slot]
            rows.append(gr.update(visible=True))
            checks.append(gr.update(value=False, label=view.label))
            audios.append(gr.update(value=_player_value(view)))
            texts.append(gr.update(value=view.text))
            langs.append(gr.update(value=view.language))
        else:
            rows.append(gr.update(visible=False))
            checks.append(gr.update(value=False, label=""))
            audios.append(gr.update(value=None))
            texts.append(gr.update(value=""))
            langs.append(gr.update(value=None))
    bad = bad_lines_table(session)
    return [
        session,
        status,
        gr.update(value=bad, visible=bool(bad)),
        session.page + 1,
        *rows,
        *checks,
        *audios,
        *texts,
        *langs,
    ]


def edits_enabled(session: ProofSession) -> list[Any]:
    """The edit buttons usable only while a list is open (one update per button of the edit bar)."""
    return [gr.update(interactive=session.list_path is not None)] * EDIT_BUTTONS


EDIT_BUTTONS = 5  # delete, merge, split, undo, save


# -- handlers ----------------------------------------------------------------------------------------
def open_editor(current: ProofSession, path: str | None, folder: str | None) -> list:
    """Open a .list (a second click discards unsaved changes); returns :func:`render`'s values.

    An empty picker is ``None``: no list (refused, as an empty path) and no audio folder."""
    try:
        opened, note = open_or_warn(current, path or "", folder or "")
    except SessionError as exc:
        raise error_from(exc) from exc
    return render(opened, note)


# An edit: (session with the page's typing taken in, ticked row indices, the page) -> outcome.
Action = Callable[[ProofSession, list[int], PageState], Outcome]


def edit(page: LabelPage, action: Action, values: Mapping[Component, Any]) -> list:
    """Take in the page's typing, run ``action``, re-render; errors become messages."""
    state = read_page(page, values)
    if state.session.list_path is None:
        raise error("label.err.not_open")
    try:
        synced = sync_page(state.session, state.texts, state.languages)
        result = action(synced, selected(synced, state.checks), state)
    except (SessionError, AudioError, OSError) as exc:
        raise error_from(exc) from exc
    new, note = result if isinstance(result, tuple) else (result, "")
    return render(new, note)


def apply_filter(session: ProofSession, _ticked: list[int], state: PageState) -> Outcome:
    # 0 (the fields' default) means no bound.
    return set_filter(session, state.query, state.min_s or None, state.max_s or None)


def previous_page(session: ProofSession, _ticked: list[int], _state: PageState) -> Outcome:
    return show_page(session, session.page - 1)


def next_page(session: ProofSession, _ticked: list[int], _state: PageState) -> Outcome:
    return show_page(session, session.page + 1)


def go_to_page(session: ProofSession, _ticked: list[int], state: PageState) -> Outcome:
    return show_page(session, state.page - 1)


def delete_ticked(session: ProofSession, ticked: list[int], _state: PageState) -> Outcome:
    return delete_rows(session, ticked)


def merge_ticked(session: ProofSession, ticked: list[int], state: PageState) -> Outcome:
    return merge_selected(session, ticked, state.gap_s)


def split_ticked(session: ProofSession, ticked: list[int], state: PageState) -> Outcome:
    return split_selected(session, ticked, state.split_at_s)


def undo_last(session: ProofSession, _ticked: list[int], _state: PageState) -> Outcome:
    return undo(session)


def save_list(session: ProofSession, _ticked: list[int], _state: PageState) -> Outcome:
    return save(session)
