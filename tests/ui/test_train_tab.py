"""Train tab texts: run summaries, formatting problems, loss tables (no browser)."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from app.paths import Layout
from app.runstatus import RunStatus, append_metrics
from app.services.experiments import ExperimentState, FormatState, RunState
from app.settings import Settings
from app.ui.app import app_i18n
from app.ui.context import UIContext
from app.ui.tabs import train
from app.ui.tabs.train import PROBLEMS_SHOWN, format_summary, loss_frame, run_summary


def test_running_and_failed_runs_read_well(tmp_path: Path) -> None:
    running = RunStatus(state="running", stage="sovits", epoch=2, total_epochs=8, step=30, total_steps=120,
                        losses={"mel": 21.5}, eta_s=125.0, message="saved resume_20.pt")  # fmt: skip
    text = run_summary("SoVITS", RunState("sovits", tmp_path, running, None))
    assert "**SoVITS**: running" in text and "epoch 2/8" in text and "step 30/120" in text
    assert "25%" in text and "ETA 2m 05s" in text and "mel 21.5" in text and "saved resume_20.pt" in text
    failed = RunStatus(state="failed", stage="gpt", last_error="no clip can be trained on")
    assert "**Error:** no clip can be trained on" in run_summary(
        "GPT", RunState("gpt", tmp_path, failed, None)
    )
    assert run_summary("GPT", RunState("gpt", tmp_path, None, None)) == "**GPT**: none"
    step = RunStatus(state="running", stage="format:1b", step=3, total_steps=20)
    assert "1b HuBERT + 32 kHz audio 3/20" in run_summary(
        "Formatting", RunState("format", tmp_path, step, None)
    )


def test_formatting_problems_are_listed_and_capped(tmp_path: Path) -> None:
    problems = [f"[list] line {i}: expected 4 fields" for i in range(1, PROBLEMS_SHOWN + 6)]
    (tmp_path / "problems.txt").write_text("\n".join(problems) + "\n", encoding="utf-8")
    run = RunState(
        "format", tmp_path, RunStatus(state="done", stage="format:1c", step=20, total_steps=20), None
    )
    state = ExperimentState("voice", tmp_path, "v2", FormatState(20, 2, 20, 20, 20), {"format": run}, (), ())
    text = format_summary(run, state)
    assert f"**{len(problems)} line(s) left out:**" in text and "line 1: expected" in text
    assert f"line {PROBLEMS_SHOWN + 1}:" not in text and "5 more in" in text
    assert "6-name2semantic: 20 rows" in text


def test_loss_frame_is_long_form(tmp_path: Path) -> None:
    for step in (1, 2):
        append_metrics(tmp_path / "metrics.jsonl", step=step, epoch=1, losses={"mel": 10.0 / step, "d": 3.0})
    frame = loss_frame(RunState("sovits", tmp_path, None, None), ("mel",))
    assert list(frame.columns) == ["step", "loss", "value"]
    assert frame.to_dict("records") == [
        {"step": 1, "loss": "mel", "value": 10.0},
        {"step": 2, "loss": "mel", "value": 5.0},
    ]
    assert loss_frame(RunState("gpt", tmp_path / "none", None, None)).empty


def test_the_tab_offers_every_trained_version_with_upstreams_default(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    ctx = UIContext(settings, Layout(settings.home, settings.pretrained_dir).ensure(), app_i18n("en"))
    with gr.Blocks() as demo:
        train.build(ctx)
    by_id = {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}
    version = by_id["train-version"]
    assert [value for _, value in version.choices] == ["v1", "v2", "v2Pro", "v2ProPlus"]
    assert version.value == "v2Pro"  # webui.py: version = "v2Pro"
    sv_button = by_id["train-format-2-get-sv"]
    assert sv_button.visible  # the default version computes speaker embeddings
    (on_version,) = [f for f in demo.fns.values() if f.outputs and f.outputs[0] is sv_button]
    assert on_version.fn(None, "v2")[0]["visible"] is False
    assert on_version.fn(None, "v2ProPlus")[0]["visible"] is True
    assert app_i18n("zh").translations_dict["en"]["train.format.2-get-sv"] == "2-get-sv：说话人向量"


def test_pro_formatting_shows_the_speaker_step_and_its_files(tmp_path: Path) -> None:
    step = RunStatus(state="running", stage="format:2-get-sv", step=7, total_steps=20)
    assert "2-get-sv speaker embeddings 7/20" in run_summary(
        "Formatting", RunState("format", tmp_path, step, None)
    )
    run = RunState("format", tmp_path, RunStatus(state="done", stage="format:1c"), None)
    counts = FormatState(20, 2, 20, 20, 20, sv_files=19)
    pro = ExperimentState("voice", tmp_path, "v2ProPlus", counts, {"format": run}, (), ())
    assert "7-sv_cn: 19" in format_summary(run, pro)
    v2 = ExperimentState("voice", tmp_path, "v2", FormatState(20, 2, 20, 20, 20), {"format": run}, (), ())
    assert "7-sv_cn" not in format_summary(run, v2)
