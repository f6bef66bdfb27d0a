"""Label tab: build a dataset from recordings in one click, then proofread its ``.list``.

The editor shows a page of rows with audio players; text and language are edited in place, rows
are deleted, adjacent rows merged (audio joined with a chosen gap), one row split at a time, every
edit can be undone, and saving keeps a backup of the previous file. Lines of the file that are not
rows are listed with their line numbers and written back unchanged. The state and the rules live
in :mod:`app.ui.tabs.label_session`, the event handlers in :mod:`app.ui.tabs.label_handlers`; this
module only lays out components and wires events.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from app.ui.context import UIContext
from app.ui.locales import complete
from app.ui.tabs.binding import bind
from app.ui.tabs.label_cleanup import STRINGS as CLEANUP_STRINGS
from app.ui.tabs.label_handlers import (
    Action,
    LabelPage,
    apply_filter,
    delete_ticked,
    edit,
    edits_enabled,
    go_to_page,
    merge_ticked,
    next_page,
    open_editor,
    previous_page,
    save_list,
    split_ticked,
    undo_last,
)
from app.ui.tabs.label_pipeline import STRINGS as PIPELINE_STRINGS
from app.ui.tabs.label_pipeline import build_pipeline
from app.ui.tabs.label_session import LANGUAGE_CHOICES, PAGE_SIZE, ProofSession
from app.ui.tabs.pickers import audio_folders, list_files, refresh_pickers

TAB_ID = "label"
TITLE_KEY = "tab.label"
LANGUAGE_LABELS = {
    "zh": "中文 zh",
    "en": "English en",
    "ja": "日本語 ja",
    "ko": "한국어 ko",
    "yue": "粵語 yue",
}

STRINGS = complete(
    {
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
            **PIPELINE_STRINGS["en"],
            **CLEANUP_STRINGS["en"],
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
            **PIPELINE_STRINGS["zh"],
            **CLEANUP_STRINGS["zh"],
        },
        # The other languages' texts of this tab are in app/ui/locales/; the clean-up panel's travel with it.
        **{lang: CLEANUP_STRINGS[lang] for lang in ("zh_TW", "ja", "ko")},
    }
)


@dataclass(frozen=True)
class Slots:
    """The page's row slots, each field in slot order."""

    rows: tuple[gr.Row, ...]
    checks: tuple[gr.Checkbox, ...]
    audios: tuple[gr.Audio, ...]
    texts: tuple[gr.Textbox, ...]
    languages: tuple[gr.Dropdown, ...]

    @property
    def outputs(self) -> list[gr.components.Component | gr.Row]:
        """In the order :func:`app.ui.tabs.label_handlers.render` returns their values."""
        return [*self.rows, *self.checks, *self.audios, *self.texts, *self.languages]


def _slot(ctx: UIContext, slot: int) -> tuple[gr.Row, gr.Checkbox, gr.Audio, gr.Textbox, gr.Dropdown]:
    choices = [(LANGUAGE_LABELS[c], c) for c in LANGUAGE_CHOICES]
    with gr.Row(visible=False, elem_id=f"label-row-{slot}", equal_height=True) as row:
        check = gr.Checkbox(label="", value=False, scale=1, min_width=120, elem_id=f"label-check-{slot}")
        audio = gr.Audio(
            type="numpy", interactive=False, show_label=False, scale=3, elem_id=f"label-audio-{slot}"
        )
        text = gr.Textbox(label=ctx.t("label.text"), lines=2, scale=5, elem_id=f"label-text-{slot}")
        language = gr.Dropdown(
            choices, label=ctx.t("label.language"), scale=1, min_width=120, elem_id=f"label-lang-{slot}"
        )
    return row, check, audio, text, language


def _slots(ctx: UIContext) -> Slots:
    rows, checks, audios, texts, languages = zip(
        *(_slot(ctx, slot) for slot in range(PAGE_SIZE)), strict=True
    )
    return Slots(rows, checks, audios, texts, languages)


def _filter_row(ctx: UIContext) -> tuple[gr.Textbox, gr.Number, gr.Number, gr.Button]:
    with gr.Row():
        query = gr.Textbox(label=ctx.t("label.filter_text"), scale=3, elem_id="label-filter-text")
        min_s = gr.Number(label=ctx.t("label.min_s"), value=0, minimum=0, scale=1, elem_id="label-min-s")
        max_s = gr.Number(label=ctx.t("label.max_s"), value=0, minimum=0, scale=1, elem_id="label-max-s")
        button = gr.Button(ctx.t("label.filter"), scale=1, elem_id="label-filter")
    return query, min_s, max_s, button


