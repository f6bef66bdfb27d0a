"""Label tab: build a dataset from recordings in one click, then proofread its ``.list``.

The editor shows a page of rows with audio players; text and language are edited in place, rows
are deleted, adjacent rows merged (audio joined with a chosen gap), one row split at a time, every
edit can be undone, and saving keeps a backup of the previous file. Lines of the file that are not
rows are listed with their line numbers and written back unchanged. The state and the rules live
in :mod:`app.ui.tabs.label_session`; this module only lays out components and wires events.
"""

from __future__ import annotations

import gradio as gr
import numpy as np

from app.audio import AudioError, audio_info, load_audio
from app.ui.context import UIContext
from app.ui.tabs import label_pipeline
from app.ui.tabs.label_session import (
    LANGUAGE_CHOICES,
    PAGE_SIZE,
    ProofSession,
    SessionError,
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

TAB_ID = "label"
TITLE_KEY = "tab.label"
LANGUAGE_LABELS = {
    "zh": "中文 zh",
    "en": "English en",
    "ja": "日本語 ja",
    "ko": "한국어 ko",
    "yue": "粵語 yue",
}

STRINGS = {
    "en": {
        "tab.label": "Label",
        "label.title": "### Proofread a dataset\nOpen a `.list` (`wav_path|speaker|language|text`), correct it, save.",
        "label.list": "List file (.list, inside the data folder)",
        "label.audio_dir": "Audio folder (optional: clips are looked up here by file name)",
        "label.open": "Open",
        "label.filter_text": "Filter: text contains",
        "label.min_s": "Min seconds (0: none)",
        "label.max_s": "Max seconds (0: none)",
        "label.filter": "Filter",
        "label.prev": "◀ Previous",
        "label.next": "Next ▶",
        "label.page": "Page",
        "label.text": "Text",
        "label.language": "Language",
        "label.delete": "Delete ticked",
        "label.merge": "Merge ticked",
        "label.gap": "Gap when merging (s)",
        "label.split": "Split ticked at",
        "label.split_at": "Split point (s)",
        "label.undo": "Undo",
        "label.save": "Save",
        **label_pipeline.STRINGS["en"],
    },
    "zh": {
        "tab.label": "标注校对",
        "label.title": "### 校对数据集\n打开 `.list`（`音频路径|说话人|语言|文本`），修改后保存。",
        "label.list": "标注文件（.list，须在数据目录内）",
        "label.audio_dir": "音频文件夹（可选：按文件名在此查找音频）",
        "label.open": "打开",
        "label.filter_text": "筛选：文本包含",
        "label.min_s": "最短秒数（0：不限）",
        "label.max_s": "最长秒数（0：不限）",
        "label.filter": "筛选",
        "label.prev": "◀ 上一页",
        "label.next": "下一页 ▶",
        "label.page": "页码",
        "label.text": "文本",
        "label.language": "语言",
        "label.delete": "删除勾选",
        "label.merge": "合并勾选",
        "label.gap": "合并间隔 (秒)",
        "label.split": "在此处切分勾选",
        "label.split_at": "切分点 (秒)",
        "label.undo": "撤销",
        "label.save": "保存",
        **label_pipeline.STRINGS["zh"],
    },
}


def _player_value(session: ProofSession, view) -> tuple[int, np.ndarray] | None:
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
            audios.append(gr.update(value=_player_value(session, view)))
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


def build(ctx: UIContext) -> None:
    home = ctx.layout.home
    gr.Markdown(ctx.t("label.title"))
    session = gr.State(ProofSession(home=home))
    with gr.Row():
        list_box = gr.Textbox(label=ctx.t("label.list"), scale=3, elem_id="label-list")
        audio_dir = gr.Textbox(label=ctx.t("label.audio_dir"), scale=2, elem_id="label-audio-dir")
        open_btn = gr.Button(ctx.t("label.open"), scale=1, elem_id="label-open")
    built = label_pipeline.build_pipeline(ctx, list_box)
    status = gr.Markdown(elem_id="label-status")
    bad_lines = gr.Markdown(visible=False, elem_id="label-bad-lines")
    with gr.Row():
        query = gr.Textbox(label=ctx.t("label.filter_text"), scale=3, elem_id="label-filter-text")
        min_s = gr.Number(label=ctx.t("label.min_s"), value=0, minimum=0, scale=1, elem_id="label-min-s")
        max_s = gr.Number(label=ctx.t("label.max_s"), value=0, minimum=0, scale=1, elem_id="label-max-s")
        filter_btn = gr.Button(ctx.t("label.filter"), scale=1, elem_id="label-filter")
    with gr.Row():
        prev_btn = gr.Button(ctx.t("label.prev"), elem_id="label-prev")
        page = gr.Number(label=ctx.t("label.page"), value=1, precision=0, elem_id="label-page")
        next_btn = gr.Button(ctx.t("label.next"), elem_id="label-next")
    rows, checks, audios, texts, langs = [], [], [], [], []
    choices = [(LANGUAGE_LABELS[c], c) for c in LANGUAGE_CHOICES]
    for slot in range(PAGE_SIZE):
        with gr.Row(visible=False, elem_id=f"label-row-{slot}", equal_height=True) as row:
            checks.append(
                gr.Checkbox(label="", value=False, scale=1, min_width=120, elem_id=f"label-check-{slot}")
            )
            audios.append(
                gr.Audio(
                    type="numpy", interactive=False, show_label=False, scale=3, elem_id=f"label-audio-{slot}"
                )
            )
            texts.append(
                gr.Textbox(label=ctx.t("label.text"), lines=2, scale=5, elem_id=f"label-text-{slot}")
            )
            langs.append(
                gr.Dropdown(
                    choices,
                    label=ctx.t("label.language"),
                    scale=1,
                    min_width=120,
                    elem_id=f"label-lang-{slot}",
                )
            )
        rows.append(row)
    with gr.Row():
        delete_btn = gr.Button(ctx.t("label.delete"), variant="stop", elem_id="label-delete")
        gap = gr.Slider(0.0, 2.0, value=0.3, step=0.05, label=ctx.t("label.gap"), elem_id="label-gap")
        merge_btn = gr.Button(ctx.t("label.merge"), elem_id="label-merge")
        split_at = gr.Number(label=ctx.t("label.split_at"), value=1.0, elem_id="label-split-at")
        split_btn = gr.Button(ctx.t("label.split"), elem_id="label-split")
        undo_btn = gr.Button(ctx.t("label.undo"), elem_id="label-undo")
        save_btn = gr.Button(ctx.t("label.save"), variant="primary", elem_id="label-save")

    outputs = [session, status, bad_lines, page, *rows, *checks, *audios, *texts, *langs]
    page_inputs = [*texts, *langs, *checks]

    def action(fn):
        """An event handler: take in the page's edits, run ``fn(session, ticked_rows, *extra)``, re-render."""

        def handler(current: ProofSession, *values):
            texts_in = values[:PAGE_SIZE]
            langs_in = values[PAGE_SIZE : 2 * PAGE_SIZE]
            checks_in = values[2 * PAGE_SIZE : 3 * PAGE_SIZE]
            extra = values[3 * PAGE_SIZE :]
            if current.list_path is None:
                raise gr.Error("Open a .list file first.")
            try:
                synced = sync_page(current, texts_in, langs_in)
                result = fn(synced, selected(synced, checks_in), *extra)
            except (SessionError, AudioError, OSError) as exc:
                raise gr.Error(str(exc)) from exc
            new, note = result if isinstance(result, tuple) else (result, "")
            return render(new, note)

        return handler

    def do_open(current: ProofSession, path: str, folder: str):
        try:
            opened, note = open_or_warn(current, path, folder)
        except SessionError as exc:
            raise gr.Error(str(exc)) from exc
        return render(opened, note)

    open_btn.click(do_open, [session, list_box, audio_dir], outputs, api_name="open_list")
    built.success(do_open, [session, list_box, audio_dir], outputs)

    def bounded(x) -> float:
        return float(x) if x not in (None, "") else 0.0

    def do_filter(s, _ticked, text, low, high):
        # 0 (the fields' default) means no bound.
        return set_filter(s, text, bounded(low) or None, bounded(high) or None)

    events = [
        (filter_btn, do_filter, [query, min_s, max_s]),
        (prev_btn, lambda s, _t: show_page(s, s.page - 1), []),
        (next_btn, lambda s, _t: show_page(s, s.page + 1), []),
        (delete_btn, delete_rows, []),
        (merge_btn, lambda s, t, g: merge_selected(s, t, bounded(g)), [gap]),
        (split_btn, lambda s, t, at: split_selected(s, t, bounded(at)), [split_at]),
        (undo_btn, lambda s, _t: undo(s), []),
        (save_btn, lambda s, _t: save(s), []),
    ]
    for button, fn, extra in events:
        button.click(action(fn), [session, *page_inputs, *extra], outputs)
    page.submit(
        action(lambda s, _t, p: show_page(s, int(bounded(p)) - 1)), [session, *page_inputs, page], outputs
    )
