"""The train step of the SVC tab: start/stop ``app.train.svc`` as a job, live status and loss plot.

Progress comes from the run's ``status.json`` and ``metrics.jsonl`` (never from the job's prints);
jobs are listed from the jobs folder, so a restarted UI shows a running training again.
"""

from __future__ import annotations

import time
from pathlib import Path

import gradio as gr
import pandas as pd

from app.data.preprocess.svc.cluster import train_clusters
from app.paths import Layout, PathOutsideRoot, resolve_inside
from app.runconfig import PRECISIONS, SvcRunConfig
from app.runstatus import METRICS_FILE, read_metrics
from app.services import svc as svc_service
from app.services.jobs import JobError, JobView
from app.services.model_choice import relative_name
from app.settings import Settings
from app.ui.context import UIContext
from app.ui.messages import error, error_from, render, say, term
from app.ui.tabs.binding import bind
from app.ui.tabs.svc.experiment import experiment_tree

PLOTTED = ("loss_g", "loss_d", "mel", "kl", "fm", "lf0")  # metrics.jsonl columns drawn
REFRESH_S = 2.0
LOSS_COLUMNS = ["step", "loss", "value"]

STRINGS = {
    "en": {
        "svc.tr.steps": "Stop after this many steps (0: run the epochs)",
        "svc.tr.epochs": "Epochs",
        "svc.tr.save_every": "Save G_/D_ checkpoints every N steps",
        "svc.tr.keep": "Checkpoints kept (0: all)",
        "svc.tr.batch": "Batch size",
        "svc.tr.lr": "Learning rate",
        "svc.tr.precision": "Precision (fp16/bf16 only on a GPU)",
        "svc.tr.base": "Base model G_0.pth (inside the data folder; empty: logs/44k/G_0.pth if present)",
        "svc.tr.half": "Export the inference file in float16",
        "svc.tr.start": "Start training",
        "svc.tr.stop": "Stop (saves a checkpoint)",
        "svc.tr.cluster": "Build cluster model (for the cluster ratio)",
        "svc.tr.status": "Training",
        "svc.tr.plot": "Losses",
    },
    "zh": {
        "svc.tr.steps": "训练多少步后停止（0：按轮数）",
        "svc.tr.epochs": "轮数",
        "svc.tr.save_every": "每 N 步保存 G_/D_ 检查点",
        "svc.tr.keep": "保留的检查点数（0：全部）",
        "svc.tr.batch": "批大小",
        "svc.tr.lr": "学习率",
        "svc.tr.precision": "精度（fp16/bf16 仅用于 GPU）",
        "svc.tr.base": "底模 G_0.pth（须在数据目录内；留空：若有则用 logs/44k/G_0.pth）",
        "svc.tr.half": "以 float16 导出推理文件",
        "svc.tr.start": "开始训练",
        "svc.tr.stop": "停止（会保存检查点）",
        "svc.tr.cluster": "构建聚类模型（用于聚类比例）",
        "svc.tr.status": "训练",
        "svc.tr.plot": "损失",
    },
}


def status_text(view: JobView | None) -> str:
    """A few Markdown lines about a training job."""
    if view is None:
        return say("svc.tr.no_job")
    st = view.status
    lines = [say("svc.tr.job", state=term("job.state", view.state), id=view.id)]
    if st is not None:
        total = f"/{st.total_steps}" if st.total_steps else ""
        lines.append(say("svc.tr.progress", step=f"{st.step}{total}", epoch=st.epoch))
        if st.losses:
            lines.append(" · ".join(f"{k} {v:.3f}" for k, v in st.losses.items()))
        if st.eta_s:
            lines.append(say("svc.tr.eta", minutes=st.eta_s / 60))
        if st.message:
            lines.append(render(st.message))
        if st.last_error:
            lines.append(say("common.error_line", error=render(st.last_error)))
    return "\n\n".join(lines)


def loss_frame(models_dir: Path) -> pd.DataFrame:
    """metrics.jsonl as long rows (step, loss, value) for the plot."""
    rows = [
        {"step": r["step"], "loss": name, "value": r[name]}
        for r in read_metrics(models_dir / METRICS_FILE)
        for name in PLOTTED
        if name in r
    ]
    return pd.DataFrame(rows, columns=LOSS_COLUMNS)


def latest(layout: Layout, name: str | None) -> JobView | None:
    """The newest training job of the experiment, if any."""
    if not (name or "").strip():
        return None
    views = svc_service.training_jobs(layout, name.strip())
    return views[0] if views else None


def refresh(layout: Layout, name: str | None) -> tuple[str, pd.DataFrame]:
    """(status, losses) of the experiment's newest job: the timer's poll."""
    if not (name or "").strip():
        return "", pd.DataFrame(columns=LOSS_COLUMNS)
    tree = experiment_tree(layout, name)
    return status_text(latest(layout, name)), loss_frame(tree.models)


