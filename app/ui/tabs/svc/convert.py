"""The convert step of the SVC tab: a song in, the chosen voice out (:class:`app.infer.svc.pipeline.SVCPipeline`).

Models come from every experiment's ``logs/44k`` (training checkpoints and exported files) and
from uploads (a ``.pth`` plus its ``config.json``); the output is written to
``output/svc_results/`` and shown as a player with a download button.
"""

from __future__ import annotations

import contextvars
from pathlib import Path
from typing import Any

import gradio as gr

from app.audio.io import AudioError, save_audio
from app.audio.pitch import TRACKERS
from app.infer.svc.request import SvcInputError, SvcModelError, SvcRequest, SvcResult, default_output_name
from app.models.upstream.svc.checkpoint import read_config
from app.paths import Layout
from app.services import svc as svc_service
from app.services.device_queue import QueueFull
from app.ui.context import UIContext
from app.ui.messages import error, error_from, render, say
from app.ui.tabs.binding import bind

RESULTS = "svc_results"  # under output/

STRINGS = {
    "en": {
        "svc.cv.model": "Model",
        "svc.cv.upload_model": "…or upload a model (.pth) and its config.json",
        "svc.cv.add_model": "Use the uploaded model",
        "svc.cv.speaker": "Speaker",
        "svc.cv.input": "Song or speech to convert",
        "svc.cv.transpose": "Transpose (semitones)",
        "svc.cv.f0": "Pitch (f0) tracker",
        "svc.cv.auto_f0": "Predict pitch automatically (speech only; singing goes off-key)",
        "svc.cv.noise": "Noise scale",
        "svc.cv.options": "Slicing and mixing",
        "svc.cv.slice_db": "Silence threshold for slicing (dB)",
        "svc.cv.pad": "Padding around each slice (s)",
        "svc.cv.max_slice": "Longest slice (s)",
        "svc.cv.crossfade": "Cross-fade between slices (s)",
        "svc.cv.cluster": "Cluster ratio (0: off; needs the cluster model)",
        "svc.cv.loudness": "Loudness mix (1: model's own, 0: follow the input)",
        "svc.cv.range": "Refuse inputs far outside the voice's trained pitch range",
        "svc.cv.separate": "Separate the vocals first (demucs)",
        "svc.cv.mix_back": "Mix the accompaniment back in",
        "svc.cv.precision": "Precision",
        "svc.cv.precision.fp32": "fp32 (exact)",
        "svc.cv.precision.fast": "fast (bf16 where the CPU/GPU has it)",
        "svc.cv.run": "Convert",
        "svc.cv.output": "Converted",
        "svc.cv.status": "Result",
    },
    "zh": {
        "svc.cv.model": "模型",
        "svc.cv.upload_model": "…或上传模型 (.pth) 及其 config.json",
        "svc.cv.add_model": "使用上传的模型",
        "svc.cv.speaker": "说话人",
        "svc.cv.input": "要转换的歌曲或语音",
        "svc.cv.transpose": "变调（半音）",
        "svc.cv.f0": "音高 (f0) 提取器",
        "svc.cv.auto_f0": "自动预测音高（仅语音；唱歌会跑调）",
        "svc.cv.noise": "噪声比例",
        "svc.cv.options": "切片与混音",
        "svc.cv.slice_db": "切片静音阈值 (dB)",
        "svc.cv.pad": "每段两侧填充 (秒)",
        "svc.cv.max_slice": "最长切片 (秒)",
        "svc.cv.crossfade": "切片交叉淡化 (秒)",
        "svc.cv.cluster": "聚类比例（0：关闭；需要聚类模型）",
        "svc.cv.loudness": "响度混合（1：模型自身，0：跟随输入）",
        "svc.cv.range": "拒绝远超该声音训练音域的输入",
        "svc.cv.separate": "先分离人声 (demucs)",
        "svc.cv.mix_back": "混回伴奏",
        "svc.cv.precision": "精度",
        "svc.cv.precision.fp32": "fp32（精确）",
        "svc.cv.precision.fast": "快速（CPU/GPU 支持时用 bf16）",
        "svc.cv.run": "转换",
        "svc.cv.output": "转换结果",
        "svc.cv.status": "结果",
    },
}


