"""The convert step of the SVC tab: a song in, the chosen voice out (:class:`app.infer.svc.pipeline.SVCPipeline`).

Models come from every experiment's ``logs/44k`` (training checkpoints and exported files) and
from uploads (a ``.pth`` plus its ``config.json``); the output is written to
``output/svc_results/`` and shown as a player with a download button.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from app.audio.io import AudioError, save_audio
from app.audio.pitch import TRACKERS
from app.infer.svc.request import SvcInputError, SvcModelError, SvcRequest, default_output_name
from app.models.upstream.svc.checkpoint import read_config
from app.services import svc as svc_service
from app.ui.context import UIContext

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
        "svc.cv.run": "转换",
        "svc.cv.output": "转换结果",
        "svc.cv.status": "结果",
    },
}


def _choices(ctx: UIContext) -> dict[str, svc_service.SvcModelChoice]:
    return {c.label: c for c in svc_service.list_models(ctx.layout)}


def _speakers(choice: svc_service.SvcModelChoice | None) -> list[str]:
    if choice is None:
        return []
    try:
        spk = read_config(choice.config).spk
    except ValueError:
        return []
    return sorted(spk, key=spk.get)


def build(ctx: UIContext) -> None:
    models = _choices(ctx)
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
                speakers,
                value=speakers[0] if speakers else None,
                label=ctx.t("svc.cv.speaker"),
                elem_id="svc-cv-speaker",
            )
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
    run = gr.Button(ctx.t("svc.cv.run"), variant="primary", elem_id="svc-cv-run")
    output = gr.Audio(
        type="filepath",
        interactive=False,
        label=ctx.t("svc.cv.output"),
        buttons=["download"],
        elem_id="svc-cv-output",
    )
    status = gr.Markdown(elem_id="svc-cv-status")

    def refresh_models(current):  # type: ignore[no-untyped-def]
        labels = list(_choices(ctx))
        return gr.update(
            choices=labels, value=current if current in labels else (labels[0] if labels else None)
        )

    def model_changed(label):  # type: ignore[no-untyped-def]
        names = _speakers(_choices(ctx).get(label))
        return gr.update(choices=names, value=names[0] if names else None)

    def add_uploaded(files):  # type: ignore[no-untyped-def]
        paths = [Path(f) for f in files or []]
        pth = [p for p in paths if p.suffix == ".pth"]
        cfg = [p for p in paths if p.suffix == ".json"]
        if len(pth) != 1 or len(cfg) != 1:
            raise gr.Error("Upload exactly one .pth model and the config.json it was trained with.")
        try:
            choice = svc_service.add_uploaded_model(ctx.layout, pth[0], cfg[0])
        except ValueError as exc:
            raise gr.Error(str(exc)) from exc
        labels = list(_choices(ctx))
        return gr.update(choices=labels, value=choice.label)

    def convert(label, spk, source, shift, tracker, auto, ns, ratio, db, pad_s, longest, fade, loud, in_range, sep, mix, progress=gr.Progress()):  # type: ignore[no-untyped-def]  # fmt: skip
        choice = _choices(ctx).get(label)
        if choice is None:
            raise gr.Error(
                "Choose a model first (train one in step 2, or upload a .pth with its config.json)."
            )
        if not source:
            raise gr.Error("Upload a song or speech to convert.")
        request = SvcRequest(
            audio=Path(source), model=choice.model, config=choice.config, speaker=spk, transpose=float(shift),
            f0_method=tracker, auto_f0=bool(auto), noise_scale=float(ns), cluster_ratio=float(ratio),
            slice_db=float(db), pad_seconds=float(pad_s), max_slice_seconds=float(longest),
            crossfade_seconds=float(fade), loudness_mix=float(loud), check_range=bool(in_range),
            separate=bool(sep), mix_accompaniment=bool(mix),
        )  # fmt: skip
        pipeline = svc_service.pipeline(ctx.layout.pretrained, ctx.settings.device)
        try:
            result = pipeline.convert(
                request, progress=lambda fraction, message: progress(fraction, desc=message)
            )
        except (SvcInputError, SvcModelError, AudioError, ValueError) as exc:
            raise gr.Error(str(exc)) from exc
        name = default_output_name(Path(source).name, float(shift), result.speaker)
        path = save_audio(ctx.layout.output / RESULTS / name, result.audio, result.sample_rate)
        pitch = result.input_pitch.describe() if result.input_pitch else "no voiced pitch"
        lines = [
            f"**{path.name}** · {len(result.audio) / result.sample_rate:.1f} s in {result.slices} slice(s) · input {pitch}"
        ]
        lines += [f"- {w}" for w in result.warnings]
        return str(path), "\n".join(lines)

    refresh.click(refresh_models, [model], [model])
    model.change(model_changed, [model], [speaker])
    add_model.click(add_uploaded, [upload], [model])
    inputs = [model, speaker, audio_in, transpose, f0, auto_f0, noise, cluster, slice_db, pad, max_slice, crossfade, loudness, check_range, separate, mix_back]  # fmt: skip
    run.click(convert, inputs, [output, status], api_name="svc_convert", concurrency_id="device")
