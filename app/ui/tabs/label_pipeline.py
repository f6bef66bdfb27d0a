"""The "build a dataset" panel of the Label tab: recordings -> separate -> clean -> slice -> transcribe -> .list.

The clean-up and ASR-engine controls come from :mod:`app.ui.tabs.label_cleanup`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from pathlib import Path

import gradio as gr

from app.audio.denoise import DenoiseError
from app.audio.slicer import SlicerOptions, SlicerOptionsError
from app.data.preprocess.cleanup import CleanupError
from app.data.preprocess.gtcrn import GtcrnError
from app.data.preprocess.mdx import MdxError
from app.data.preprocess.pipeline import (
    PipelineError,
    PipelineOptions,
    PipelineResult,
    StageProgress,
    build_dataset,
)
from app.data.preprocess.separate import DEFAULT_MODEL as DEFAULT_DEMUCS
from app.data.preprocess.separate import SeparationError
from app.data.preprocess.separate import list_audio_files as list_raw_files
from app.data.preprocess.transcribe import (
    ASR_LANGUAGES,
    BUNDLED_NAME,
    DEFAULT_MODEL,
    PRECISIONS,
    TranscribeOptions,
    TranscriptionError,
    bundled_model_path,
    installed_whisper_models,
)
from app.paths import Layout, PathOutsideRoot, resolve_inside
from app.ui.context import UIContext
from app.ui.messages import STRINGS as MESSAGE_STRINGS
from app.ui.messages import error, error_from, render, say
from app.ui.tabs.binding import bind
from app.ui.tabs.label_cleanup import ENGINE_CHOICES, build_cleanup, pipeline_parts, separation_choices

STAGE_NAMES = {
    "separate": "1 separate vocals",
    "clean": "1b clean up vocals",
    "slice": "2 slice",
    "transcribe": "3 transcribe",
}

STRINGS = {
    "en": {
        "label.pipe.title": "Build a dataset from recordings (separate → slice → transcribe)",
        "label.pipe.files": "Recordings to upload",
        "label.pipe.folder": "…or a folder on the server (inside the data folder)",
        "label.pipe.name": "Dataset name (also the speaker name)",
        "label.pipe.separate": "Separate vocals first (songs, music, noisy recordings)",
        "label.pipe.demucs": "Separation model (demucs)",
        "label.pipe.shifts": "Shifts (more: slightly better, slower)",
        "label.pipe.overlap": "Chunk overlap",
        "label.pipe.min_length": "Minimum clip length (ms)",
        "label.pipe.threshold": "Silence threshold (dB)",
        "label.pipe.asr": "Speech recognition model",
        "label.pipe.language": "Language",
        "label.pipe.precision": "Precision",
        "label.pipe.vad": "Skip non-speech (VAD filter)",
        "label.pipe.beam": "Beam size",
        "label.pipe.run": "Build dataset",
        "label.pipe.status": "Result",
    },
    "zh": {
        "label.pipe.title": "从录音构建数据集（人声分离 → 切分 → 识别）",
        "label.pipe.files": "上传录音",
        "label.pipe.folder": "…或服务器上的文件夹（须在数据目录内）",
        "label.pipe.name": "数据集名称（也是说话人名称）",
        "label.pipe.separate": "先分离人声（歌曲、音乐、嘈杂录音）",
        "label.pipe.demucs": "分离模型 (demucs)",
        "label.pipe.shifts": "随机平移次数（越多越好、越慢）",
        "label.pipe.overlap": "分块重叠",
        "label.pipe.min_length": "每段最短长度 (ms)",
        "label.pipe.threshold": "静音阈值 (dB)",
        "label.pipe.asr": "语音识别模型",
        "label.pipe.language": "语言",
        "label.pipe.precision": "精度",
        "label.pipe.vad": "跳过非语音（VAD 过滤）",
        "label.pipe.beam": "束搜索宽度",
        "label.pipe.run": "构建数据集",
        "label.pipe.status": "结果",
    },
}


def asr_note(pretrained: Path) -> str:
    """Which model "default" means on this machine, said plainly (the issue asks the UI to say so)."""
    installed = installed_whisper_models(pretrained)
    if installed:
        return say("label.asr.default", model=installed[-1], folder=pretrained.name)
    if bundled_model_path() is not None:
        return say("label.asr.bundled", folder=pretrained.name, model=BUNDLED_NAME)
    return say("label.asr.none", folder=pretrained.name)


def _asr_choices(pretrained: Path) -> list[str]:
    installed = installed_whisper_models(pretrained)
    return [DEFAULT_MODEL, *installed, *(["tiny.en"] if "tiny.en" not in installed else [])]


def summary(result: PipelineResult, home: Path) -> str:
    rows, where = len(result.transcribed.rows), str(result.list_path.relative_to(home))
    lines = [say("label.pipe.summary", rows=rows, file=where)]
    if result.separated is not None:
        lines.append(
            "- "
            + say("label.pipe.separated", files=len(result.separated.files), model=result.separated.model)
        )
    if result.cleaned is not None:
        steps = " → ".join(dict.fromkeys(r.step for r in result.cleaned.records))
        report = str(result.cleaned.report.relative_to(home))
        lines.append(
            "- " + say("label.pipe.cleaned", files=len(result.cleaned.outputs), steps=steps, report=report)
        )
    lines.append("- " + say("label.pipe.sliced", clips=len(result.sliced.clips)))
    lines.append("- " + say("label.pipe.transcribed", model=result.transcribed.model))
    if result.transcribed.bundled_model:
        lines.append("- " + say("label.pipe.bundled", model=BUNDLED_NAME))
    lines += [f"- {render(problem)}" for problem in result.problems]
    return "\n".join(lines)


@dataclass(frozen=True)
class PipelineInputs:
    """The panel's inputs, in the order :func:`run_pipeline` takes them."""

    files: gr.File
    folder: gr.Textbox
    name: gr.Textbox
    separate: gr.Checkbox
    demucs: gr.Dropdown
    shifts: gr.Slider
    overlap: gr.Slider
    min_length: gr.Number
    threshold: gr.Slider
    model: gr.Dropdown
    language: gr.Dropdown
    precision: gr.Dropdown
    vad: gr.Checkbox
    beam: gr.Slider
    engine: gr.Dropdown
    punctuation: gr.Checkbox
    karaoke: gr.Checkbox
    karaoke_model: gr.Dropdown
    dereverb: gr.Checkbox
    dereverb_model: gr.Dropdown
    denoise: gr.Checkbox
    denoiser: gr.Dropdown
    strength: gr.Slider

    def as_list(self) -> list[gr.components.Component]:
        return [getattr(self, f.name) for f in fields(self)]