def _choices(layout: Layout) -> dict[str, svc_service.SvcModelChoice]:
    return {c.label: c for c in svc_service.list_models(layout)}


def _speakers(choice: svc_service.SvcModelChoice | None) -> list[str]:
    if choice is None:
        return []
    try:
        spk = read_config(choice.config).spk
    except ValueError:
        return []
    return sorted(spk, key=spk.get)


def refresh_models(layout: Layout, current: str | None) -> dict[str, Any]:
    """The model dropdown listed again, keeping the current model when it is still there."""
    labels = list(_choices(layout))
    return gr.update(choices=labels, value=current if current in labels else (labels[0] if labels else None))


def model_changed(layout: Layout, label: str | None) -> dict[str, Any]:
    """The speaker dropdown for the chosen model (its config.json's speakers, first selected)."""
    names = _speakers(_choices(layout).get(label or ""))
    return gr.update(choices=names, value=names[0] if names else None)


def add_uploaded(layout: Layout, files: list[str] | None) -> dict[str, Any]:
    """Keep an uploaded ``.pth`` + config.json pair as a model and select it."""
    paths = [Path(f) for f in files or []]
    pth = [p for p in paths if p.suffix == ".pth"]
    cfg = [p for p in paths if p.suffix == ".json"]
    if len(pth) != 1 or len(cfg) != 1:
        raise error("svc.err.upload_pair")
    try:
        choice = svc_service.add_uploaded_model(layout, pth[0], cfg[0])
    except ValueError as exc:
        raise error_from(exc) from exc
    return gr.update(choices=list(_choices(layout)), value=choice.label)


def _summary(path: Path, result: SvcResult) -> str:
    """The status lines under the player: file, length, slices, input pitch, then any warnings."""
    pitch = render(result.input_pitch.describe()) if result.input_pitch else say("svc.cv.no_pitch")
    seconds = len(result.audio) / result.sample_rate
    lines = [say("svc.cv.summary", file=path.name, seconds=seconds, slices=result.slices, pitch=pitch)]
    lines += [f"- {render(w)}" for w in result.warnings]
    return "\n".join(lines)


def convert(
    ctx: UIContext,
    label: str | None,
    speaker: str | None,
    source: str | None,
    transpose: float,
    f0_method: str,
    auto_f0: bool,
    noise_scale: float,
    cluster_ratio: float,
    slice_db: float,
    pad_seconds: float,
    max_slice_seconds: float,
    crossfade_seconds: float,
    loudness_mix: float,
    check_range: bool,
    separate: bool,
    mix_accompaniment: bool,
    precision: str = "fp32",
    progress: gr.Progress = gr.Progress(),  # gradio hands each call its own tracker
) -> tuple[str, str]:
    """Convert the uploaded song with the chosen model; (output file, status)."""
    choice = _choices(ctx.layout).get(label or "")
    if choice is None:
        raise error("svc.err.no_model")
    if not source:
        raise error("svc.err.no_input")
    request = SvcRequest(
        audio=Path(source), model=choice.model, config=choice.config, speaker=speaker,
        transpose=float(transpose), f0_method=f0_method, auto_f0=bool(auto_f0), noise_scale=float(noise_scale),
        cluster_ratio=float(cluster_ratio), slice_db=float(slice_db), pad_seconds=float(pad_seconds),
        max_slice_seconds=float(max_slice_seconds), crossfade_seconds=float(crossfade_seconds),
        loudness_mix=float(loudness_mix), check_range=bool(check_range), separate=bool(separate),
        mix_accompaniment=bool(mix_accompaniment), precision=precision,
    )  # fmt: skip
    # Gradio's progress tracker lives in this call's context; the job runs on the device's thread,
    # so it reports through a copy of this context.
    here = contextvars.copy_context()

    def job() -> SvcResult:
        pipeline = svc_service.pipeline(ctx.layout.pretrained, ctx.settings.device)
        return pipeline.convert(
            request,
            progress=lambda fraction, message: here.run(progress, fraction, desc=here.run(render, message)),
        )

    try:
        # The device's one line, shared with TTS from the UI and the API.
        result = ctx.synthesis.run(job).result()
    except QueueFull as exc:
        raise error_from(exc) from exc
    except (SvcInputError, SvcModelError, AudioError, ValueError) as exc:
        raise error_from(exc) from exc
    name = default_output_name(Path(source).name, float(transpose), result.speaker)
    path = save_audio(ctx.layout.output / RESULTS / name, result.audio, result.sample_rate)
    return str(path), _summary(path, result)


