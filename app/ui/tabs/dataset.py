"""Dataset tab: cut long recordings into training clips (uploaded files or a folder in the data root)."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import gradio as gr

from app.audio import AUDIO_EXTENSIONS
from app.audio.slicer import SlicerOptions, SlicerOptionsError
from app.data.preprocess.slice import SliceReport, collect_inputs, slice_files
from app.paths import Layout, PathOutsideRoot, resolve_inside
from app.services.model_choice import relative_name
from app.ui.context import UIContext
from app.ui.locales import complete
from app.ui.messages import error, error_from, render, say
from app.ui.tabs.binding import bind

TAB_ID = "dataset"
TITLE_KEY = "tab.dataset"
DEFAULT_OUT = "slicer_opt"  # upstream's output folder name (output/slicer_opt)
MAX_SHOWN = 60  # clips rendered as players; the rest are listed by name only

STRINGS = complete(
    {
        "en": {
            "tab.dataset": "Dataset",
            "dataset.slicer.title": "### Slice recordings into clips\nLong recordings are cut at pauses into 32 kHz clips for training.",
            "dataset.files": "Audio files to slice",
            "dataset.folder": "…or a folder on the server (inside the data folder)",
            "dataset.folder.info": "Relative paths start at the data folder; folders outside it are refused.",
            "dataset.out": "Output folder (under output/)",
            "dataset.params": "Slicer settings",
            "dataset.threshold": "Silence threshold (dB)",
            "dataset.min_length": "Minimum clip length (ms)",
            "dataset.min_interval": "Minimum silence to cut at (ms)",
            "dataset.hop": "Hop size (ms)",
            "dataset.max_sil_kept": "Max silence kept around a cut (ms)",
            "dataset.max": "Normalised peak (max)",
            "dataset.alpha": "Normalised share (alpha)",
            "dataset.workers": "Parallel processes",
            "dataset.run": "Slice",
            "dataset.status": "Result",
            "dataset.clips": "Clips",
        },
        "zh": {
            "tab.dataset": "数据集",
            "dataset.slicer.title": "### 切分录音\n在停顿处把长录音切成 32 kHz 的训练片段。",
            "dataset.files": "要切分的音频文件",
            "dataset.folder": "…或服务器上的文件夹（须在数据目录内）",
            "dataset.folder.info": "相对路径从数据目录开始；数据目录之外的文件夹会被拒绝。",
            "dataset.out": "输出文件夹（在 output/ 下）",
            "dataset.params": "切分参数",
            "dataset.threshold": "静音阈值 (dB)",
            "dataset.min_length": "每段最短长度 (ms)",
            "dataset.min_interval": "最短切割静音 (ms)",
            "dataset.hop": "帧移 (ms)",
            "dataset.max_sil_kept": "切点两侧最多保留静音 (ms)",
            "dataset.max": "归一化峰值 (max)",
            "dataset.alpha": "归一化混合比例 (alpha)",
            "dataset.workers": "并行进程数",
            "dataset.run": "开始切分",
            "dataset.status": "结果",
            "dataset.clips": "切分结果",
        },
    }
)


def _sources(layout: Layout, files: list[str] | None, folder: str) -> list[Path]:
    sources = [Path(f) for f in files or []]
    if folder.strip():
        try:
            where = resolve_inside(folder.strip(), layout.home)
        except PathOutsideRoot as exc:
            raise error_from(exc) from exc
        if not where.exists():
            raise error("common.err.not_found", path=relative_name(where, layout))
        sources += collect_inputs(where)
    if not sources:
        raise error("dataset.err.nothing", extensions=", ".join(sorted(AUDIO_EXTENSIONS)))
    return sources


def _summary(report: SliceReport) -> str:
    ok = len(report.files) - len(report.errors)
    lines = [say("dataset.summary", clips=len(report.clips), files=ok, folder=str(report.out_dir))]
    lines += ["- " + say("dataset.failed", error=render(f.error)) for f in report.errors]
    if len(report.clips) > MAX_SHOWN:
        lines.append(say("dataset.shown", shown=MAX_SHOWN))
    return "\n".join(lines)


def _report_file(progress: gr.Progress, done: int, total: int, name: str) -> None:
    progress((done, total), desc=name)


def slice_clips(
    layout: Layout,
    files_in: list[str] | None, folder_in: str, out_in: str, thr: float, min_len: float, min_int: float,
    hop_ms: float, max_sil_ms: float, peak_v: float, alpha_v: float, n_workers: float,
    progress: gr.Progress = gr.Progress(),
) -> tuple[str, list[str]]:  # fmt: skip
    """Slice the sources into ``output/<out_in>``; returns (summary, clip paths).

    The parameter names are those of the ``slice`` API endpoint (Gradio takes them from here).
    """
    try:
        opts = SlicerOptions(
            threshold_db=float(thr),
            min_length_ms=int(min_len),
            min_interval_ms=int(min_int),
            hop_ms=int(hop_ms),
            max_sil_kept_ms=int(max_sil_ms),
            peak=float(peak_v),
            alpha=float(alpha_v),
        )
        out_dir = resolve_inside(out_in.strip() or DEFAULT_OUT, layout.output)
    except (SlicerOptionsError, PathOutsideRoot, TypeError, ValueError) as exc:
        raise error_from(exc) from exc
    sources = _sources(layout, files_in, folder_in)
    progress((0, len(sources)), desc=say("dataset.progress"))
    report_progress = functools.partial(_report_file, progress)
    report = slice_files(sources, out_dir, opts, workers=int(n_workers), progress=report_progress)
    return _summary(report), [str(p) for p in report.clips]


def show_clips(ctx: UIContext, paths: list[str]) -> None:
    """Players for the first clips (``gr.render``: rebuilt whenever the clip list changes)."""
    if not paths:
        return
    gr.Markdown(ctx.t("dataset.clips"))
    with gr.Column(elem_id="dataset-clips"):
        for path in paths[:MAX_SHOWN]:
            gr.Audio(
                value=path, label=Path(path).name, type="filepath", interactive=False, buttons=["download"]
            )


def _sources_column(ctx: UIContext) -> list[gr.components.Component]:
    """Uploaded files, a server folder, and the output folder name."""
    with gr.Column():
        files = gr.File(
            label=ctx.t("dataset.files"),
            file_count="multiple",
            file_types=sorted(AUDIO_EXTENSIONS),
            elem_id="dataset-files",
        )
        folder = gr.Textbox(
            label=ctx.t("dataset.folder"), info=ctx.t("dataset.folder.info"), elem_id="dataset-folder"
        )
        out_name = gr.Textbox(label=ctx.t("dataset.out"), value=DEFAULT_OUT, elem_id="dataset-out")
    return [files, folder, out_name]


def _slicer_column(ctx: UIContext) -> list[gr.components.Component]:
    """The slicer's settings and the worker count, in :func:`slice_clips`'s order."""
    defaults = SlicerOptions()
    cpus = os.cpu_count() or 1
    with gr.Column(), gr.Accordion(ctx.t("dataset.params"), open=True):
        return [
            gr.Slider(-80, 0, value=defaults.threshold_db, step=1, label=ctx.t("dataset.threshold")),
            gr.Number(value=defaults.min_length_ms, precision=0, label=ctx.t("dataset.min_length")),
            gr.Number(value=defaults.min_interval_ms, precision=0, label=ctx.t("dataset.min_interval")),
            gr.Number(value=defaults.hop_ms, precision=0, label=ctx.t("dataset.hop")),
            gr.Number(value=defaults.max_sil_kept_ms, precision=0, label=ctx.t("dataset.max_sil_kept")),
            gr.Slider(0.05, 1.0, value=defaults.peak, step=0.05, label=ctx.t("dataset.max")),
            gr.Slider(0.0, 1.0, value=defaults.alpha, step=0.05, label=ctx.t("dataset.alpha")),
            gr.Slider(1, cpus, value=min(4, cpus), step=1, label=ctx.t("dataset.workers")),
        ]


def build(ctx: UIContext) -> None:
    gr.Markdown(ctx.t("dataset.slicer.title"))
    with gr.Row():
        sources = _sources_column(ctx)
        settings = _slicer_column(ctx)
    run = gr.Button(ctx.t("dataset.run"), variant="primary", elem_id="dataset-run")
    status = gr.Markdown(elem_id="dataset-status")
    clips = gr.State([])
    run.click(
        bind(slice_clips, ctx.layout),
        inputs=[*sources, *settings],
        outputs=[status, clips],
        api_name="slice",
        concurrency_id="cpu_heavy",
    )
    gr.render(inputs=clips)(bind(show_clips, ctx))
