"""Fine-tuning end to end: tiny SoVITS and GPT trained as real job subprocesses on the formatted dataset.

- losses stay finite and fall over the run (means of the first and last logged steps);
- a SoVITS run stopped mid-epoch (SIGTERM) saves, and a restart finishes the exact step plan;
- a GPT run killed mid-epoch (SIGKILL) restarts from its last checkpoint at the saved step;
- GPT from the tiny pretrained s1 (SoVITS from its tiny pretrained G: tests/train/test_sovits_trainer.py);
- the exported weights load through the upstream readers and synthesise audio.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from app import config_io
from app.data.experiment import read_semantic
from app.models.gpt import SamplingOptions, decode
from app.models.sovits.reference import load_reference, reference_spectrogram
from app.models.upstream.gpt import load_gpt
from app.models.upstream.sovits import load_sovits
from app.runconfig import GPTRunConfig, SoVITSRunConfig
from app.runstatus import read_metrics, read_status
from app.services.jobs import JobManager, JobSpec, JobView
from app.text import clean_text, phones_to_ids
from app.train.common import checkpoint_number
from tests.tts_data import TINY_GPT, TINY_SOVITS

pytestmark = pytest.mark.slow

FIRST_LAST = 4  # logged steps averaged at each end of a run


def wait_for(predicate, timeout: float, every: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return False


def finished(jobs: JobManager, view: JobView, timeout: float) -> JobView:
    done = jobs.wait(view.id, timeout=timeout)
    assert done.state == "done", f"{done.state}: {done.status}\n{jobs.tail(view.id, 60)}"
    return done


def falls(rows: list[dict], key: str) -> tuple[float, float]:
    values = [r[key] for r in rows]
    assert all(math.isfinite(v) for v in values), f"{key} not finite: {values}"
    first, last = values[:FIRST_LAST], values[-FIRST_LAST:]
    return sum(first) / len(first), sum(last) / len(last)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tts_experiment) -> Path:
    """A private copy of the formatted experiment, plus weights folders and a jobs root."""
    root = tmp_path_factory.mktemp("finetune")
    shutil.copytree(tts_experiment, root / "voice")
    return root


@pytest.fixture(scope="module")
def jobs(workspace) -> JobManager:
    return JobManager(workspace / "jobs")


@pytest.fixture(scope="module")
def sovits_run(workspace, jobs) -> Path:
    """Tiny SoVITS from scratch: 2 epochs of 10 batches, stopped mid-epoch 2 and restarted."""
    run_dir = workspace / "voice" / "logs_s2_v2"
    cfg = SoVITSRunConfig(
        exp_name="voice", exp_dir=workspace / "voice", weights_dir=workspace / "SoVITS_weights",
        pretrained_g=None, pretrained_d=None, batch_size=2, epochs=2, save_every_epoch=1, log_interval=1,
        learning_rate=5e-4, min_items_per_epoch=0, num_workers=0, model=dict(TINY_SOVITS),
        discriminator_width_divisor=16, seed=7,
    )  # fmt: skip
    config = config_io.save(cfg, run_dir / "run.yaml")
    spec = JobSpec(module="app.train.sovits", config=config, name="sovits: voice", kind="sovits")
    view = jobs.submit(spec)
    assert wait_for(
        lambda: (s := read_status(run_dir / "status.json")) is not None and s.step >= 13, timeout=900
    ), jobs.tail(view.id, 40)
    stopped = jobs.stop(view.id, grace_s=300)
    assert stopped.state == "stopped", jobs.tail(view.id, 40)
    step = stopped.status.step
    assert 13 <= step < 20 and (run_dir / f"resume_{step}.pt").is_file()
    assert not (run_dir / "resume_10.pt").exists()  # keep_checkpoints=1
    finished(jobs, jobs.submit(spec), timeout=900)
    return run_dir


@pytest.fixture(scope="module")
def gpt_run(workspace, jobs) -> Path:
    """Tiny GPT from scratch: 8 epochs of 5 steps."""
    run_dir = workspace / "voice" / "logs_s1_v2"
    cfg = GPTRunConfig(
        exp_name="voice", exp_dir=workspace / "voice", weights_dir=workspace / "GPT_weights", pretrained_s1=None,
        batch_size=4, epochs=8, save_every_epoch=4, log_interval=1, learning_rate=3e-3, accumulate_batches=1,
        min_items_per_epoch=0, num_workers=0, model=dict(TINY_GPT),
    )  # fmt: skip
    config = config_io.save(cfg, run_dir / "run.yaml")
    finished(jobs, jobs.submit(JobSpec(module="app.train.gpt", config=config, kind="gpt")), timeout=600)
    return run_dir


def test_sovits_losses_fall_and_a_stopped_run_finishes_its_plan(sovits_run, workspace) -> None:
    rows = read_metrics(sovits_run / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, 21))  # no step lost or logged twice
    for key in ("d", "g", "gen", "fm", "mel", "kl"):
        falls(rows, key)
    first, last = falls(rows, "mel")
    assert last < first, f"mel loss did not fall: {first:.1f} -> {last:.1f}"
    status = read_status(sovits_run / "status.json")
    assert status.state == "done" and status.step == 20 and status.epoch == 2
    assert sorted(p.name for p in (workspace / "SoVITS_weights").iterdir()) == [
        "voice_e1_s10.pth",
        "voice_e2_s20.pth",
    ]
    assert [p.name for p in sovits_run.glob("resume_*.pt")] == ["resume_20.pt"]
    assert list((sovits_run / "tensorboard").glob("events.out.tfevents.*"))


def test_gpt_losses_fall_and_weights_are_exported(gpt_run, workspace) -> None:
    rows = read_metrics(gpt_run / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, 41))
    first, last = falls(rows, "loss")
    assert last < first * 0.8, f"loss did not fall: {first:.2f} -> {last:.2f}"
    acc_first, acc_last = falls(rows, "top3_acc")
    assert acc_last > acc_first
    exported = sorted(p.name for p in (workspace / "GPT_weights").iterdir())
    assert exported == ["voice_e4_s20.ckpt", "voice_e8_s40.ckpt"]
    record = load_gpt(workspace / "GPT_weights" / "voice_e8_s40.ckpt", expect_version="v2")
    assert record.info == "GPT-e8" and record.model.config.dim == TINY_GPT["dim"]
    assert record.config["train"]["exp_name"] == "voice" and record.config["train"]["epochs"] == 8


def test_exported_weights_synthesise_audio(sovits_run, gpt_run, workspace) -> None:
    gpt = load_gpt(workspace / "GPT_weights" / "voice_e8_s40.ckpt").model
    sovits, record = load_sovits(workspace / "SoVITS_weights" / "voice_e2_s20.pth", expect_version="v2")
    assert record.kind == "weights" and record.info == "2epoch_20iteration"
    reference = "piper_00.wav"
    prompt_text = clean_text("The weather is nice today.", "en", "v2")
    target = clean_text("The coffee is still hot.", "en", "v2")
    phones = torch.tensor([phones_to_ids(prompt_text.phones + target.phones, "v2")])
    prompt = torch.tensor([read_semantic(workspace / "voice" / "6-name2semantic.tsv")[reference]])
    bert = torch.zeros(1, 1024, phones.shape[1])  # English: no BERT features
    result = decode(gpt, phones, bert, prompt, SamplingOptions(top_k=5, max_new_tokens=60, seed=0))
    tokens = result.tokens[0]
    assert 0 < len(tokens) <= 60 and int(tokens.max()) < 1024
    spec = reference_spectrogram(load_reference(workspace / "voice" / "5-wav32k" / reference))
    target_ids = torch.tensor([phones_to_ids(target.phones, "v2")])
    audio = sovits.decode(
        tokens[None, None], target_ids, spec, noise_scale=0.5, generator=torch.Generator().manual_seed(0)
    )
    assert audio.shape == (1, 1, len(tokens) * 2 * 640)  # 25 Hz tokens -> 50 Hz frames -> 640 samples each
    assert torch.isfinite(audio).all() and audio.abs().max() > 1e-3


def test_gpt_killed_mid_epoch_resumes_from_its_last_checkpoint(workspace, jobs) -> None:
    run_dir = workspace / "voice" / "logs_s1_kill"
    cfg = GPTRunConfig(
        exp_name="kill", exp_dir=workspace / "voice", weights_dir=workspace / "GPT_kill", pretrained_s1=None,
        batch_size=4, epochs=60, save_every_epoch=1, log_interval=1, accumulate_batches=1, export_weights=False,
        min_items_per_epoch=0, num_workers=0, model=dict(TINY_GPT), learning_rate=3e-3,
    )  # fmt: skip
    config = config_io.save(cfg, run_dir / "run.yaml")
    spec = JobSpec(module="app.train.gpt", config=config, kind="gpt")
    view = jobs.submit(spec)

    def mid_epoch_after_a_checkpoint() -> bool:
        status = read_status(run_dir / "status.json")
        return bool(status and status.step >= 12 and status.step % 5 in (2, 3))

    assert wait_for(mid_epoch_after_a_checkpoint, timeout=600, every=0.02), jobs.tail(view.id, 40)
    os.killpg(jobs.get(view.id).record.pid, signal.SIGKILL)
    assert wait_for(lambda: jobs.get(view.id).state in ("failed", "lost"), timeout=60)
    logged = max(r["step"] for r in read_metrics(run_dir / "metrics.jsonl"))
    saved = max(checkpoint_number(p) for p in run_dir.glob("resume_*.pt"))
    assert saved % 5 == 0 and saved < logged  # killed with unsaved steps in the current epoch
    epochs_done = saved // 5
    config_io.save(replace(cfg, epochs=epochs_done + 1), config)  # one more epoch is enough to show it
    done = finished(jobs, jobs.submit(spec), timeout=600)
    assert done.status.step == saved + 5
    rows = read_metrics(run_dir / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, saved + 6))  # the lost steps were dropped and redone
    assert f"resumed from resume_{saved}.pt at step {saved}" in jobs.tail(done.id, 200)


def test_gpt_fine_tunes_from_the_pretrained_file(workspace, jobs, tts_pretrained) -> None:
    run_dir = workspace / "voice" / "logs_s1_pretrained"
    cfg = GPTRunConfig(
        exp_name="tuned", exp_dir=workspace / "voice", weights_dir=workspace / "GPT_tuned",
        pretrained_s1=tts_pretrained.s1, batch_size=4, epochs=2, save_every_epoch=2, log_interval=1,
        min_items_per_epoch=0, num_workers=0, learning_rate=1e-3,
    )  # fmt: skip
    config = config_io.save(cfg, run_dir / "run.yaml")
    done = finished(
        jobs, jobs.submit(JobSpec(module="app.train.gpt", config=config, kind="gpt")), timeout=600
    )
    assert f"starting from {tts_pretrained.s1}" in jobs.tail(done.id, 200)
    steps = (
        -(-5 // cfg.accumulate_batches) * 2
    )  # 5 batches per epoch, a step every 4 (and at the epoch's end)
    assert done.status.step == steps
    tuned = load_gpt(workspace / "GPT_tuned" / f"tuned_e2_s{steps}.ckpt")
    base = load_gpt(tts_pretrained.s1)
    assert tuned.config["model"] == base.config["model"]
    assert tuned.config["pretrained_s1"] == str(tts_pretrained.s1)
    moved = [
        n
        for n, t in base.model.state_dict().items()
        if not torch.equal(t.half(), tuned.model.state_dict()[n].half())
    ]
    assert moved  # training changed the weights it started from
