"""SVC tab: singing voice conversion in three steps: dataset, train, convert.

The dataset step fills an experiment (``output/svc/<name>/``, a so-vits-svc 4.1 tree) from uploads
or a server folder of speaker folders and preprocesses it (:mod:`app.ui.tabs.svc.dataset`); the
train step runs ``app.train.svc`` as a job (:mod:`app.ui.tabs.svc.train`); the convert step turns
a song into a trained voice (:mod:`app.ui.tabs.svc.convert`). The experiment chosen at the top is
the one the steps work on.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from app.models.encoders.content import DEFAULT_ENCODER
from app.paths import Layout
from app.services import svc as svc_service
from app.ui.context import UIContext
from app.ui.i18n import LANGUAGES
from app.ui.locales import complete
from app.ui.tabs.binding import bind
from app.ui.tabs.missing import asset_panel
from app.ui.tabs.svc import convert, dataset, live, train
from app.ui.tabs.svc.experiment import experiment_choices

TAB_ID = "svc"
TITLE_KEY = "tab.svc"

_OWN = {
    "en": {
        "tab.svc": "SVC",
        "svc.title": "### Singing voice conversion (so-vits-svc 4.1)\n1 prepare a dataset · 2 train · 3 convert songs.",
        "svc.experiment": "Experiment (new name or existing)",
        "svc.refresh": "↻",
        "svc.step.dataset": "1 · Dataset",
        "svc.step.train": "2 · Train",
        "svc.step.convert": "3 · Convert",
        "svc.step.live": "4 · Live",
    },
    "zh": {
        "tab.svc": "歌声转换",
        "svc.title": "### 歌声转换（so-vits-svc 4.1）\n1 准备数据集 · 2 训练 · 3 转换歌曲。",
        "svc.experiment": "实验（新名称或已有实验）",
        "svc.refresh": "↻",
        "svc.step.dataset": "1 · 数据集",
        "svc.step.train": "2 · 训练",
        "svc.step.convert": "3 · 转换",
        "svc.step.live": "4 · 实时",
    },
}
# Each step's texts; zh_TW/ja/ko come from app/ui/locales/ unless a step gives its own.
STRINGS = complete(
    {
        lang: {
            **_OWN.get(lang, {}),
            **dataset.STRINGS.get(lang, {}),
            **train.STRINGS.get(lang, {}),
            **convert.STRINGS.get(lang, {}),
            **live.STRINGS.get(lang, {}),
        }
        for lang in LANGUAGES
    }
)


def refresh_experiments(layout: Layout) -> dict[str, Any]:
    """The experiment dropdown listed again (folders made outside the page appear)."""
    return experiment_choices(layout)


def build(ctx: UIContext) -> None:
    """The experiment picker above the three steps, each step in its own sub-tab."""
    gr.Markdown(ctx.t("svc.title"))
    asset_panel(ctx, TAB_ID, dataset.needed_assets(DEFAULT_ENCODER))
    names = svc_service.list_experiments(ctx.layout)
    with gr.Row():
        experiment = gr.Dropdown(
            choices=names, value=names[0] if names else None, allow_custom_value=True,
            label=ctx.t("svc.experiment"), elem_id="svc-experiment", scale=4,
        )  # fmt: skip
        refresh = gr.Button(ctx.t("svc.refresh"), scale=0, min_width=40)
    refresh.click(bind(refresh_experiments, ctx.layout), outputs=experiment)
    with gr.Tabs():
        with gr.Tab(ctx.t("svc.step.dataset"), id="svc-dataset"):
            dataset.build(ctx, experiment)
        with gr.Tab(ctx.t("svc.step.train"), id="svc-train"):
            train.build(ctx, experiment)
        with gr.Tab(ctx.t("svc.step.convert"), id="svc-convert"):
            convert.build(ctx)
        with gr.Tab(ctx.t("svc.step.live"), id="svc-live"):
            live.build(ctx)
