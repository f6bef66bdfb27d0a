"""Event handlers of the Train tab: module-level functions, each bound to a :class:`TrainEnv`.

:func:`app.ui.tabs.train.build` binds them with ``functools.partial`` and wires them to the
components; they take component values as typed parameters and return the outputs' values. The
experiments service does the work; these turn its errors into ``gr.Error`` messages and its state
into the status boxes (:mod:`app.ui.tabs.train_status`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd

from app import config_io
from app.paths import Layout, PathOutsideRoot, safe_name
from app.runconfig import RUN_FILE, FormatRunConfig, GPTRunConfig, SoVITSRunConfig, is_lora, is_pro
from app.services import experiments as ex
from app.services.jobs import JobManager
from app.services.model_choice import relative_name
from app.services.weights import BERT_ASSET, HUBERT_ASSET
from app.ui.messages import error, error_from, render, say, warning
from app.ui.tabs.missing import check_before_job
from app.ui.tabs.train_status import (
    LOSS_COLUMNS,
    SOVITS_PLOTTED,
    format_summary,
    loss_frame,
    training_summary,
)

# Values of [format status, SoVITS status, GPT status, SoVITS plot, GPT plot].
Refreshed = tuple[str, str, str, pd.DataFrame, pd.DataFrame]


@dataclass(frozen=True)
class TrainEnv:
    """What every handler of the tab uses."""

    layout: Layout  # data folders (experiments, weights, jobs)
    jobs: JobManager  # the process's job manager for layout.jobs
    gpus: tuple[tuple[str, int], ...]  # (label, CUDA index) offered; empty without CUDA


@dataclass(frozen=True)
class TrainChoices:
    """A training section's settings as the user left them, typed (sliders hand over floats)."""

    batch_size: int  # per GPU
    epochs: int
    save_every_epoch: int
    learning_rate: float
    keep_latest: bool  # keep only the newest resume checkpoint
    export_weights: bool  # write inference weights at every save
    precision: str  # autocast precision on GPU
    gpus: tuple[int, ...]  # CUDA indices ticked; empty: the job's default device
    text_low_lr_rate: float | None = None  # SoVITS v1-v2ProPlus only
    lora_rank: int | None = None  # SoVITS v3/v4 only
    grad_checkpoint: bool | None = None  # SoVITS v3/v4 only


# What formatting reads (HuBERT for 1b, the Chinese BERT for 1a) and the default version's base models.
FORMAT_ASSETS = (HUBERT_ASSET, BERT_ASSET, "gpt-sovits-v2")


def _name(value: str | None) -> str:
    try:
        return safe_name(value or "")
    except ValueError as exc:
        raise error("train.err.name", problem=render(exc.args[0] if exc.args else str(exc))) from None


def refresh(env: TrainEnv, exp_value: str | None, version_value: str) -> Refreshed:
    """The status boxes and loss plots of the experiment and version shown (the timer's poll)."""
    blank = pd.DataFrame(columns=LOSS_COLUMNS)
    try:
        name = safe_name(exp_value or "")
    except ValueError:
        return say("train.status.no_name"), "", "", blank, blank
    state = ex.experiment_state(env.layout, env.jobs, name, version_value)
    return (
        format_summary(state.runs["format"], state),
        training_summary("SoVITS", state.runs["sovits"], state.sovits_weights),
        training_summary("GPT", state.runs["gpt"], state.gpt_weights),
        loss_frame(state.runs["sovits"], SOVITS_PLOTTED),
        loss_frame(state.runs["gpt"]),
    )


def _relative(layout: Layout, path: Path | None) -> str:
    if path is None:
        return ""
    try:
        return os.path.relpath(path, layout.home)
    except ValueError:  # another drive on Windows
        return str(path)


def on_experiment(env: TrainEnv, exp_value: str | None, version_value: str, list_value: str | None) -> tuple:
    """Fill empty dataset fields from the experiment's last formatting run (never overwrite typing).

    Returns [.list field, audio field, *refreshed].
    """
    fill = (gr.skip(), gr.skip())
    try:
        run_yaml = ex.run_dir(env.layout, safe_name(exp_value or ""), "format") / RUN_FILE
        if not (list_value or "").strip() and run_yaml.is_file():
            saved = config_io.load(FormatRunConfig, run_yaml)
            fill = (_relative(env.layout, saved.list_path), _relative(env.layout, saved.audio_dir))
    except (ValueError, config_io.ConfigError):
        pass
    return (*fill, *refresh(env, exp_value, version_value))


def start_format(
    env: TrainEnv,
    steps: tuple[str, ...],
    exp_value: str | None,
    version_value: str,
    list_value: str | None,
    audio_value: str | None,
) -> tuple:
    """Queue formatting ``steps``; returns [experiment menu update, *refreshed]."""
    name = _name(exp_value)
    check_before_job(env.layout, FORMAT_ASSETS, required=False)
    try:
        config = ex.format_config(
            env.layout, name, list_value or "", audio_value or "", steps=steps, version=version_value
        )
        ex.start(env.layout, env.jobs, name, "format", config, tuple(i for _, i in env.gpus[:1]))
    except (ex.ExperimentError, PathOutsideRoot) as exc:
        raise error_from(exc) from None
    return (gr.update(choices=ex.list_experiments(env.layout)), *refresh(env, name, version_value))


