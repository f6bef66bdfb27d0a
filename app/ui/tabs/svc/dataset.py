"""The dataset step of the SVC tab: recordings into an experiment, then preprocessing.

Uploads go to ``dataset_raw/<speaker>/`` of the experiment; a server folder of speaker folders
(inside the data folder) can be used instead. Preprocessing is
:func:`app.data.preprocess.svc.features.preprocess_svc`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from app.audio.pitch import TRACKERS
from app.data.preprocess.svc.dataset import add_raw_files, raw_speakers
from app.data.preprocess.svc.features import (
    DEFAULT_F0,
    SvcPreprocessError,
    SvcPreprocessOptions,
    SvcPreprocessReport,
    preprocess_svc,
)
from app.models.encoders.content import DEFAULT_ENCODER, ENCODER_ASSETS, ENCODERS
from app.paths import Layout, PathOutsideRoot, resolve_inside, safe_name
from app.services.model_choice import relative_name
from app.ui.context import UIContext
from app.ui.messages import error, error_from, render, say, term
from app.ui.tabs.binding import bind
from app.ui.tabs.missing import check_before_job
from app.ui.tabs.svc.experiment import experiment_choices, experiment_tree

STRINGS = {
    "en": {
        "svc.ds.speaker": "Speaker name for the uploads",
        "svc.ds.files": "Recordings of this speaker (any audio format)",
        "svc.ds.add": "Add to the experiment",
        "svc.ds.folder": "…or a server folder with one sub-folder per speaker (inside the data folder)",
        "svc.ds.encoder": "Content encoder",
        "svc.ds.f0": "Pitch (f0) tracker",
        "svc.ds.loudnorm": "Normalise clip peaks (so-vits-svc 4.1's loudness step)",
        "svc.ds.vol": "Volume embedding (model follows input loudness)",
        "svc.ds.workers": "Parallel processes",
        "svc.ds.run": "Preprocess",
        "svc.ds.status": "Dataset",
    },
    "zh": {
        "svc.ds.speaker": "上传录音的说话人名称",
        "svc.ds.files": "该说话人的录音（任意音频格式）",
        "svc.ds.add": "加入实验",
        "svc.ds.folder": "…或服务器上的文件夹，每个说话人一个子文件夹（须在数据目录内）",
        "svc.ds.encoder": "内容编码器",
        "svc.ds.f0": "音高 (f0) 提取器",
        "svc.ds.loudnorm": "峰值归一化（so-vits-svc 4.1 的响度步骤）",
        "svc.ds.vol": "响度嵌入（模型跟随输入响度）",
        "svc.ds.workers": "并行进程数",
        "svc.ds.run": "预处理",
        "svc.ds.status": "数据集",
    },
}


def preprocess_summary(layout: Layout, report: SvcPreprocessReport) -> str:
    """The preprocessing report in the reader's language (``report.summary()`` is the CLI's English)."""
    c = report.clips
    lines = [
        say(
            "svc.ds.summary", clips=report.train + report.val, speakers=len(report.speakers),
            folder=relative_name(report.experiment, layout), train=report.train, val=report.val, new=c.written,
            kept=c.reused,
        ),
        say("svc.ds.features", written=report.features_written, reused=report.features_reused),
    ]  # fmt: skip
    lines += ["- " + say("svc.ds.skipped", file=s.source.name, reason=render(s.reason)) for s in c.skipped]
    lines += ["- " + say("svc.ds.failed", file=f.clip.name, error=render(f.error)) for f in report.failed]
    lines += [f"- {render(w)}" for w in report.warnings]
    if report.pitch:
        lines.append("\n" + say("svc.ds.pitch_title"))
        lines += [f"- {name}: {render(r.describe())}" for name, r in sorted(report.pitch.items())]
    return "\n".join(lines)


def needed_assets(encoder: str) -> tuple[str, ...]:
    """The catalog assets preprocessing with ``encoder`` reads (its content encoder's folder)."""
    asset_id, _ = ENCODER_ASSETS.get(encoder, (None, ""))
    return (asset_id,) if asset_id else ()


def _raw_folder(layout: Layout, folder: str | None) -> Path | None:
    """The server folder typed in, or None when empty; it must lie inside the data folder."""
    if not (folder or "").strip():
        return None
    try:
        where = resolve_inside(folder.strip(), layout.home)
    except PathOutsideRoot as exc:
        raise error_from(exc) from exc
    if not where.is_dir():
        raise error("common.err.not_folder", path=relative_name(where, layout))
    return where


def add_files(
    layout: Layout, name: str | None, speaker: str | None, uploaded: list[str] | None
) -> tuple[str, dict[str, Any]]:
    """Copy the uploads into ``dataset_raw/<speaker>/``; (status, experiment dropdown)."""
    tree = experiment_tree(layout, name)
    if not uploaded:
        raise error("svc.err.no_uploads")
    try:
        copied = add_raw_files(tree.ensure(), safe_name(speaker or ""), [Path(f) for f in uploaded])
    except ValueError as exc:
        raise error_from(exc) from exc
    counts = {spk: len(paths) for spk, paths in raw_speakers(tree.raw).items()}
    listing = ", ".join(say("svc.ds.speaker_files", speaker=spk, files=n) for spk, n in counts.items())
    return (
        say("svc.ds.added", files=len(copied), folder=relative_name(tree.raw, layout), listing=listing),
        experiment_choices(layout, tree.root.name),
    )


def preprocess(
    layout: Layout,
    name: str | None,
    folder: str | None,
    encoder: str,
    f0_method: str,
    loudnorm: bool,
    vol_embedding: bool,
    workers: float,
    progress: gr.Progress = gr.Progress(),  # gradio hands each call its own tracker
) -> tuple[str, dict[str, Any]]:
    """Preprocess the experiment (or the server folder into it); (report, experiment dropdown)."""
    check_before_job(layout, needed_assets(encoder), required=True)
    tree = experiment_tree(layout, name)
    raw = _raw_folder(layout, folder)
    options = SvcPreprocessOptions(
        pretrained_root=layout.pretrained, speech_encoder=encoder, f0_method=f0_method,
        loudnorm=bool(loudnorm), vol_embedding=bool(vol_embedding), workers=int(workers),
    )  # fmt: skip

    def show(stage: str, done: int, total: int) -> None:
        progress(
            (done, total),
            desc=say("svc.ds.progress", stage=term("svc.ds.stage", stage), done=done, total=total),
        )

    try:
        report = preprocess_svc(tree, options, raw=raw, progress=show)
    except (SvcPreprocessError, FileNotFoundError, ValueError) as exc:
        raise error_from(exc) from exc
    return preprocess_summary(layout, report), experiment_choices(layout, tree.root.name)


def build(ctx: UIContext, experiment: gr.Dropdown) -> None:
    """The step's components, wired to the handlers above."""
    with gr.Row():
        with gr.Column():
            speaker = gr.Textbox(label=ctx.t("svc.ds.speaker"), value="speaker0", elem_id="svc-ds-speaker")
            files = gr.File(label=ctx.t("svc.ds.files"), file_count="multiple", elem_id="svc-ds-files")
            add = gr.Button(ctx.t("svc.ds.add"), elem_id="svc-ds-add")
            folder = gr.Textbox(label=ctx.t("svc.ds.folder"), elem_id="svc-ds-folder")
        with gr.Column():
            encoder = gr.Dropdown(sorted(ENCODERS), value=DEFAULT_ENCODER, label=ctx.t("svc.ds.encoder"))
            f0 = gr.Dropdown(
                sorted(TRACKERS), value=DEFAULT_F0, label=ctx.t("svc.ds.f0"), elem_id="svc-ds-f0"
            )
            loudnorm = gr.Checkbox(value=True, label=ctx.t("svc.ds.loudnorm"))
            vol = gr.Checkbox(value=False, label=ctx.t("svc.ds.vol"))
            workers = gr.Slider(1, 8, value=1, step=1, label=ctx.t("svc.ds.workers"))
    run = gr.Button(ctx.t("svc.ds.run"), variant="primary", elem_id="svc-ds-run")
    status = gr.Markdown(elem_id="svc-ds-status")

    add.click(bind(add_files, ctx.layout), [experiment, speaker, files], [status, experiment])
    run.click(
        bind(preprocess, ctx.layout), [experiment, folder, encoder, f0, loudnorm, vol, workers],
        [status, experiment], api_name="svc_preprocess", concurrency_id="cpu_heavy",
    )  # fmt: skip
