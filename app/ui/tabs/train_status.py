"""What the Train tab's status boxes and loss plots show, read from an experiment's state (no gradio)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from app.runconfig import SV_STEP, is_pro
from app.services import experiments as ex
from app.ui.messages import render, say, term

PROBLEMS_SHOWN = 20  # formatting problems listed in the status box
SOVITS_PLOTTED = ("mel", "kl", "fm", "gen", "d", "cfm")  # comparable scales; "g" would dwarf them
LOSS_COLUMNS = [
    "step",
    "loss",
    "value",
]  # long form, as gr.LinePlot(x="step", y="value", color="loss") reads it
STEPS = ("1a", "1b", SV_STEP, "1c")  # formatting steps, each named by the key "train.step.<step>"
EXPORTS_NAMED = 3  # newest exported weight files named under a run's status


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def run_summary(title: str, run: ex.RunState) -> str:
    """Markdown for one run: state, progress, ETA, losses, last message or error."""
    status = run.status
    parts = [f"**{title}**: {term('job.state', run.state)}"]
    if run.state == "queued":
        parts.append(say("train.status.waiting"))
    if status is not None and run.state != "none":
        if status.stage.startswith("format:"):
            step = status.stage.split(":", 1)[1]
            parts.append(f"{term('train.step', step)} {status.step}/{status.total_steps or '?'}")
        else:
            if status.total_epochs:
                parts.append(say("train.status.epoch", epoch=f"{status.epoch}/{status.total_epochs}"))
            total = f"/{status.total_steps}" if status.total_steps else ""
            parts.append(say("train.status.step", step=f"{status.step}{total}"))
        if status.progress is not None and run.state == "running":
            parts.append(f"{status.progress:.0%}")
        if status.eta_s and run.state == "running":
            parts.append(say("train.status.eta", left=_duration(status.eta_s)))
    lines = [" · ".join(parts)]
    if status is not None and status.losses:
        lines.append(", ".join(f"{k} {v:.3g}" for k, v in status.losses.items()))
    if status is not None and status.message:
        lines.append(f"_{render(status.message)}_")
    if status is not None and status.last_error and run.state in ("failed", "lost"):
        lines.append(say("common.error_line", error=render(status.last_error)))
    if run.job is not None and run.state in ("failed", "lost") and not (status and status.last_error):
        lines.append(say("train.status.log", file=str(run.job.log_path)))
    return "\n\n".join(lines)


def format_summary(run: ex.RunState, state: ex.ExperimentState) -> str:
    """The formatting run's summary, the files each step wrote, and the list lines left out."""
    f = state.formatted
    counts = say(
        "train.status.files",
        text=f.text_rows,
        bert=f.bert_files,
        hubert=f.hubert_files,
        wav=f.wav_files,
        semantic=f.semantic_rows,
    )
    if is_pro(state.version) or f.sv_files:
        counts += f" · 7-sv_cn: {f.sv_files}"
    text = run_summary(say("train.status.formatting"), run) + "\n\n" + counts
    problems_file = run.folder / "problems.txt"
    kinds_file = run.folder / "problems-by-kind.txt"  # written beside it by newer formatting runs
    if problems_file.is_file():
        problems = problems_file.read_text(encoding="utf-8").splitlines()
        # Grouped when there is a grouping: a list with thousands of repeated names is one line.
        listed = kinds_file.read_text(encoding="utf-8").splitlines() if kinds_file.is_file() else problems
        if problems:
            shown = "\n".join(f"- {p}" for p in listed[:PROBLEMS_SHOWN])
            more = (
                "\n- … "
                + say("train.status.more", count=len(listed) - PROBLEMS_SHOWN, file=str(problems_file))
                if len(listed) > PROBLEMS_SHOWN
                else ""
            )
            text += "\n\n" + say("train.status.left_out", count=len(problems)) + f"\n{shown}{more}"
    return text


def training_summary(title: str, run: ex.RunState, exported: tuple[Path, ...]) -> str:
    """A training run's summary and the newest weight files it exported."""
    text = run_summary(title, run)
    if exported:
        text += "\n\n" + say(
            "train.status.exported", files=", ".join(p.name for p in exported[:EXPORTS_NAMED])
        )
    return text


def loss_frame(run: ex.RunState, keys: tuple[str, ...] | None = None) -> pd.DataFrame:
    rows = ex.loss_rows(run.folder, keys)
    return pd.DataFrame(rows or [], columns=LOSS_COLUMNS)
