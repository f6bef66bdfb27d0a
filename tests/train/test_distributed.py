"""DDP under torchrun, on CPU (gloo): two processes share the batches, rank 0 alone writes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app import config_io
from app.runconfig import GPTRunConfig
from app.runstatus import read_metrics, read_status
from app.train.buckets import duration_batches
from app.train.gpt_data import GPTDataset
from tests.tts_data import TINY_GPT

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpt_trains_on_two_processes_under_torchrun(tmp_path, tts_experiment) -> None:
    exp = tmp_path / "voice"
    shutil.copytree(tts_experiment, exp)
    cfg = GPTRunConfig(
        exp_name="ddp", exp_dir=exp, weights_dir=tmp_path / "GPT_weights", pretrained_s1=None, batch_size=2,
        epochs=2, save_every_epoch=2, log_interval=1, accumulate_batches=1, min_items_per_epoch=0,
        num_workers=1, model=dict(TINY_GPT), learning_rate=3e-3,
    )  # fmt: skip
    config = config_io.save(cfg, exp / "logs_s1_v2" / "run.yaml")
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            "-m", "app.train.gpt", "--config", str(config)]  # fmt: skip
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "rank 1 of 2 (gloo)" in proc.stderr
    durations = GPTDataset(exp, "v2", min_items=0).durations
    per_rank = len(duration_batches(durations, 2, epoch=1, rank=0, world=2))
    assert per_rank < len(duration_batches(durations, 2, epoch=1))  # each rank sees part of the data
    status = read_status(config.parent / "status.json")
    assert status.state == "done" and status.step == 2 * per_rank
    assert [r["step"] for r in read_metrics(config.parent / "metrics.jsonl")] == list(
        range(1, 2 * per_rank + 1)
    )
    assert [p.name for p in (tmp_path / "GPT_weights").iterdir()] == [f"ddp_e2_s{2 * per_rank}.ckpt"]
