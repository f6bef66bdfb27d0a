"""Train tab: format a labelled dataset, fine-tune SoVITS and GPT, watch the jobs.

Everything runs as jobs (:mod:`app.services.experiments`): formatting steps and trainings wait in
one device queue, report through their status files, and are found again after the UI
restarts. A timer polls the status files every few seconds; the loss plots read the runs'
``metrics.jsonl``. Parameters default to upstream GPT-SoVITS's web UI values, the version too
(v2Pro). For v2Pro/v2ProPlus, 1b brings the speaker embeddings (2-get-sv) along, and a button
for 2-get-sv alone is shown. For v3/v4 the SoVITS section trains LoRA adapters: it shows the
LoRA rank and gradient checkpointing instead of the text learning-rate ratio, and proposes
upstream's shorter schedule (2 epochs, saved every epoch).

This module lays out components and wires events; the handlers are in
:mod:`app.ui.tabs.train_handlers`, the status texts in :mod:`app.ui.tabs.train_status`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from app.runconfig import (
    DEFAULT_LORA_RANK,
    DEFAULT_TRAIN_VERSION,
    FORMAT_STEPS,
    LORA_RANKS,
    PRECISIONS,
    SV_STEP,
    TRAIN_VERSIONS,
    GPTRunConfig,
    SoVITSRunConfig,
    is_lora,
    is_pro,
)
from app.services import experiments as ex
from app.ui.context import UIContext
from app.ui.locales import complete
from app.ui.tabs.binding import bind
from app.ui.tabs.missing import asset_panel
from app.ui.tabs.pickers import audio_folders, list_files, refresh_pickers
from app.ui.tabs.train_handlers import (
    FORMAT_ASSETS,
    TrainEnv,
    on_experiment,
    on_version,
    refresh,
    start_format,
    start_gpt,
    start_sovits,
    stop_run,
)

TAB_ID = "train"
TITLE_KEY = "tab.train"
POLL_S = 2.0  # status refresh period
JOBS = "train_jobs"  # one concurrency group: starting and stopping jobs never interleave

STRINGS = complete(
    {
        "en": {
            "tab.train": "Train",
            "train.title": "### Fine-tune a voice\nFormat a labelled dataset, then train SoVITS and GPT on it. Jobs keep running when this page is closed.",
            "train.exp": "Experiment name",
            "train.version": "Model version",
            "train.format": "1. Dataset formatting",
            "train.list": ".list file (inside the data folder)",
            "train.audio": "Audio folder (optional: clips are looked up here by file name)",
            "train.format.1a": "1a: text + BERT",
            "train.format.1b": "1b: HuBERT + 32 kHz audio (v2Pro*: + speaker embeddings)",
            "train.format.2-get-sv": "2-get-sv: speaker embeddings",
            "train.format.1c": "1c: semantic tokens",
            "train.format.all": "Run all steps",
            "train.format.stop": "Stop formatting",
            "train.sovits": "2. SoVITS training (weights in SoVITS_weights/)",
            "train.gpt": "3. GPT training (weights in GPT_weights/)",
            "train.batch": "Batch size per GPU",
            "train.epochs": "Total epochs",
            "train.save_every": "Save every N epochs",
            "train.text_lr": "Text-module learning-rate ratio",
            "train.lora_rank": "LoRA rank",
            "train.grad_ckpt": "Gradient checkpointing (less GPU memory, slower)",
            "train.lr": "Learning rate",
            "train.keep_latest": "Keep only the latest checkpoint",
            "train.export": "Export weights at every save",
            "train.precision": "Precision on GPU (CPU trains in fp32)",
            "train.gpus": "GPUs (more than one: DDP through torchrun)",
            "train.start": "Start training",
            "train.stop": "Stop (saves a checkpoint)",
            "train.plot": "Losses",
        },
        "zh": {
            "tab.train": "训练",
            "train.title": "### 微调音色\n先格式化标注好的数据集，再训练 SoVITS 和 GPT。关闭页面后任务仍会继续运行。",
            "train.exp": "实验名",
            "train.version": "模型版本",
            "train.format": "1. 训练集格式化",
            "train.list": ".list 标注文件（须在数据目录内）",
            "train.audio": "音频文件夹（可选：按文件名在此查找音频）",
            "train.format.1a": "1a：文本 + BERT",
            "train.format.1b": "1b：HuBERT + 32 kHz 音频（v2Pro*：含说话人向量）",
            "train.format.2-get-sv": "2-get-sv：说话人向量",
            "train.format.1c": "1c：语义 token",
            "train.format.all": "一键三连",
            "train.format.stop": "停止格式化",
            "train.sovits": "2. SoVITS 训练（权重在 SoVITS_weights/）",
            "train.gpt": "3. GPT 训练（权重在 GPT_weights/）",
            "train.batch": "每张显卡的 batch size",
            "train.epochs": "总训练轮数",
            "train.save_every": "保存频率（每 N 轮）",
            "train.text_lr": "文本模块学习率权重",
            "train.lora_rank": "LoRA秩",
            "train.grad_ckpt": "开启梯度检查点节省显存占用（更慢）",
            "train.lr": "学习率",
            "train.keep_latest": "仅保留最新的检查点",
            "train.export": "每次保存时导出权重",
            "train.precision": "GPU 精度（CPU 用 fp32 训练）",
            "train.gpus": "GPU（多于一张时经 torchrun 用 DDP）",
            "train.start": "开始训练",
            "train.stop": "停止（先保存检查点）",
            "train.plot": "损失",
        },
    }
)


@dataclass(frozen=True)
class FormatControls:
    """The dataset-formatting section."""

    list_path: gr.Dropdown  # the data folder's .list files (a path can be typed too)
    audio_dir: gr.Dropdown  # its folders holding audio
    steps: dict[str, gr.Button]  # one button per formatting step, by step id
    run_all: gr.Button
    stop: gr.Button
    status: gr.Markdown


@dataclass(frozen=True)
class TrainingControls:
    """One training section (SoVITS or GPT)."""

    batch: gr.Slider
    epochs: gr.Slider
    save_every: gr.Slider
    lr: gr.Number
    keep_latest: gr.Checkbox
    export: gr.Checkbox
    precision: gr.Dropdown
    gpus: gr.CheckboxGroup
    start: gr.Button
    stop: gr.Button
    status: gr.Markdown
    plot: gr.LinePlot


@dataclass(frozen=True)
class SoVITSOnly:
    """The SoVITS section's version-dependent settings (v1-v2ProPlus: text lr; v3/v4: LoRA)."""

    text_lr: gr.Slider
    lora_rank: gr.Radio
    grad_ckpt: gr.Checkbox