def _pager(ctx: UIContext) -> tuple[gr.Button, gr.Number, gr.Button]:
    with gr.Row():
        prev_btn = gr.Button(ctx.t("label.prev"), elem_id="label-prev")
        page = gr.Number(label=ctx.t("label.page"), value=1, precision=0, elem_id="label-page")
        next_btn = gr.Button(ctx.t("label.next"), elem_id="label-next")
    return prev_btn, page, next_btn


@dataclass(frozen=True)
class EditBar:
    """The buttons and fields under the rows."""

    delete: gr.Button
    gap: gr.Slider
    merge: gr.Button
    split_at: gr.Number
    split: gr.Button
    undo: gr.Button
    save: gr.Button


def _edit_bar(ctx: UIContext) -> EditBar:
    with gr.Row():
        return EditBar(
            delete=gr.Button(
                ctx.t("label.delete"), variant="stop", elem_id="label-delete", interactive=False
            ),
            gap=gr.Slider(0.0, 2.0, value=0.3, step=0.05, label=ctx.t("label.gap"), elem_id="label-gap"),
            merge=gr.Button(ctx.t("label.merge"), elem_id="label-merge", interactive=False),
            split_at=gr.Number(label=ctx.t("label.split_at"), value=1.0, elem_id="label-split-at"),
            split=gr.Button(ctx.t("label.split"), elem_id="label-split", interactive=False),
            undo=gr.Button(ctx.t("label.undo"), elem_id="label-undo", interactive=False),
            save=gr.Button(ctx.t("label.save"), variant="primary", elem_id="label-save", interactive=False),
        )


def build(ctx: UIContext) -> None:
    gr.Markdown(ctx.t("label.title"))
    session = gr.State(ProofSession(home=ctx.layout.home))
    with gr.Row():
        # Pickers of the data folder's .list files and audio folders; a path can still be typed.
        list_box = gr.Dropdown(
            list_files(ctx.layout.home), value=None, allow_custom_value=True, label=ctx.t("label.list"),
            scale=3, elem_id="label-list",
        )  # fmt: skip
        audio_dir = gr.Dropdown(
            audio_folders(ctx.layout.home), value=None, allow_custom_value=True, label=ctx.t("label.audio_dir"),
            scale=2, elem_id="label-audio-dir",
        )  # fmt: skip
        open_btn = gr.Button(ctx.t("label.open"), scale=1, elem_id="label-open")
    built = build_pipeline(ctx, list_box)
    status = gr.Markdown(elem_id="label-status")
    bad_lines = gr.Markdown(visible=False, elem_id="label-bad-lines")
    query, min_s, max_s, filter_btn = _filter_row(ctx)
    prev_btn, page_number, next_btn = _pager(ctx)
    slots = _slots(ctx)
    bar = _edit_bar(ctx)

    outputs = [session, status, bad_lines, page_number, *slots.outputs]
    buttons = [bar.delete, bar.merge, bar.split, bar.undo, bar.save]  # edits_enabled's order
    opened = open_btn.click(open_editor, [session, list_box, audio_dir], outputs, api_name="open_list")
    opened.then(edits_enabled, session, buttons, show_progress="hidden")
    built.success(open_editor, [session, list_box, audio_dir], outputs).then(
        edits_enabled, session, buttons, show_progress="hidden"
    )
    pickers = bind(refresh_pickers, ctx.layout.home)
    list_box.focus(pickers, [list_box, audio_dir], [list_box, audio_dir], show_progress="hidden")
    page = LabelPage(
        session, slots.texts, slots.languages, slots.checks, query, min_s, max_s, page_number, bar.gap,
        bar.split_at,
    )  # fmt: skip
    events: list[tuple[gr.Button, Action]] = [
        (filter_btn, apply_filter), (prev_btn, previous_page), (next_btn, next_page),
        (bar.delete, delete_ticked), (bar.merge, merge_ticked), (bar.split, split_ticked),
        (bar.undo, undo_last), (bar.save, save_list),
    ]  # fmt: skip
    for button, action in events:
        button.click(bind(edit, page, action), page.inputs, outputs)
    page_number.submit(bind(edit, page, go_to_page), page.inputs, outputs)
