"""Where a run starts (app.train.resume.resume_or_begin): from the beginning, or restored from its
newest checkpoint with the metric rows after it dropped; a checkpoint that does not fit fails in the
trainer's own error, naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.models.checkpoint import Checkpoint
from app.runstatus import append_metrics, read_metrics, read_status
from app.settings import DistributedEnv
from app.train.common import TrainSession
from app.train.resume import Position, resume_or_begin

ENV = DistributedEnv(rank=0, world_size=1, local_rank=0)


class TrainerError(RuntimeError):
    """Stands in for a trainer's own error class."""


def checkpoint(step: int, epoch: int, batches_done: int) -> Checkpoint:
    return Checkpoint(
        kind="unit", model_config={}, model={}, optimizer=None, scheduler=None, step=step, epoch=epoch,
        extra={"batches_done": batches_done},
    )  # fmt: skip


def test_a_run_without_checkpoint_begins_at_zero(tmp_path) -> None:
    def restore(path: Path, ckpt: Checkpoint) -> None:
        raise AssertionError("nothing to restore")

    with TrainSession(tmp_path, stage="unit", tensorboard=False) as session:
        start = resume_or_begin(None, tmp_path, ENV, session, restore, "starting from scratch", TrainerError)
        assert start == Position(0, 0, 0)
        assert read_status(tmp_path / "status.json").message == "starting from scratch"
        session.done()


def test_a_resumed_run_continues_where_its_checkpoint_stopped(tmp_path) -> None:
    restored: list[tuple[Path, Checkpoint]] = []
    found = (tmp_path / "resume_3.pt", checkpoint(step=3, epoch=1, batches_done=2))
    with TrainSession(tmp_path, stage="unit", tensorboard=False) as session:
        for step in range(1, 6):
            append_metrics(tmp_path / "metrics.jsonl", step=step, epoch=1, losses={"loss": 1.0})
        start = resume_or_begin(
            found, tmp_path, ENV, session, lambda *f: restored.append(f), "-", TrainerError
        )
        assert start == Position(3, 1, 2) and restored == [found]
        assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1, 2, 3]
        message = read_status(tmp_path / "status.json").message
        assert message == "resumed from resume_3.pt at step 3 (epoch 2, batch 2)"
        session.done()


def test_a_checkpoint_that_does_not_fit_fails_in_the_trainers_error(tmp_path) -> None:
    def restore(path: Path, ckpt: Checkpoint) -> None:
        raise KeyError("scaler")

    found = (tmp_path / "resume_7.pt", checkpoint(step=7, epoch=0, batches_done=0))
    with TrainSession(tmp_path, stage="unit", tensorboard=False) as session:
        with pytest.raises(
            TrainerError, match=r"resume_7\.pt: cannot resume from it .*delete it to start over"
        ):
            resume_or_begin(found, tmp_path, ENV, session, restore, "-", TrainerError)
        session.done()