# -- layout ----------------------------------------------------------------------------------------
def _experiment_row(ctx: UIContext, experiments: list[str]) -> tuple[gr.Dropdown, gr.Radio]:
    with gr.Row():
        exp = gr.Dropdown(
            choices=experiments, value=experiments[0] if experiments else None, allow_custom_value=True,
            label=ctx.t("train.exp"), elem_id="train-exp", scale=3,
        )  # fmt: skip
        version = gr.Radio(
            list(TRAIN_VERSIONS),
            value=DEFAULT_TRAIN_VERSION,
            label=ctx.t("train.version"),
            elem_id="train-version",
        )
    return exp, version


def _format_section(ctx: UIContext) -> FormatControls:
    home = ctx.layout.home
    with gr.Row():
        # Picked from the data folder (listed again on focus); a path can still be typed.
        list_path = gr.Dropdown(
            list_files(home), value=None, allow_custom_value=True, label=ctx.t("train.list"),
            elem_id="train-list", scale=2,
        )  # fmt: skip
        audio_dir = gr.Dropdown(
            audio_folders(home), value=None, allow_custom_value=True, label=ctx.t("train.audio"),
            elem_id="train-audio", scale=2,
        )  # fmt: skip
    with gr.Row():
        steps = {
            step: gr.Button(
                ctx.t(f"train.format.{step}"),
                elem_id=f"train-format-{step}",
                visible=step != SV_STEP or is_pro(DEFAULT_TRAIN_VERSION),
            )
            for step in FORMAT_STEPS
        }
        run_all = gr.Button(ctx.t("train.format.all"), variant="primary", elem_id="train-format-all")
        stop = gr.Button(ctx.t("train.format.stop"), elem_id="train-format-stop")
    status = gr.Markdown(elem_id="train-format-status")
    return FormatControls(list_path, audio_dir, steps, run_all, stop, status)


def _schedule_row(
    ctx: UIContext, kind: str, defaults: SoVITSRunConfig | GPTRunConfig, batch_default: int
) -> tuple[gr.Slider, gr.Slider, gr.Slider]:
    with gr.Row():
        batch = gr.Slider(
            1, max(40, batch_default * 3), value=batch_default, step=1, label=ctx.t("train.batch"),
            elem_id=f"train-{kind}-batch",
        )  # fmt: skip
        epochs = gr.Slider(
            1, 50, value=defaults.epochs, step=1, label=ctx.t("train.epochs"), elem_id=f"train-{kind}-epochs"
        )
        save_every = gr.Slider(
            1, 50, value=defaults.save_every_epoch, step=1, label=ctx.t("train.save_every"),
            elem_id=f"train-{kind}-save-every",
        )  # fmt: skip
    return batch, epochs, save_every