def _options(
    separate: bool, demucs: str, shifts: float, overlap: float, min_length: float, threshold: float,
    model: str, language: str, precision: str, vad: bool, beam: float, engine: str, punctuation: bool,
    karaoke: bool, karaoke_model: str, dereverb: bool, dereverb_model: str, denoise: bool, denoiser: str,
    strength: float,
) -> PipelineOptions:  # fmt: skip
    """The pipeline's options from the panel's values (sliders and numbers come as floats)."""
    separation, cleanup = pipeline_parts(
        demucs, shifts, overlap, karaoke, karaoke_model, dereverb, dereverb_model, denoise, denoiser, strength
    )
    return PipelineOptions(
        separate=bool(separate),
        separation=separation,
        cleanup=cleanup,
        slicer=SlicerOptions(
            threshold_db=float(threshold),
            min_length_ms=int(min_length),
            min_interval_ms=min(300, int(min_length)),
        ),
        transcription=TranscribeOptions(
            engine=engine,
            model=model,
            language=language,
            precision=precision,
            vad_filter=bool(vad),
            beam_size=int(beam),
            punctuation=bool(punctuation),
        ),
    )


def _report_stage(progress: gr.Progress, step: StageProgress) -> None:
    key = f"label.pipe.stage.{step.stage}"  # a stage without a translated name shows its id
    name = say(key) if key in MESSAGE_STRINGS["en"] else STAGE_NAMES.get(step.stage, step.stage)
    progress(step.overall, desc=say("label.pipe.progress", stage=name, message=render(step.message)))


def run_pipeline(
    layout: Layout,
    files_in: list[str] | None, folder_in: str, name_in: str, sep_on: bool, demucs_in: str, shifts_in: float,
    overlap_in: float, min_len: float, thr: float, model_in: str, lang_in: str, prec_in: str, vad_in: bool,
    beam_in: float, engine_in: str, punct_in: bool, karaoke_in: bool, karaoke_model_in: str, dereverb_in: bool,
    dereverb_model_in: str, denoise_in: bool, denoiser_in: str, strength_in: float,
    progress: gr.Progress = gr.Progress(),
) -> tuple[str, str]:  # fmt: skip
    """Build the dataset; returns (summary, the new .list relative to the data folder).

    The parameter names are those of the ``build_dataset`` API endpoint (Gradio takes them from here).
    """
    sources = [Path(f) for f in files_in or []]
    try:
        if (folder_in or "").strip():
            sources += list_raw_files(resolve_inside(folder_in.strip(), layout.home))
        options = _options(
            sep_on,
            demucs_in,
            shifts_in,
            overlap_in,
            min_len,
            thr,
            model_in,
            lang_in,
            prec_in,
            vad_in,
            beam_in,
            engine_in,
            punct_in,
            karaoke_in,
            karaoke_model_in,
            dereverb_in,
            dereverb_model_in,
            denoise_in,
            denoiser_in,
            strength_in,
        )
    except (
        PathOutsideRoot,
        FileNotFoundError,
        SlicerOptionsError,
        SeparationError,
        TranscriptionError,
        CleanupError,
        DenoiseError,
    ) as exc:
        raise error_from(exc) from exc
    if not sources:
        raise error("label.pipe.err.nothing")
    report = functools.partial(_report_stage, progress)
    try:
        result = build_dataset(
            sources, name_in or "", layout.output, layout.pretrained, options, progress=report
        )
    except (
        PipelineError,
        SeparationError,
        TranscriptionError,
        MdxError,
        GtcrnError,
        SlicerOptionsError,
        ValueError,
    ) as exc:
        raise error_from(exc) from exc
    return summary(result, layout.home), str(result.list_path.relative_to(layout.home))


