"""Experiments service: run configs with upstream's defaults, jobs started, refused, stopped and found again."""

from __future__ import annotations

import shutil
import time

import pytest

from app.paths import Layout, PathOutsideRoot
from app.runconfig import GPTRunConfig, SoVITSRunConfig
from app.runstatus import read_status
from app.services import experiments as ex
from app.services.jobs import JobManager


@pytest.fixture
def layout(tmp_path, tts_pretrained, tts_dataset) -> Layout:
    audio_dir, _, list_path = tts_dataset
    home = tmp_path / "home"
    shutil.copytree(audio_dir, home / "data" / "clips")
    shutil.copy2(list_path, home / "data" / "voice.list")
    return Layout(home, pretrained_dir=tts_pretrained.root).ensure()


def test_configs_start_from_the_versions_base_models(layout) -> None:
    sovits = ex.sovits_config(layout, "voice", batch_size=3, epochs=2)
    assert isinstance(sovits, SoVITSRunConfig)
    assert sovits.pretrained_g == layout.pretrained / "gsv-v2final-pretrained" / "s2G2333k.pth"
    assert sovits.pretrained_d == layout.pretrained / "gsv-v2final-pretrained" / "s2D2333k.pth"
    assert (sovits.batch_size, sovits.epochs, sovits.save_every_epoch, sovits.text_low_lr_rate) == (
        3,
        2,
        4,
        0.4,
    )
    assert sovits.exp_dir == layout.experiment("voice") and sovits.weights_dir == layout.sovits_weights
    gpt = ex.gpt_config(layout, "voice", version="v1")
    assert isinstance(gpt, GPTRunConfig) and gpt.pretrained_s1.name.startswith("s1bert25hz-2kh")
    assert (gpt.epochs, gpt.save_every_epoch) == (15, 5)
    with pytest.raises(TypeError, match="batchsize"):  # settings are keyword parameters, typed
        ex.sovits_config(layout, "voice", batchsize=3)  # type: ignore[call-arg]
    assert ex.sovits_config(layout, "voice", pretrained_d=None).pretrained_d is None  # D from random weights
    with pytest.raises(ex.ExperimentError, match="expected int"):
        ex.gpt_config(layout, "voice", epochs="many")
    with pytest.raises(ex.ExperimentError, match="cannot be trained here"):
        ex.sovits_config(layout, "voice", version="v5")
    assert ex.default_batch_size() >= 1


def test_pro_versions_start_from_upstreams_v2pro_files(layout, tts_pretrained) -> None:
    from app.models.encoders.sv import SV_FILE

    assert SV_FILE.as_posix() == ex.SV_FILE
    for version, g, d in (
        ("v2Pro", "s2Gv2Pro.pth", "s2Dv2Pro.pth"),
        ("v2ProPlus", "s2Gv2ProPlus.pth", "s2Dv2ProPlus.pth"),
    ):
        sovits = ex.sovits_config(layout, "voice", version=version)
        assert sovits.pretrained_g == layout.pretrained / "v2Pro" / g == tts_pretrained.s2g_pro[version]
        assert sovits.pretrained_d == layout.pretrained / "v2Pro" / d
        assert sovits.weights_dir == layout.sovits_weights and sovits.version == version
        # Upstream's web UI defaults are the same for v2Pro* as for v2 (webui.py set_default).
        assert (sovits.epochs, sovits.save_every_epoch, sovits.text_low_lr_rate) == (8, 4, 0.4)
        gpt = ex.gpt_config(layout, "voice", version=version)
        assert gpt.pretrained_s1 == layout.pretrained / "s1v3.ckpt" == tts_pretrained.s1_pro
        assert ex.run_dir(layout, "voice", "sovits", version).name == f"logs_s2_{version}"

    config = ex.format_config(
        layout, "voice", "data/voice.list", "data/clips", steps=("1a", "1b"), version="v2Pro"
    )
    assert config.steps == ("1a", "1b", "2-get-sv") and config.sv_path == tts_pretrained.sv
    assert config.pretrained_s2g == tts_pretrained.s2g_pro["v2Pro"]
    v2 = ex.format_config(layout, "voice", "data/voice.list", "data/clips", version="v2")
    assert "2-get-sv" not in v2.steps and v2.sv_path is None
    with pytest.raises(ex.ExperimentError, match="v2Pro"):
        ex.format_config(layout, "voice", "data/voice.list", "data/clips", steps=("2-get-sv",), version="v2")

    ready = ex.FormatState(20, 2, 20, 20, 20)
    assert ready.ready("sovits", "v2") and not ready.ready("sovits", "v2Pro") and ready.ready("gpt", "v2Pro")
    assert "2-get-sv" in ready.missing_steps("sovits", "v2ProPlus")
    assert ex.FormatState(20, 2, 20, 20, 20, sv_files=20).ready("sovits", "v2ProPlus")