def _sovits_only(ctx: UIContext, defaults: SoVITSRunConfig) -> SoVITSOnly:
    lora = is_lora(DEFAULT_TRAIN_VERSION)
    text_lr = gr.Slider(
        0.2, 0.6, value=defaults.text_low_lr_rate, step=0.05, label=ctx.t("train.text_lr"),
        elem_id="train-sovits-text-lr", visible=not lora,
    )  # fmt: skip
    # v3/v4 only (upstream's radio of ranks and its grad_ckpt box).
    lora_rank = gr.Radio(
        [str(r) for r in LORA_RANKS], value=str(DEFAULT_LORA_RANK), label=ctx.t("train.lora_rank"),
        elem_id="train-sovits-lora-rank", visible=lora,
    )  # fmt: skip
    grad_ckpt = gr.Checkbox(
        value=defaults.grad_checkpoint, label=ctx.t("train.grad_ckpt"), elem_id="train-sovits-grad-ckpt",
        visible=lora,
    )  # fmt: skip
    return SoVITSOnly(text_lr, lora_rank, grad_ckpt)


def _settings(
    ctx: UIContext, kind: str, defaults: SoVITSRunConfig | GPTRunConfig
) -> tuple[gr.Number, gr.Checkbox, gr.Checkbox, gr.Dropdown]:
    """Learning rate, checkpoints kept, export, precision: placed in the caller's row."""
    lr = gr.Number(value=defaults.learning_rate, label=ctx.t("train.lr"), elem_id=f"train-{kind}-lr")
    keep_latest = gr.Checkbox(value=defaults.keep_checkpoints == 1, label=ctx.t("train.keep_latest"))
    export = gr.Checkbox(value=defaults.export_weights, label=ctx.t("train.export"))
    precision = gr.Dropdown(list(PRECISIONS), value=defaults.precision, label=ctx.t("train.precision"))
    return lr, keep_latest, export, precision


def _run_controls(
    ctx: UIContext,
    kind: str,
    schedule: tuple[gr.Slider, gr.Slider, gr.Slider],
    settings: tuple[gr.Number, gr.Checkbox, gr.Checkbox, gr.Dropdown],
    gpus: tuple[tuple[str, int], ...],
) -> TrainingControls:
    """GPUs, start/stop, status and loss plot under a section's settings."""
    gpu_box = gr.CheckboxGroup(
        choices=list(gpus), value=[i for _, i in gpus], label=ctx.t("train.gpus"), visible=bool(gpus),
        elem_id=f"train-{kind}-gpus",
    )  # fmt: skip
    with gr.Row():
        start = gr.Button(ctx.t("train.start"), variant="primary", elem_id=f"train-{kind}-start")
        stop = gr.Button(ctx.t("train.stop"), elem_id=f"train-{kind}-stop")
    status = gr.Markdown(elem_id=f"train-{kind}-status")
    plot = gr.LinePlot(
        x="step", y="value", color="loss", label=ctx.t("train.plot"), height=260, elem_id=f"train-{kind}-plot"
    )
    return TrainingControls(*schedule, *settings, gpu_box, start, stop, status, plot)


def _sovits_section(
    ctx: UIContext, batch_default: int, gpus: tuple[tuple[str, int], ...]
) -> tuple[TrainingControls, SoVITSOnly]:
    defaults = SoVITSRunConfig(
        exp_name="", exp_dir=Path(), weights_dir=Path(), pretrained_g=None, pretrained_d=None
    )
    schedule = _schedule_row(ctx, "sovits", defaults, batch_default)
    with gr.Row():
        extra = _sovits_only(ctx, defaults)
        settings = _settings(ctx, "sovits", defaults)
    return _run_controls(ctx, "sovits", schedule, settings, gpus), extra


def _gpt_section(ctx: UIContext, batch_default: int, gpus: tuple[tuple[str, int], ...]) -> TrainingControls:
    defaults = GPTRunConfig(exp_name="", exp_dir=Path(), weights_dir=Path(), pretrained_s1=None)
    schedule = _schedule_row(ctx, "gpt", defaults, batch_default)
    with gr.Row():
        settings = _settings(ctx, "gpt", defaults)
    return _run_controls(ctx, "gpt", schedule, settings, gpus)


