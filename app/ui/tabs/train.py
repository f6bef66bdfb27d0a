"""Train tab: format a labelled dataset, fine-tune SoVITS and GPT, watch the jobs.

Everything runs as jobs (:mod:`app.services.experiments`): formatting steps and trainings wait in
one device queue, report through their status files, and are found again after the UI
restarts. A timer polls the status files every few seconds; the loss plots read the runs'
``metrics.jsonl``. Parameters default to upstream GPT-SoVITS's web UI values, the version too
(v2Pro). For v2Pro/v2ProPlus, 1b brings the speaker embeddings (2-get-sv) along, and a button
for 2-get-sv alone is shown. For v3/v4 the SoVITS section trains LoRA adapters: it shows the
LoRA rank and gradient checkpointing instead of the text learning-rate ratio, and proposes
upstream's shorter schedule (2 epochs, saved every epoch).
"""

from __future__ import annotations

import os
from pathlib import Path

import gradio as gr
import pandas as pd

from app import config_io
from app.paths import PathOutsideRoot, safe_name
from app.runconfig import (
    DEFAULT_LORA_RANK,
    DEFAULT_TRAIN_VERSION,
    FORMAT_STEPS,
    LORA_RANKS,
    PRECISIONS,
    RUN_FILE,
    SV_STEP,
    TRAIN_VERSIONS,
    FormatRunConfig,
    GPTRunConfig,
    SoVITSRunConfig,
    is_lora,
    is_pro,
)
from app.services import experiments as ex
from app.ui.context import UIContext

TAB_ID = "train"
TITLE_KEY = "tab.train"
POLL_S = 2.0  # status refresh period
PROBLEMS_SHOWN = 20  # formatting problems listed in the status box
SOVITS_PLOTTED = ("mel", "kl", "fm", "gen", "d", "cfm")  # comparable scales; "g" would dwarf them
STEP_LABELS = {
    "1a": "1a text + BERT",
    "1b": "1b HuBERT + 32 kHz audio",
    SV_STEP: "2-get-sv speaker embeddings",
    "1c": "1c semantic tokens",
}