def _sources_column(ctx: UIContext) -> tuple[gr.File, gr.Textbox, gr.Textbox]:
    with gr.Column():
        files = gr.File(label=ctx.t("label.pipe.files"), file_count="multiple", elem_id="label-pipe-files")
        folder = gr.Textbox(label=ctx.t("label.pipe.folder"), elem_id="label-pipe-folder")
        name = gr.Textbox(label=ctx.t("label.pipe.name"), value="speaker", elem_id="label-pipe-name")
    return files, folder, name


def _audio_column(
    ctx: UIContext,
) -> tuple[gr.Checkbox, gr.Dropdown, gr.Slider, gr.Slider, gr.Number, gr.Slider]:
    """Separation and slicing settings."""
    slicer = SlicerOptions()
    with gr.Column():
        separate = gr.Checkbox(label=ctx.t("label.pipe.separate"), value=False, elem_id="label-pipe-separate")
        demucs = gr.Dropdown(
            separation_choices(ctx.layout.pretrained),
            value=DEFAULT_DEMUCS,
            label=ctx.t("label.pipe.separator"),
        )
        shifts = gr.Slider(0, 10, value=1, step=1, label=ctx.t("label.pipe.shifts"))
        overlap = gr.Slider(0.0, 0.9, value=0.25, step=0.05, label=ctx.t("label.pipe.overlap"))
        min_length = gr.Number(value=slicer.min_length_ms, precision=0, label=ctx.t("label.pipe.min_length"))
        threshold = gr.Slider(-80, 0, value=slicer.threshold_db, step=1, label=ctx.t("label.pipe.threshold"))
    return separate, demucs, shifts, overlap, min_length, threshold


def _asr_column(
    ctx: UIContext,
) -> tuple[gr.Dropdown, gr.Dropdown, gr.Dropdown, gr.Checkbox, gr.Slider, gr.Dropdown, gr.Checkbox]:
    """Speech recognition settings, with a note saying which model "default" is here."""
    pretrained = ctx.layout.pretrained
    with gr.Column():
        model = gr.Dropdown(_asr_choices(pretrained), value=DEFAULT_MODEL, label=ctx.t("label.pipe.asr"))
        gr.Markdown(asr_note(pretrained), elem_id="label-pipe-asr-note")
        language = gr.Dropdown(list(ASR_LANGUAGES), value="auto", label=ctx.t("label.pipe.language"))
        precision = gr.Dropdown(list(PRECISIONS), value="auto", label=ctx.t("label.pipe.precision"))
        vad = gr.Checkbox(value=True, label=ctx.t("label.pipe.vad"))
        beam = gr.Slider(1, 10, value=5, step=1, label=ctx.t("label.pipe.beam"))
        engine = gr.Dropdown(
            list(ENGINE_CHOICES),
            value=ENGINE_CHOICES[0],
            label=ctx.t("label.pipe.engine"),
            elem_id="label-pipe-engine",
        )
        punctuation = gr.Checkbox(value=True, label=ctx.t("label.pipe.punct"))
    return model, language, precision, vad, beam, engine, punctuation


def build_pipeline(ctx: UIContext, list_box: gr.Textbox) -> gr.events.Dependency:
    """The panel; returns the run event, which sets ``list_box`` to the new .list (chain ``.success`` to open it)."""
    with gr.Accordion(ctx.t("label.pipe.title"), open=False, elem_id="label-pipeline"):
        with gr.Row():
            columns = (*_sources_column(ctx), *_audio_column(ctx), *_asr_column(ctx))
        inputs = PipelineInputs(*columns, *build_cleanup(ctx).as_list())
        run = gr.Button(ctx.t("label.pipe.run"), variant="primary", elem_id="label-pipe-run")
        status = gr.Markdown(elem_id="label-pipe-status")
    return run.click(
        bind(run_pipeline, ctx.layout),
        inputs=inputs.as_list(),
        outputs=[status, list_box],
        api_name="build_dataset",
        concurrency_id="gpu",
    )