def _base_pair(layout: Layout, base_path: str | None) -> tuple[Path | None, Path | None]:
    """(G_0, D_0) typed in as the base; the D_ file beside it when there is one."""
    if not (base_path or "").strip():
        return None, None
    try:
        base_g = resolve_inside(base_path.strip(), layout.home)
    except PathOutsideRoot as exc:
        raise error_from(exc) from exc
    if not base_g.is_file():
        raise error("common.err.not_found", path=relative_name(base_g, layout))
    candidate = base_g.with_name(base_g.name.replace("G_", "D_", 1))
    return base_g, (candidate if candidate.is_file() and candidate != base_g else None)


def start_job(
    layout: Layout,
    settings: Settings,
    name: str | None,
    steps: float,
    epochs: float,
    save_every: float,
    keep: float,
    batch_size: float,
    learning_rate: float,
    precision: str,
    base_path: str | None,
    export_half: bool,
) -> tuple[str, pd.DataFrame]:
    """Write the run config and start (or queue) the training job; (status, losses)."""
    tree = experiment_tree(layout, name)
    if not tree.config.is_file() or not tree.train_list.is_file():
        raise error("svc.err.no_dataset", name=tree.root.name)
    running = latest(layout, name)
    if running is not None and running.state in ("running", "queued"):
        raise error("svc.err.job_running", id=running.id, state=term("job.state", running.state))
    base_g, base_d = _base_pair(layout, base_path)
    # 0 in a number box becomes None: the trainer takes config.json's value (keep: 0 keeps all).
    run = SvcRunConfig(
        experiment=tree.root, base_g=base_g, base_d=base_d, epochs=int(epochs) or None,
        max_steps=int(steps) or None, save_every=int(save_every) or None, keep_checkpoints=int(keep),
        batch_size=int(batch_size) or None, learning_rate=float(learning_rate) or None, precision=precision,
        device=settings.device, export_half=bool(export_half),
    )  # fmt: skip
    try:
        view = svc_service.submit_training(layout, run)
    except JobError as exc:
        raise error_from(exc) from exc
    return status_text(view), loss_frame(tree.models)


def stop_job(layout: Layout, name: str | None) -> str:
    """Ask the running job to save and stop; its status."""
    view = latest(layout, name)
    if view is None or view.state not in ("running", "queued"):
        raise error("svc.err.no_running_job")
    stopped = svc_service.stop_job(layout, view.id)
    time.sleep(0.2)
    return status_text(stopped)


def build_cluster(
    layout: Layout,
    name: str | None,
    progress: gr.Progress = gr.Progress(),  # gradio hands each call its own tracker
) -> str:
    """Train the per-speaker k-means centres the cluster ratio pulls toward."""
    tree = experiment_tree(layout, name)
    try:
        path = train_clusters(tree, progress=lambda done, total, spk: progress((done, total), desc=spk))
    except (FileNotFoundError, ValueError) as exc:
        raise error_from(exc) from exc
    return say("svc.tr.cluster_written", file=relative_name(path, layout))


def build(ctx: UIContext, experiment: gr.Dropdown) -> None:
    """The step's components, wired to the handlers above."""
    with gr.Row():
        with gr.Column():
            steps = gr.Number(value=0, precision=0, label=ctx.t("svc.tr.steps"), elem_id="svc-tr-steps")
            epochs = gr.Number(value=10000, precision=0, label=ctx.t("svc.tr.epochs"))
            save_every = gr.Number(
                value=800, precision=0, label=ctx.t("svc.tr.save_every"), elem_id="svc-tr-save"
            )
            keep = gr.Number(value=3, precision=0, label=ctx.t("svc.tr.keep"))
        with gr.Column():
            batch = gr.Number(value=6, precision=0, label=ctx.t("svc.tr.batch"), elem_id="svc-tr-batch")
            lr = gr.Number(value=1e-4, label=ctx.t("svc.tr.lr"))
            precision = gr.Dropdown(list(PRECISIONS), value="fp32", label=ctx.t("svc.tr.precision"))
            base = gr.Textbox(label=ctx.t("svc.tr.base"))
            half = gr.Checkbox(value=False, label=ctx.t("svc.tr.half"))
    with gr.Row():
        start = gr.Button(ctx.t("svc.tr.start"), variant="primary", elem_id="svc-tr-start")
        stop = gr.Button(ctx.t("svc.tr.stop"), variant="stop", elem_id="svc-tr-stop")
        cluster = gr.Button(ctx.t("svc.tr.cluster"))
    status = gr.Markdown(elem_id="svc-tr-status")
    plot = gr.LinePlot(x="step", y="value", color="loss", label=ctx.t("svc.tr.plot"), elem_id="svc-tr-plot")
    timer = gr.Timer(REFRESH_S)

    layout = ctx.layout
    inputs = [experiment, steps, epochs, save_every, keep, batch, lr, precision, base, half]
    start.click(bind(start_job, layout, ctx.settings), inputs, [status, plot], api_name="svc_train_start")
    stop.click(bind(stop_job, layout), [experiment], [status], api_name="svc_train_stop")
    cluster.click(bind(build_cluster, layout), [experiment], [status], concurrency_id="cpu_heavy")
    poll = bind(refresh, layout)  # one function: the timer and a new experiment share its queue slot
    timer.tick(poll, [experiment], [status, plot], show_progress="hidden")
    experiment.change(poll, [experiment], [status, plot], show_progress="hidden")
