from __future__ import annotations

import os
import signal

import pytest
import torch

from app.runstatus import read_metrics, read_status
from app.settings import DistributedEnv, distributed_env
from app.train.common import (
    TrainSession,
    all_reduce_mean,
    autocast,
    checkpoint_number,
    latest_checkpoint,
    prune_checkpoints,
    train_device,
)


def test_session_reports_steps_and_done(tmp_path):
    with TrainSession(tmp_path, stage="unit", total_epochs=2, total_steps=10, tensorboard=False) as s:
        assert read_status(tmp_path / "status.json").state == "starting"
        for step in range(1, 4):
            s.log_step(step, 1, {"loss": 1.0 / step})
        status = read_status(tmp_path / "status.json")
        assert (
            status.state == "running" and status.step == 3 and status.losses == {"loss": pytest.approx(1 / 3)}
        )
        assert status.eta_s is not None and status.eta_s >= 0
        s.done()
    assert read_status(tmp_path / "status.json").state == "done"
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1, 2, 3]


def test_session_records_an_exception_as_failed(tmp_path):
    with pytest.raises(RuntimeError), TrainSession(tmp_path, stage="unit", tensorboard=False):
        raise RuntimeError("out of memory in step 7")
    status = read_status(tmp_path / "status.json")
    assert status.state == "failed" and "out of memory in step 7" in status.last_error


def test_sigterm_becomes_a_stop_request(tmp_path):
    with TrainSession(tmp_path, stage="unit", tensorboard=False) as s:
        assert not s.stop_requested
        os.kill(os.getpid(), signal.SIGTERM)
        assert s.stop_requested
        s.stopped()
    assert read_status(tmp_path / "status.json").state == "stopped"
    assert signal.getsignal(signal.SIGTERM) is not None  # previous handler restored


def test_tensorboard_events_are_written(tmp_path):
    with TrainSession(tmp_path, stage="unit") as s:
        s.log_step(1, 1, {"loss": 2.0}, lr=1e-4)
        s.done()
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_non_main_ranks_write_nothing(tmp_path):
    with TrainSession(
        tmp_path, stage="unit", env=DistributedEnv(rank=1, world_size=2), tensorboard=False
    ) as s:
        s.log_step(1, 1, {"loss": 1.0})
    assert not (tmp_path / "status.json").exists()


def test_checkpoint_discovery_and_pruning(tmp_path):
    for n in (100, 20, 3000, 400):
        (tmp_path / f"G_{n}.pth").write_bytes(b"x")
    (tmp_path / ".G_9999.pth.tmp").write_bytes(b"partial")
    assert checkpoint_number(tmp_path / "G_3000.pth") == 3000
    assert latest_checkpoint(tmp_path, "G_*.pth").name == "G_3000.pth"
    removed = prune_checkpoints(tmp_path, "G_*.pth", keep=2)
    assert sorted(p.name for p in removed) == ["G_100.pth", "G_20.pth"]
    assert sorted(p.name for p in tmp_path.glob("G_*.pth")) == ["G_3000.pth", "G_400.pth"]
    assert latest_checkpoint(tmp_path / "none", "G_*.pth") is None


def test_single_process_helpers():
    env = distributed_env({})
    assert env == DistributedEnv(0, 0, 1) and not env.enabled
    assert distributed_env({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"}).enabled
    assert all_reduce_mean({"a": 1.5}) == {"a": 1.5}
    assert train_device(env, "cpu") == torch.device("cpu")
    with autocast(torch.device("cpu"), "bf16"):
        assert torch.get_autocast_dtype("cpu") is not None  # no-op context on CPU


@pytest.mark.parametrize("kind", ["gpt", "sovits"])
def test_a_refused_run_config_reaches_the_status_file_with_its_key(tmp_path, kind: str) -> None:
    """GPT/SoVITS training that stops on a refusal keeps the Message (its key) in status.json, so
    the Train tab words it in the reader's language, as the SVC trainer does."""
    import importlib

    from app.messages import Message
    from app.runstatus import read_status

    config = tmp_path / "run.yaml"
    config.write_text("- not\n- a mapping\n", encoding="utf-8")
    trainer = importlib.import_module(f"app.train.{kind}")
    assert trainer.main(["--config", str(config)]) == 2
    shown = read_status(tmp_path / "status.json").last_error
    assert shown is not None and isinstance(shown, Message) and shown.key.startswith("config.err.")