def build(ctx: UIContext) -> None:
    """The step's components, wired to the handlers above."""
    models = _choices(ctx.layout)
    first = next(iter(models), None)
    with gr.Row():
        with gr.Column():
            with gr.Row():
                model = gr.Dropdown(
                    list(models), value=first, label=ctx.t("svc.cv.model"), elem_id="svc-cv-model", scale=4
                )
                refresh = gr.Button("↻", scale=0, min_width=40, elem_id="svc-cv-refresh")
            with gr.Accordion(ctx.t("svc.cv.upload_model"), open=False):
                upload = gr.File(file_count="multiple", file_types=[".pth", ".json"], elem_id="svc-cv-upload")
                add_model = gr.Button(ctx.t("svc.cv.add_model"))
            speakers = _speakers(models.get(first)) if first else []
            speaker = gr.Dropdown(
                speakers, value=speakers[0] if speakers else None, label=ctx.t("svc.cv.speaker"),
                elem_id="svc-cv-speaker",
            )  # fmt: skip
            audio_in = gr.Audio(
                sources=["upload"], type="filepath", label=ctx.t("svc.cv.input"), elem_id="svc-cv-input"
            )
        with gr.Column():
            transpose = gr.Slider(
                -24, 24, value=0, step=1, label=ctx.t("svc.cv.transpose"), elem_id="svc-cv-transpose"
            )
            f0 = gr.Dropdown(sorted(TRACKERS), value="pm", label=ctx.t("svc.cv.f0"), elem_id="svc-cv-f0")
            auto_f0 = gr.Checkbox(value=False, label=ctx.t("svc.cv.auto_f0"))
            noise = gr.Slider(0.0, 1.0, value=0.4, step=0.05, label=ctx.t("svc.cv.noise"))
            cluster = gr.Slider(0.0, 1.0, value=0.0, step=0.05, label=ctx.t("svc.cv.cluster"))
            with gr.Accordion(ctx.t("svc.cv.options"), open=False):
                slice_db = gr.Slider(-80, -10, value=-40, step=1, label=ctx.t("svc.cv.slice_db"))
                pad = gr.Slider(0.0, 2.0, value=0.5, step=0.1, label=ctx.t("svc.cv.pad"))
                max_slice = gr.Slider(5, 120, value=30, step=1, label=ctx.t("svc.cv.max_slice"))
                crossfade = gr.Slider(0.0, 1.0, value=0.1, step=0.05, label=ctx.t("svc.cv.crossfade"))
                loudness = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label=ctx.t("svc.cv.loudness"))
                check_range = gr.Checkbox(value=True, label=ctx.t("svc.cv.range"))
                separate = gr.Checkbox(value=False, label=ctx.t("svc.cv.separate"))
                mix_back = gr.Checkbox(value=False, label=ctx.t("svc.cv.mix_back"))
                precision = gr.Radio(
                    [(ctx.t("svc.cv.precision.fp32"), "fp32"), (ctx.t("svc.cv.precision.fast"), "fast")],
                    value="fp32", label=ctx.t("svc.cv.precision"), elem_id="svc-cv-precision",
                )  # fmt: skip
    run = gr.Button(ctx.t("svc.cv.run"), variant="primary", elem_id="svc-cv-run")
    output = gr.Audio(
        type="filepath", interactive=False, label=ctx.t("svc.cv.output"), buttons=["download"],
        elem_id="svc-cv-output",
    )  # fmt: skip
    status = gr.Markdown(elem_id="svc-cv-status")

    refresh.click(bind(refresh_models, ctx.layout), [model], [model])
    model.change(bind(model_changed, ctx.layout), [model], [speaker])
    add_model.click(bind(add_uploaded, ctx.layout), [upload], [model])
    inputs = [model, speaker, audio_in, transpose, f0, auto_f0, noise, cluster, slice_db, pad, max_slice, crossfade, loudness, check_range, separate, mix_back, precision]  # fmt: skip
    run.click(bind(convert, ctx), inputs, [output, status], api_name="svc_convert", concurrency_id="device")