STRINGS = {
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


# -- text for the status boxes ----------------------------------------------------------------------
def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def run_summary(title: str, run: ex.RunState) -> str:
    """Markdown for one run: state, progress, ETA, losses, last message or error."""
    status = run.status
    parts = [f"**{title}**: {run.state}"]
    if run.state == "queued":
        parts.append("waiting for the device")
    if status is not None and run.state != "none":
        if status.stage.startswith("format:"):
            step = status.stage.split(":", 1)[1]
            parts.append(f"{STEP_LABELS.get(step, step)} {status.step}/{status.total_steps or '?'}")
        else:
            if status.total_epochs:
                parts.append(f"epoch {status.epoch}/{status.total_epochs}")
            parts.append(f"step {status.step}" + (f"/{status.total_steps}" if status.total_steps else ""))
        if status.progress is not None and run.state == "running":
            parts.append(f"{status.progress:.0%}")
        if status.eta_s and run.state == "running":
            parts.append(f"ETA {_duration(status.eta_s)}")
    lines = [" · ".join(parts)]
    if status is not None and status.losses:
        lines.append(", ".join(f"{k} {v:.3g}" for k, v in status.losses.items()))
    if status is not None and status.message:
        lines.append(f"_{status.message}_")
    if status is not None and status.last_error and run.state in ("failed", "lost"):
        lines.append(f"**Error:** {status.last_error}")
    if run.job is not None and run.state in ("failed", "lost") and not (status and status.last_error):
        lines.append("See the job log in " + str(run.job.log_path))
    return "\n\n".join(lines)


def format_summary(run: ex.RunState, state: ex.ExperimentState) -> str:
    f = state.formatted
    counts = (
        f"2-name2text: {f.text_rows} rows · 3-bert: {f.bert_files} · 4-cnhubert: {f.hubert_files} · "
        f"5-wav32k: {f.wav_files} · 6-name2semantic: {f.semantic_rows} rows"
    )
    if is_pro(state.version) or f.sv_files:
        counts += f" · 7-sv_cn: {f.sv_files}"
    text = run_summary("Formatting", run) + "\n\n" + counts
    problems_file = run.folder / "problems.txt"
    if problems_file.is_file():
        problems = problems_file.read_text(encoding="utf-8").splitlines()
        if problems:
            shown = "\n".join(f"- {p}" for p in problems[:PROBLEMS_SHOWN])
            more = (
                f"\n- … {len(problems) - PROBLEMS_SHOWN} more in {problems_file}"
                if len(problems) > PROBLEMS_SHOWN
                else ""
            )
            text += f"\n\n**{len(problems)} line(s) left out:**\n{shown}{more}"
    return text


def loss_frame(run: ex.RunState, keys: tuple[str, ...] | None = None) -> pd.DataFrame:
    rows = ex.loss_rows(run.folder, keys)
    return pd.DataFrame(rows or [], columns=["step", "loss", "value"])


# -- the tab ---------------------------------------------------------------------------------------
def build(ctx: UIContext) -> None:
    layout = ctx.layout
    jobs = ex.job_manager(layout.jobs)
    gpus = ex.gpu_choices()
    batch_default = ex.default_batch_size(DEFAULT_TRAIN_VERSION)
    sovits_defaults = SoVITSRunConfig(
        exp_name="", exp_dir=Path(), weights_dir=Path(), pretrained_g=None, pretrained_d=None
    )
    gpt_defaults = GPTRunConfig(exp_name="", exp_dir=Path(), weights_dir=Path(), pretrained_s1=None)
    experiments = ex.list_experiments(layout)

    gr.Markdown(ctx.t("train.title"))
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

    with gr.Accordion(ctx.t("train.format"), open=True):
        with gr.Row():
            list_path = gr.Textbox(label=ctx.t("train.list"), elem_id="train-list", scale=2)
            audio_dir = gr.Textbox(label=ctx.t("train.audio"), elem_id="train-audio", scale=2)
        with gr.Row():
            step_buttons = {
                step: gr.Button(
                    ctx.t(f"train.format.{step}"),
                    elem_id=f"train-format-{step}",
                    visible=step != SV_STEP or is_pro(DEFAULT_TRAIN_VERSION),
                )
                for step in FORMAT_STEPS
            }
            format_all = gr.Button(ctx.t("train.format.all"), variant="primary", elem_id="train-format-all")
            format_stop = gr.Button(ctx.t("train.format.stop"), elem_id="train-format-stop")
        format_status = gr.Markdown(elem_id="train-format-status")

    def training_controls(kind: str, defaults: SoVITSRunConfig | GPTRunConfig) -> dict:
        c: dict = {}
        with gr.Row():
            c["batch"] = gr.Slider(
                1,
                max(40, batch_default * 3),
                value=batch_default,
                step=1,
                label=ctx.t("train.batch"),
                elem_id=f"train-{kind}-batch",
            )
            c["epochs"] = gr.Slider(
                1,
                50,
                value=defaults.epochs,
                step=1,
                label=ctx.t("train.epochs"),
                elem_id=f"train-{kind}-epochs",
            )
            c["save_every"] = gr.Slider(
                1,
                50,
                value=defaults.save_every_epoch,
                step=1,
                label=ctx.t("train.save_every"),
                elem_id=f"train-{kind}-save-every",
            )
        with gr.Row():
            if isinstance(defaults, SoVITSRunConfig):
                lora = is_lora(DEFAULT_TRAIN_VERSION)
                c["text_lr"] = gr.Slider(
                    0.2,
                    0.6,
                    value=defaults.text_low_lr_rate,
                    step=0.05,
                    label=ctx.t("train.text_lr"),
                    elem_id=f"train-{kind}-text-lr",
                    visible=not lora,
                )
                # v3/v4 only (upstream's radio of ranks and its grad_ckpt box).
                c["lora_rank"] = gr.Radio(
                    [str(r) for r in LORA_RANKS],
                    value=str(DEFAULT_LORA_RANK),
                    label=ctx.t("train.lora_rank"),
                    elem_id=f"train-{kind}-lora-rank",
                    visible=lora,
                )
                c["grad_ckpt"] = gr.Checkbox(
                    value=defaults.grad_checkpoint,
                    label=ctx.t("train.grad_ckpt"),
                    elem_id=f"train-{kind}-grad-ckpt",
                    visible=lora,
                )
            c["lr"] = gr.Number(
                value=defaults.learning_rate, label=ctx.t("train.lr"), elem_id=f"train-{kind}-lr"
            )
            c["keep_latest"] = gr.Checkbox(
                value=defaults.keep_checkpoints == 1, label=ctx.t("train.keep_latest")
            )
            c["export"] = gr.Checkbox(value=defaults.export_weights, label=ctx.t("train.export"))
            c["precision"] = gr.Dropdown(
                list(PRECISIONS), value=defaults.precision, label=ctx.t("train.precision")
            )
        c["gpus"] = gr.CheckboxGroup(
            choices=gpus, value=[i for _, i in gpus], label=ctx.t("train.gpus"), visible=bool(gpus), elem_id=f"train-{kind}-gpus"
        )  # fmt: skip
        with gr.Row():
            c["start"] = gr.Button(ctx.t("train.start"), variant="primary", elem_id=f"train-{kind}-start")
            c["stop"] = gr.Button(ctx.t("train.stop"), elem_id=f"train-{kind}-stop")
        c["status"] = gr.Markdown(elem_id=f"train-{kind}-status")
        c["plot"] = gr.LinePlot(
            x="step",
            y="value",
            color="loss",
            label=ctx.t("train.plot"),
            height=260,
            elem_id=f"train-{kind}-plot",
        )
        return c

    with gr.Accordion(ctx.t("train.sovits"), open=True):
        sovits = training_controls("sovits", sovits_defaults)
    with gr.Accordion(ctx.t("train.gpt"), open=True):
        gpt = training_controls("gpt", gpt_defaults)

    # -- handlers ------------------------------------------------------------------------------
    def name_of(value: str | None) -> str:
        try:
            return safe_name(value or "")
        except ValueError as exc:
            raise gr.Error(f"Choose an experiment name: {exc}") from None

    def refresh(exp_value: str | None, version_value: str):
        blank = pd.DataFrame(columns=["step", "loss", "value"])
        try:
            name = safe_name(exp_value or "")
        except ValueError:
            return "Choose or type an experiment name.", "", "", blank, blank
        state = ex.experiment_state(layout, jobs, name, version_value)
        s_text = run_summary("SoVITS", state.runs["sovits"])
        g_text = run_summary("GPT", state.runs["gpt"])
        if state.sovits_weights:
            s_text += "\n\nExported: " + ", ".join(p.name for p in state.sovits_weights[:3])
        if state.gpt_weights:
            g_text += "\n\nExported: " + ", ".join(p.name for p in state.gpt_weights[:3])
        return (
            format_summary(state.runs["format"], state),
            s_text,
            g_text,
            loss_frame(state.runs["sovits"], SOVITS_PLOTTED),
            loss_frame(state.runs["gpt"]),
        )

    refreshed = [format_status, sovits["status"], gpt["status"], sovits["plot"], gpt["plot"]]

    def relative(path: Path | None) -> str:
        if path is None:
            return ""
        try:
            return os.path.relpath(path, layout.home)
        except ValueError:
            return str(path)

    def on_experiment(exp_value: str | None, version_value: str, list_value: str):
        """Fill empty dataset fields from the experiment's last formatting run (never overwrite typing)."""
        fill = (gr.skip(), gr.skip())
        try:
            run_yaml = ex.run_dir(layout, safe_name(exp_value or ""), "format") / RUN_FILE
            if not list_value.strip() and run_yaml.is_file():
                saved = config_io.load(FormatRunConfig, run_yaml)
                fill = (relative(saved.list_path), relative(saved.audio_dir))
        except (ValueError, config_io.ConfigError):
            pass
        return (*fill, *refresh(exp_value, version_value))

    def start_format(steps: tuple[str, ...]):
        def run(exp_value, version_value, list_value, audio_value):
            name = name_of(exp_value)
            try:
                config = ex.format_config(
                    layout, name, list_value, audio_value, steps=steps, version=version_value
                )
                ex.start(layout, jobs, name, "format", config, tuple(i for _, i in gpus[:1]))
            except (ex.ExperimentError, PathOutsideRoot) as exc:
                raise gr.Error(str(exc)) from None
            return (gr.update(choices=ex.list_experiments(layout)), *refresh(name, version_value))

        return run

    format_inputs = [exp, version, list_path, audio_dir]
    for step, button in step_buttons.items():
        button.click(start_format((step,)), format_inputs, [exp, *refreshed], concurrency_id="train_jobs")
    format_all.click(
        start_format(FORMAT_STEPS), format_inputs, [exp, *refreshed], concurrency_id="train_jobs"
    )

    def stopper(kind: str):
        def run(exp_value, version_value):
            try:
                ex.stop(layout, jobs, name_of(exp_value), kind, version_value)
            except ex.ExperimentError as exc:
                raise gr.Error(str(exc)) from None
            return refresh(exp_value, version_value)

        return run

    format_stop.click(stopper("format"), [exp, version], refreshed, concurrency_id="train_jobs")

    def starter(kind: str):
        def run(exp_value, version_value, batch, epochs, save_every, *rest):
            name = name_of(exp_value)
            if kind == "sovits":
                text_lr, lora_rank, grad_ckpt, lr, keep_latest, export, precision, gpu_values = rest
            else:
                lr, keep_latest, export, precision, gpu_values = rest
            state = ex.experiment_state(layout, jobs, name, version_value)
            if not state.formatted.ready(kind, version_value):
                needs = state.formatted.missing_steps(kind, version_value)
                raise gr.Error(f"Format the dataset of {name!r} for {version_value} first (steps {needs}).")
            options = {
                "batch_size": int(batch), "epochs": int(epochs), "save_every_epoch": int(save_every),
                "learning_rate": float(lr), "keep_checkpoints": 1 if keep_latest else 0,
                "export_weights": bool(export), "precision": precision,
            }  # fmt: skip
            try:
                if kind == "sovits" and is_lora(version_value):
                    config = ex.sovits_config(
                        layout, name, version=version_value, lora_rank=int(lora_rank),
                        grad_checkpoint=bool(grad_ckpt), **options,
                    )  # fmt: skip
                elif kind == "sovits":
                    config = ex.sovits_config(
                        layout, name, version=version_value, text_low_lr_rate=float(text_lr), **options
                    )
                else:
                    config = ex.gpt_config(layout, name, version=version_value, **options)
            except ex.ExperimentError as exc:
                raise gr.Error(str(exc)) from None
            download = f"python tools/download_models.py gpt-sovits-{version_value.lower()}"
            if isinstance(config, SoVITSRunConfig) and is_lora(version_value):
                base = config.pretrained_g
                if base is None or not Path(base).is_file():
                    # LoRA adapts the base: without it there is nothing to train (upstream's UI
                    # would start from random weights).
                    raise gr.Error(
                        f"{version_value} LoRA training needs its base model {base}; download: {download}"
                    )
            try:
                ex.start(layout, jobs, name, kind, config, tuple(int(g) for g in gpu_values or ()))
            except ex.ExperimentError as exc:
                raise gr.Error(str(exc)) from None
            starts = (
                [config.pretrained_g, config.pretrained_d] if kind == "sovits" else [config.pretrained_s1]
            )
            # v3/v4 have no discriminator (pretrained_d None) and need their base (checked above).
            missing = [str(p) for p in starts if p is not None and not Path(p).is_file()]
            if missing:
                gr.Warning(
                    f"Not found: {', '.join(missing)}. Training starts from random weights there; "
                    f"download the base models with: {download}"
                )
            return refresh(name, version_value)

        return run

    for kind, c in (("sovits", sovits), ("gpt", gpt)):
        sovits_only = [c["text_lr"], c["lora_rank"], c["grad_ckpt"]] if kind == "sovits" else []
        params = [c["batch"], c["epochs"], c["save_every"], *sovits_only, c["lr"],
                  c["keep_latest"], c["export"], c["precision"], c["gpus"]]  # fmt: skip
        c["start"].click(starter(kind), [exp, version, *params], refreshed, concurrency_id="train_jobs")
        c["stop"].click(stopper(kind), [exp, version], refreshed, concurrency_id="train_jobs")

    exp.change(
        on_experiment,
        [exp, version, list_path],
        [list_path, audio_dir, *refreshed],
        show_progress="hidden",
    )

    def on_version(exp_value: str | None, version_value: str):
        """Show what the version uses; propose upstream's SoVITS schedule and batch size for it."""
        lora = is_lora(version_value)
        schedule = ex.sovits_defaults(version_value)
        return (
            gr.update(visible=is_pro(version_value)),
            gr.update(visible=not lora),
            gr.update(visible=lora),
            gr.update(visible=lora),
            gr.update(value=schedule.epochs),
            gr.update(value=schedule.save_every_epoch),
            gr.update(value=ex.default_batch_size(version_value)),
            *refresh(exp_value, version_value),
        )

    version_outputs = [
        step_buttons[SV_STEP], sovits["text_lr"], sovits["lora_rank"], sovits["grad_ckpt"], sovits["epochs"],
        sovits["save_every"], sovits["batch"],
    ]  # fmt: skip
    version.change(on_version, [exp, version], [*version_outputs, *refreshed], show_progress="hidden")
    timer = gr.Timer(POLL_S)
    timer.tick(refresh, [exp, version], refreshed, show_progress="hidden", queue=False)
