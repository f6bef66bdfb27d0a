"""SVC tab: singing voice conversion in three steps: dataset, train, convert.

The dataset step fills an experiment (``output/svc/<name>/``, a so-vits-svc 4.1 tree) from uploads
or a server folder of speaker folders and preprocesses it (:mod:`app.data.preprocess.svc.features`);
the train step runs ``app.train.svc`` as a job (:mod:`app.ui.tabs.svc_train`); the convert step
turns a song into a trained voice (:mod:`app.ui.tabs.svc_convert`).
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from app.audio.pitch import TRACKERS
from app.data.preprocess.svc.dataset import add_raw_files, raw_speakers
from app.data.preprocess.svc.features import (
    DEFAULT_F0,
    SvcPreprocessError,
    SvcPreprocessOptions,
    preprocess_svc,
)
from app.models.encoders.content import DEFAULT_ENCODER, ENCODERS
from app.paths import PathOutsideRoot, resolve_inside, safe_name
from app.services import svc as svc_service
from app.ui.context import UIContext
from app.ui.tabs import svc_convert, svc_train
from app.ui.tabs.svc_train import experiment_tree

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
        "tab.svc": "歌声转换",
        "svc.title": "### 歌声转换（so-vits-svc 4.1）\n1 准备数据集 · 2 训练 · 3 转换歌曲。",
        "svc.experiment": "实验（新名称或已有实验）",
        "svc.refresh": "↻",
        "svc.step.dataset": "1 · 数据集",
        "svc.step.train": "2 · 训练",
        "svc.step.convert": "3 · 转换",
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
STRINGS = {lang: {**_OWN[lang], **svc_train.STRINGS[lang], **svc_convert.STRINGS[lang]} for lang in _OWN}


def _raw_folder(ctx: UIContext, folder: str) -> Path | None:
    if not (folder or "").strip():
        return None
    try:
        where = resolve_inside(folder.strip(), ctx.layout.home)
    except PathOutsideRoot as exc:
        raise gr.Error(str(exc)) from exc
    if not where.is_dir():
        raise gr.Error(f"{where} is not a folder")
    return where


def build(ctx: UIContext) -> None:
    gr.Markdown(ctx.t("svc.title"))
    names = svc_service.list_experiments(ctx.layout)
    with gr.Row():
        experiment = gr.Dropdown(
            choices=names, value=names[0] if names else None, allow_custom_value=True,
            label=ctx.t("svc.experiment"), elem_id="svc-experiment", scale=4,
        )  # fmt: skip
        refresh = gr.Button(ctx.t("svc.refresh"), scale=0, min_width=40)
    refresh.click(lambda: gr.update(choices=svc_service.list_experiments(ctx.layout)), outputs=experiment)
    with gr.Tabs():
        with gr.Tab(ctx.t("svc.step.dataset"), id="svc-dataset"):
            _build_dataset(ctx, experiment)
        with gr.Tab(ctx.t("svc.step.train"), id="svc-train"):
            svc_train.build(ctx, experiment)
        with gr.Tab(ctx.t("svc.step.convert"), id="svc-convert"):
            svc_convert.build(ctx)


def _build_dataset(ctx: UIContext, experiment: gr.Dropdown) -> None:
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

    def add_files(name, speaker_name, uploaded):  # type: ignore[no-untyped-def]
        tree = experiment_tree(ctx, name)
        if not uploaded:
            raise gr.Error("Upload some recordings first.")
        try:
            copied = add_raw_files(tree.ensure(), safe_name(speaker_name or ""), [Path(f) for f in uploaded])
        except ValueError as exc:
            raise gr.Error(str(exc)) from exc
        counts = {spk: len(paths) for spk, paths in raw_speakers(tree.raw).items()}
        listing = ", ".join(f"{spk}: {n} file(s)" for spk, n in counts.items())
        return (
            f"Added {len(copied)} file(s). Recordings in `{tree.raw}`: {listing}",
            gr.update(choices=svc_service.list_experiments(ctx.layout), value=tree.root.name),
        )

    add.click(add_files, [experiment, speaker, files], [status, experiment])

    def preprocess(name, folder_in, encoder_name, f0_name, norm, volume, n_workers, progress=gr.Progress()):  # type: ignore[no-untyped-def]
        tree = experiment_tree(ctx, name)
        raw = _raw_folder(ctx, folder_in)
        options = SvcPreprocessOptions(
            pretrained_root=ctx.layout.pretrained, speech_encoder=encoder_name, f0_method=f0_name,
            loudnorm=bool(norm), vol_embedding=bool(volume), workers=int(n_workers),
        )  # fmt: skip

        def show(stage: str, done: int, total: int) -> None:
            progress((done, total), desc=f"{stage} {done}/{total}")

        try:
            report = preprocess_svc(tree, options, raw=raw, progress=show)
        except (SvcPreprocessError, FileNotFoundError, ValueError) as exc:
            raise gr.Error(str(exc)) from exc
        return report.summary(), gr.update(
            choices=svc_service.list_experiments(ctx.layout), value=tree.root.name
        )

    run.click(
        preprocess, [experiment, folder, encoder, f0, loudnorm, vol, workers], [status, experiment],
        api_name="svc_preprocess", concurrency_id="cpu_heavy",
    )  # fmt: skip
