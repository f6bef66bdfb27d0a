"""Train tab texts: run summaries, formatting problems, loss tables (no browser)."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pytest

from app.paths import Layout
from app.runconfig import SoVITSRunConfig
from app.runstatus import RunStatus, append_metrics
from app.services import experiments as ex
from app.services.experiments import ExperimentState, FormatState, RunState
from app.settings import Settings
from app.ui.app import app_i18n
from app.ui.context import UIContext
from app.ui.tabs import train
from app.ui.tabs.train_status import PROBLEMS_SHOWN, format_summary, loss_frame, run_summary


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
    assert [value for _, value in version.choices] == ["v1", "v2", "v2Pro", "v2ProPlus", "v3", "v4"]
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


def build_tab(tmp_path: Path):
    settings = Settings(home=tmp_path)
    layout = Layout(settings.home, settings.pretrained_dir).ensure()
    with gr.Blocks() as demo:
        train.build(UIContext(settings, layout, app_i18n("en")))
    return demo, layout, {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}


def test_lora_versions_show_rank_and_checkpointing_and_upstreams_schedule(tmp_path: Path) -> None:
    demo, _, by_id = build_tab(tmp_path)
    rank, ckpt, text_lr = (
        by_id["train-sovits-lora-rank"],
        by_id["train-sovits-grad-ckpt"],
        by_id["train-sovits-text-lr"],
    )
    assert [value for _, value in rank.choices] == ["16", "32", "64", "128"] and rank.value == "32"
    assert ckpt.value is False
    # The default version (v2Pro) trains the whole model: no LoRA settings shown.
    assert text_lr.visible and not rank.visible and not ckpt.visible
    assert "train-gpt-lora-rank" not in by_id  # the GPT has none
    (on_version,) = [
        f for f in demo.fns.values() if f.outputs and f.outputs[0] is by_id["train-format-2-get-sv"]
    ]
    outputs = on_version.outputs

    def shown(version: str) -> dict:
        return dict(zip((o.elem_id for o in outputs), on_version.fn(None, version), strict=False))

    for version in ("v3", "v4"):
        update = shown(version)
        assert update["train-format-2-get-sv"]["visible"] is False  # no speaker embeddings
        assert update["train-sovits-text-lr"]["visible"] is False
        assert (
            update["train-sovits-lora-rank"]["visible"] is True
            and update["train-sovits-grad-ckpt"]["visible"] is True
        )
        # webui.py set_default: v3/v4 propose 2 epochs, saved every epoch.
        assert (update["train-sovits-epochs"]["value"], update["train-sovits-save-every"]["value"]) == (2, 1)
        assert update["train-sovits-batch"]["value"] == ex.default_batch_size(version)
    update = shown("v2")
    assert (
        update["train-sovits-text-lr"]["visible"] is True
        and update["train-sovits-lora-rank"]["visible"] is False
    )
    assert (update["train-sovits-epochs"]["value"], update["train-sovits-save-every"]["value"]) == (8, 4)
    assert app_i18n("zh").translations_dict["en"]["train.lora_rank"] == "LoRA秩"


def test_starting_v4_sovits_training_passes_rank_and_checkpointing(tmp_path: Path, monkeypatch) -> None:
    demo, layout, by_id = build_tab(tmp_path)
    folder = layout.experiment("voice")  # formatted enough for SoVITS (1a, 1b)
    for sub in ("4-cnhubert", "5-wav32k"):
        (folder / sub).mkdir(parents=True)
    (folder / "2-name2text.txt").write_text("a.wav\tn i2\t1 1\tni\n", encoding="utf-8")
    (folder / "4-cnhubert" / "a.wav.pt").write_bytes(b"")
    (folder / "5-wav32k" / "a.wav").write_bytes(b"")
    started: list = []
    monkeypatch.setattr(ex, "start", lambda layout, jobs, name, kind, config, gpus: started.append(config))
    button = by_id["train-sovits-start"]._id
    (start,) = [f for f in demo.fns.values() if (button, "click") in f.targets]
    # exp, version, batch, epochs, save_every, text_lr, lora_rank, grad_ckpt, lr, keep_latest, export, precision, gpus
    with pytest.raises(gr.Error, match=r"v4 LoRA training needs its base model .*s2Gv4\.pth.*gpt-sovits-v4"):
        start.fn("voice", "v4", 3, 2, 1, 0.4, "64", True, 1e-4, True, True, "fp16", [])
    assert not started
    base = layout.pretrained / "gsv-v4-pretrained" / "s2Gv4.pth"
    base.parent.mkdir(parents=True)
    base.write_bytes(b"PK")
    start.fn("voice", "v4", 3, 2, 1, 0.4, "64", True, 1e-4, True, True, "fp16", [])
    start.fn("voice", "v2", 3, 8, 4, 0.3, "64", True, 1e-4, True, True, "fp16", [])
    lora, whole = started
    assert isinstance(lora, SoVITSRunConfig) and lora.version == "v4"
    assert (lora.adapter_rank, lora.grad_checkpoint, lora.pretrained_d, lora.text_low_lr_rate) == (
        64,
        True,
        None,
        0.4,
    )
    assert (whole.lora_rank, whole.grad_checkpoint, whole.text_low_lr_rate) == (None, False, 0.3)


def test_formatting_problems_are_shown_once_per_kind_when_grouped(tmp_path: Path) -> None:
    problems = [f"[list] line {i} (a.wav): line 1 already uses the file name 'a.wav'" for i in range(2, 5002)]
    (tmp_path / "problems.txt").write_text("\n".join(problems) + "\n", encoding="utf-8")
    grouped = "[list] clip name used by an earlier line, 5000 lines: 2, 3, 4, … (+4997 more) (e.g. ...)"
    (tmp_path / "problems-by-kind.txt").write_text(grouped + "\n", encoding="utf-8")
    run = RunState(
        "format", tmp_path, RunStatus(state="done", stage="format:1c", step=20, total_steps=20), None
    )
    state = ExperimentState("voice", tmp_path, "v2", FormatState(20, 2, 20, 20, 20), {"format": run}, (), ())
    text = format_summary(run, state)
    assert "**5000 line(s) left out:**" in text and "5000 lines: 2, 3, 4" in text
    assert "line 7 (a.wav)" not in text and "more in" not in text


def test_the_dataset_is_picked_from_the_data_folder(tmp_path: Path) -> None:
    """The .list file and the audio folder are menus of what the data folder holds (listed again on
    focus, a path can still be typed); the formatting step names read in the page's language."""
    (tmp_path / "data" / "clips").mkdir(parents=True)
    (tmp_path / "data" / "voice.list").write_text("a.wav|spk|en|hello\n", encoding="utf-8")
    (tmp_path / "data" / "clips" / "a.wav").write_bytes(b"x")
    (tmp_path / "pretrained_models").mkdir()
    (tmp_path / "pretrained_models" / "base.wav").write_bytes(b"x")  # a model folder is no dataset
    demo, _, by_id = build_tab(tmp_path)
    lists, folders = by_id["train-list"], by_id["train-audio"]
    assert isinstance(lists, gr.Dropdown) and isinstance(folders, gr.Dropdown)
    assert [value for _, value in lists.choices] == ["data/voice.list"] and lists.allow_custom_value
    assert [value for _, value in folders.choices] == ["data/clips"] and folders.allow_custom_value
    (tmp_path / "data" / "more.list").write_text("b.wav|spk|en|hi\n", encoding="utf-8")
    (refresh,) = [f for f in demo.fns.values() if f.targets == [(lists._id, "focus")]]
    listed, kept = refresh.fn("data/voice.list", "data/clips")
    assert (
        set(listed["choices"]) == {"data/voice.list", "data/more.list"}
        and listed["value"] == "data/voice.list"
    )
    assert kept["value"] == "data/clips"
    from app.ui.messages import say

    assert say("train.step.1b", "ja") == "1b HuBERT + 32 kHz 音声"
    running = RunState(
        "format", tmp_path, RunStatus(state="running", stage="format:1a", step=2, total_steps=9), None
    )
    assert "1a text + BERT 2/9" in run_summary("Formatting", running)