@dataclass(frozen=True)
class TrainPage:
    """Every component the tab's events read or write."""

    exp: gr.Dropdown
    version: gr.Radio
    fmt: FormatControls
    sovits: TrainingControls
    sovits_only: SoVITSOnly
    gpt: TrainingControls

    @property
    def refreshed(self) -> list[gr.components.Component]:
        """The outputs of :func:`app.ui.tabs.train_handlers.refresh`, in its order."""
        return [self.fmt.status, self.sovits.status, self.gpt.status, self.sovits.plot, self.gpt.plot]


# -- events ----------------------------------------------------------------------------------------
def _common(c: TrainingControls) -> list[gr.components.Component]:
    """Inputs after the section's own ones, in the order the start handlers take them."""
    return [c.lr, c.keep_latest, c.export, c.precision, c.gpus]


def _wire_jobs(env: TrainEnv, page: TrainPage) -> None:
    """Start and stop buttons; one concurrency group so two clicks cannot both start a run."""
    exp, version, fmt, sovits, gpt = page.exp, page.version, page.fmt, page.sovits, page.gpt
    refreshed = page.refreshed
    format_inputs = [exp, version, fmt.list_path, fmt.audio_dir]
    for step, button in fmt.steps.items():
        button.click(bind(start_format, env, (step,)), format_inputs, [exp, *refreshed], concurrency_id=JOBS)
    fmt.run_all.click(
        bind(start_format, env, FORMAT_STEPS), format_inputs, [exp, *refreshed], concurrency_id=JOBS
    )
    fmt.stop.click(bind(stop_run, env, "format"), [exp, version], refreshed, concurrency_id=JOBS)
    extra = page.sovits_only
    sovits_inputs = [exp, version, sovits.batch, sovits.epochs, sovits.save_every, extra.text_lr,
                     extra.lora_rank, extra.grad_ckpt, *_common(sovits)]  # fmt: skip
    sovits.start.click(bind(start_sovits, env), sovits_inputs, refreshed, concurrency_id=JOBS)
    sovits.stop.click(bind(stop_run, env, "sovits"), [exp, version], refreshed, concurrency_id=JOBS)
    gpt_inputs = [exp, version, gpt.batch, gpt.epochs, gpt.save_every, *_common(gpt)]
    gpt.start.click(bind(start_gpt, env), gpt_inputs, refreshed, concurrency_id=JOBS)
    gpt.stop.click(bind(stop_run, env, "gpt"), [exp, version], refreshed, concurrency_id=JOBS)


def _wire_watch(env: TrainEnv, page: TrainPage) -> None:
    """Experiment and version changes, and the timer polling the runs' status files."""
    exp, version, fmt, sovits, extra = page.exp, page.version, page.fmt, page.sovits, page.sovits_only
    exp.change(
        bind(on_experiment, env),
        [exp, version, fmt.list_path],
        [fmt.list_path, fmt.audio_dir, *page.refreshed],
        show_progress="hidden",
    )
    version_outputs = [
        fmt.steps[SV_STEP], extra.text_lr, extra.lora_rank, extra.grad_ckpt, sovits.epochs,
        sovits.save_every, sovits.batch,
    ]  # fmt: skip
    version.change(
        bind(on_version, env), [exp, version], [*version_outputs, *page.refreshed], show_progress="hidden"
    )
    pickers = bind(refresh_pickers, env.layout.home)
    for picker in (fmt.list_path, fmt.audio_dir):
        picker.focus(
            pickers, [fmt.list_path, fmt.audio_dir], [fmt.list_path, fmt.audio_dir], show_progress="hidden"
        )
    timer = gr.Timer(POLL_S)
    timer.tick(bind(refresh, env), [exp, version], page.refreshed, show_progress="hidden", queue=False)


def build(ctx: UIContext) -> None:
    layout = ctx.layout
    env = TrainEnv(layout, ex.job_manager(layout.jobs), tuple(ex.gpu_choices()))
    batch_default = ex.default_batch_size(DEFAULT_TRAIN_VERSION)
    gr.Markdown(ctx.t("train.title"))
    asset_panel(ctx, TAB_ID, FORMAT_ASSETS)
    exp, version = _experiment_row(ctx, ex.list_experiments(layout))
    with gr.Accordion(ctx.t("train.format"), open=True):
        fmt = _format_section(ctx)
    with gr.Accordion(ctx.t("train.sovits"), open=True):
        sovits, sovits_only = _sovits_section(ctx, batch_default, env.gpus)
    with gr.Accordion(ctx.t("train.gpt"), open=True):
        gpt = _gpt_section(ctx, batch_default, env.gpus)
    page = TrainPage(exp, version, fmt, sovits, sovits_only, gpt)
    _wire_jobs(env, page)
    _wire_watch(env, page)
