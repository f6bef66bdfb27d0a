"""Label tab events without a browser: the tab's handlers fed the {component: value} dict Gradio sends."""

from __future__ import annotations

import gradio as gr
import pytest
import soundfile as sf

from app.paths import Layout
from app.settings import Settings
from app.ui import i18n
from app.ui.context import UIContext
from app.ui.tabs import label
from app.ui.tabs.label_handlers import LabelPage, read_page
from app.ui.tabs.label_session import PAGE_SIZE, ProofSession, open_list
from tests.synth import tone

SR = 16000


@pytest.fixture
def tab(tmp_path):
    """The built tab over a data folder holding a 12-row list (clips 1.0 .. 2.1 s)."""
    clips = tmp_path / "output" / "set" / "clips"
    clips.mkdir(parents=True)
    lines = []
    for i in range(12):
        sf.write(clips / f"c{i:02d}.wav", tone(1.0 + i / 10, SR, 200 + 20 * i), SR)
        lines.append(f"{clips / f'c{i:02d}.wav'}|spk|EN|sentence number {i}")
    (tmp_path / "output" / "set" / "set.list").write_text("\n".join(lines) + "\n", encoding="utf-8")
    settings = Settings(home=tmp_path)
    ctx = UIContext(
        settings,
        Layout(settings.home, settings.pretrained_dir).ensure(),
        i18n.build_i18n([i18n.COMMON, label.STRINGS], "en"),
    )
    with gr.Blocks() as demo:
        label.build(ctx)
    by_id = {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}
    return tmp_path, demo, by_id


def _event(demo, component, trigger: str = "click"):
    (fn,) = [f for f in demo.fns.values() if (component._id, trigger) in f.targets]
    return fn


def _shown(page: LabelPage, session: ProofSession) -> dict:
    """What the browser sends for ``session``'s page: slot texts and languages as shown, nothing ticked."""
    values = {page.session: session, page.query: "", page.min_s: 0, page.max_s: 0, page.page: 1}
    values |= {page.gap: 0.3, page.split_at: 1.0}
    for slot in range(PAGE_SIZE):
        row = session.rows[session.shown[slot]] if slot < len(session.shown) else None
        values[page.texts[slot]] = row.text if row else ""
        values[page.languages[slot]] = row.language if row else None
        values[page.checks[slot]] = False
    return values


def test_edit_events_read_the_whole_page_as_one_typed_state(tab) -> None:
    home, demo, by_id = tab
    delete = _event(demo, by_id["label-delete"])
    page = delete.fn.args[0]  # the LabelPage bound to the handler
    assert isinstance(page, LabelPage) and delete.inputs_as_dict and set(delete.inputs) == page.inputs
    session = open_list(home, "output/set/set.list")
    values = _shown(page, session) | {page.texts[0]: "first, edited", page.checks[1]: True}
    # Emptied number fields count as 0 ("no bound"), as before.
    state = read_page(page, values | {page.max_s: None, page.split_at: ""})
    assert (state.max_s, state.split_at_s, state.page, state.checks[:2]) == (0.0, 0.0, 1, (False, True))

    out = delete.fn(values)
    assert len(out) == 4 + 5 * PAGE_SIZE
    deleted = out[0]
    assert len(deleted.rows) == 11 and deleted.rows[0].text == "first, edited"  # typing taken in first
    assert deleted.rows[1].text == "sentence number 2" and "**unsaved changes**" in out[1]

    filtered = _event(demo, by_id["label-filter"]).fn(_shown(page, deleted) | {page.min_s: 1.95})
    assert [r.text for r in (filtered[0].rows[i] for i in filtered[0].shown)] == [
        "sentence number 10",
        "sentence number 11",
    ]
    jumped = _event(demo, by_id["label-page"], "submit").fn(_shown(page, deleted) | {page.page: 2})
    assert jumped[0].page == 1 and jumped[3] == 2
    with pytest.raises(gr.Error, match=r"Open a \.list file first"):
        delete.fn(_shown(page, ProofSession(home=home)))