def stop_run(env: TrainEnv, kind: str, exp_value: str | None, version_value: str) -> Refreshed:
    """Stop the ``kind`` run's job ("format", "sovits" or "gpt")."""
    try:
        ex.stop(env.layout, env.jobs, _name(exp_value), kind, version_value)
    except ex.ExperimentError as exc:
        raise error_from(exc) from None
    return refresh(env, exp_value, version_value)


def start_sovits(
    env: TrainEnv,
    exp_value: str | None,
    version_value: str,
    batch: float,
    epochs: float,
    save_every: float,
    text_lr: float,
    lora_rank: str,
    grad_ckpt: bool,
    lr: float,
    keep_latest: bool,
    export: bool,
    precision: str,
    gpu_values: list[int] | None,
) -> Refreshed:
    """Start SoVITS training; v3/v4 take the LoRA rank and checkpointing, the others the text-lr ratio."""
    name = _name(exp_value)
    lora = is_lora(version_value)
    choices = TrainChoices(
        batch_size=int(batch), epochs=int(epochs), save_every_epoch=int(save_every), learning_rate=float(lr),
        keep_latest=bool(keep_latest), export_weights=bool(export), precision=precision,
        gpus=tuple(int(g) for g in gpu_values or ()),
        text_low_lr_rate=None if lora else float(text_lr),
        lora_rank=int(lora_rank) if lora else None,
        grad_checkpoint=bool(grad_ckpt) if lora else None,
    )  # fmt: skip
    return _start_training(env, "sovits", name, version_value, choices)


def start_gpt(
    env: TrainEnv,
    exp_value: str | None,
    version_value: str,
    batch: float,
    epochs: float,
    save_every: float,
    lr: float,
    keep_latest: bool,
    export: bool,
    precision: str,
    gpu_values: list[int] | None,
) -> Refreshed:
    """Start GPT training."""
    name = _name(exp_value)
    choices = TrainChoices(
        batch_size=int(batch), epochs=int(epochs), save_every_epoch=int(save_every), learning_rate=float(lr),
        keep_latest=bool(keep_latest), export_weights=bool(export), precision=precision,
        gpus=tuple(int(g) for g in gpu_values or ()),
    )  # fmt: skip
    return _start_training(env, "gpt", name, version_value, choices)


def _run_config(
    env: TrainEnv, kind: str, name: str, version: str, choices: TrainChoices
) -> SoVITSRunConfig | GPTRunConfig:
    keep = 1 if choices.keep_latest else 0  # upstream's "save latest only" keeps one
    try:
        if kind == "sovits":
            return ex.sovits_config(
                env.layout, name, version=version, batch_size=choices.batch_size, epochs=choices.epochs,
                save_every_epoch=choices.save_every_epoch, learning_rate=choices.learning_rate,
                keep_checkpoints=keep, export_weights=choices.export_weights, precision=choices.precision,
                text_low_lr_rate=choices.text_low_lr_rate, lora_rank=choices.lora_rank,
                grad_checkpoint=choices.grad_checkpoint,
            )  # fmt: skip
        return ex.gpt_config(
            env.layout, name, version=version, batch_size=choices.batch_size, epochs=choices.epochs,
            save_every_epoch=choices.save_every_epoch, learning_rate=choices.learning_rate,
            keep_checkpoints=keep, export_weights=choices.export_weights, precision=choices.precision,
        )  # fmt: skip
    except ex.ExperimentError as exc:
        raise error_from(exc) from None


def _start_training(env: TrainEnv, kind: str, name: str, version: str, choices: TrainChoices) -> Refreshed:
    state = ex.experiment_state(env.layout, env.jobs, name, version)
    if not state.formatted.ready(kind, version):
        needs = state.formatted.missing_steps(kind, version)
        raise error("train.err.not_formatted", name=name, version=version, steps=needs)
    config = _run_config(env, kind, name, version, choices)
    download = f"python tools/download_models.py gpt-sovits-{version.lower()}"
    if isinstance(config, SoVITSRunConfig) and is_lora(version):
        base = config.pretrained_g
        if base is None or not Path(base).is_file():
            # LoRA adapts the base: without it there is nothing to train (upstream's UI would
            # start from random weights).
            shown = relative_name(Path(base), env.layout) if base is not None else "?"
            raise error("train.err.lora_base", version=version, file=shown, command=download)
    try:
        ex.start(env.layout, env.jobs, name, kind, config, choices.gpus)
    except ex.ExperimentError as exc:
        raise error_from(exc) from None
    starts = (
        [config.pretrained_g, config.pretrained_d]
        if isinstance(config, SoVITSRunConfig)
        else [config.pretrained_s1]
    )
    # v3/v4 have no discriminator (pretrained_d None) and need their base (checked above).
    missing = [relative_name(Path(p), env.layout) for p in starts if p is not None and not Path(p).is_file()]
    if missing:
        warning("train.warn.no_base", files=", ".join(missing), command=download)
    return refresh(env, name, version)


def on_version(env: TrainEnv, exp_value: str | None, version_value: str) -> tuple:
    """Show what the version uses; propose upstream's SoVITS schedule and batch size for it.

    Returns [2-get-sv button, text-lr, LoRA rank, grad-ckpt, SoVITS epochs, save every, batch, *refreshed].
    """
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
        *refresh(env, exp_value, version_value),
    )