def test_format_config_stays_inside_the_data_folder(layout, tmp_path) -> None:
    config = ex.format_config(layout, "voice", "data/voice.list", "data/clips", steps=("1a", "1b"))
    assert config.list_path == layout.home / "data" / "voice.list" and config.steps == ("1a", "1b")
    assert config.hubert_dir == layout.pretrained / "chinese-hubert-base"
    (tmp_path / "outside.list").write_text("x|y|EN|z\n")
    with pytest.raises(PathOutsideRoot):
        ex.format_config(layout, "voice", str(tmp_path / "outside.list"), "")
    with pytest.raises(ex.ExperimentError, match="does not exist"):
        ex.format_config(layout, "voice", "data/missing.list", "")
    with pytest.raises(ex.ExperimentError, match="steps"):
        ex.format_config(layout, "voice", "data/voice.list", "", steps=("2a",))


@pytest.mark.slow
def test_jobs_run_are_refused_twice_stop_and_are_found_after_a_restart(layout) -> None:
    jobs = JobManager(layout.jobs)
    view = ex.start(
        layout, jobs, "voice", "format", ex.format_config(layout, "voice", "data/voice.list", "data/clips")
    )
    assert view.state in ("running", "done")
    gpt = ex.gpt_config(
        layout,
        "voice",
        epochs=400,
        batch_size=4,
        log_interval=1,
        min_items_per_epoch=0,
        num_workers=0,
        save_every_epoch=400,
    )
    queued = ex.start(layout, jobs, "voice", "gpt", gpt)  # waits in the device queue behind formatting
    assert queued.state == "queued"
    with pytest.raises(ex.ExperimentError, match="already queued"):
        ex.start(layout, jobs, "voice", "gpt", gpt)
    formatted = jobs.wait(view.id, timeout=300)
    assert formatted.state == "done", jobs.tail(view.id)

    restarted = JobManager(layout.jobs)  # as after a UI restart
    state = ex.experiment_state(layout, restarted, "voice")
    assert state.formatted.text_rows == 20 and state.formatted.semantic_rows == 20
    assert state.formatted.bert_files == 2 and state.formatted.sovits_ready and state.formatted.gpt_ready
    assert state.runs["format"].state == "done" and state.runs["format"].job.id == view.id
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        run = ex.experiment_state(layout, restarted, "voice").runs["gpt"]
        if run.status is not None and run.status.step >= 2:
            break
        time.sleep(0.2)
    assert run.state == "running" and run.job.id == queued.id
    rows = ex.loss_rows(run.folder)
    assert {r["loss"] for r in rows} == {"loss", "top3_acc"} and rows[0]["step"] == 1
    stopped = ex.stop(layout, restarted, "voice", "gpt")
    assert stopped.state == "stopped"
    assert read_status(run.folder / "status.json").state == "stopped"
    assert list(run.folder.glob("resume_*.pt"))  # the stop saved a checkpoint
    with pytest.raises(ex.ExperimentError, match="no gpt job"):
        ex.stop(layout, restarted, "voice", "gpt")
    assert ex.experiment_state(layout, restarted, "voice").runs["gpt"].state == "stopped"


def test_lora_versions_start_from_upstreams_v3_v4_bases(layout, tts_pretrained) -> None:
    for version, base in (("v3", "s2Gv3.pth"), ("v4", "gsv-v4-pretrained/s2Gv4.pth")):
        sovits = ex.sovits_config(layout, "voice", version=version)
        assert sovits.pretrained_g == layout.pretrained / base == tts_pretrained.s2g_cfm[version]
        assert sovits.pretrained_d is None  # LoRA training has no discriminator
        # Upstream's web UI proposes 2 epochs saved every epoch for v3/v4, LoRA rank 32.
        assert (sovits.epochs, sovits.save_every_epoch, sovits.adapter_rank, sovits.grad_checkpoint) == (
            2,
            1,
            32,
            False,
        )
        assert sovits.weights_dir == layout.sovits_weights  # every version's exports in one folder
        assert ex.run_dir(layout, "voice", "sovits", version).name == f"logs_s2_{version}"
        gpt = ex.gpt_config(layout, "voice", version=version)
        assert gpt.pretrained_s1 == layout.pretrained / "s1v3.ckpt" == tts_pretrained.s1_pro
        config = ex.format_config(layout, "voice", "data/voice.list", "data/clips", version=version)
        assert config.steps == ("1a", "1b", "1c") and config.sv_path is None
        assert config.pretrained_s2g == tts_pretrained.s2g_cfm[version]  # 1c reads the base's quantizer
    tuned = ex.sovits_config(layout, "voice", version="v4", lora_rank=128, grad_checkpoint=True, epochs=5)
    assert (tuned.adapter_rank, tuned.grad_checkpoint, tuned.epochs) == (128, True, 5)
    with pytest.raises(ex.ExperimentError, match="v3/v4"):
        ex.sovits_config(layout, "voice", version="v2", lora_rank=16)
    with pytest.raises(ex.ExperimentError, match="text_low_lr_rate"):
        ex.sovits_config(layout, "voice", version="v3", text_low_lr_rate=0.5)
    ready = ex.FormatState(20, 2, 20, 20, 20)
    assert ready.ready("sovits", "v4") and ready.missing_steps("sovits", "v4") == "1a and 1b"
