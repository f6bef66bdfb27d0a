"""Resume checkpoints, exported-weight names and stop agreement shared by the GPT and SoVITS trainers.

:func:`resume_or_begin` is where every run starts: restored from its newest checkpoint, or from the
beginning.

A run folder (``<experiment>/logs_s2_v2/``, ``logs_s1_v2/``) holds ``run.yaml``, the status and
metrics files, TensorBoard events and ``resume_<step>.pt`` checkpoints (:mod:`app.models.checkpoint`
format: model, optimiser, scheduler, step, completed epochs, plus ``extra``). A checkpoint written
mid-epoch (on a stop request) records how many batches of the current epoch were done, so the
resumed run skips exactly those batches of the same deterministic batch plan.

Our checkpoints are named ``resume_*`` so that upstream's own ``G_*.pth`` / ``D_*.pth`` in a copied
experiment never collide with them.

:func:`run_epochs` is the epoch loop the SoVITS trainers share (the GAN fine-tune of v1-v2ProPlus
and the LoRA fine-tune of v3/v4): skip the batches a resumed epoch already did, log, stop with a
checkpoint on request, save and export every ``save_every`` epochs and after the last.
"""

from __future__ import annotations

import json
import logging
import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from app.fileio import atomic_write_text
from app.messages import Message
from app.models.checkpoint import Checkpoint, CheckpointError, read_checkpoint
from app.runstatus import METRICS_FILE, read_metrics
from app.settings import DistributedEnv
from app.train.buckets import PlannedBatches
from app.train.common import TrainSession, all_reduce_mean, checkpoint_number, prune_checkpoints

log = logging.getLogger(__name__)

RESUME_PATTERN = "resume_*.pt"


def resume_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / f"resume_{int(step)}.pt"


def load_latest(run_dir: Path, kind: str) -> tuple[Path, Checkpoint] | None:
    """The newest readable resume checkpoint of ``kind`` (an unreadable newer one is skipped with a warning).

    Under torchrun, global rank 0 alone reads the run folder (where it alone writes) and hands the
    checkpoint to every other rank: all resume from the same step, also on nodes that do not see
    rank 0's run folder.
    """
    if dist.is_initialized() and dist.get_world_size() > 1:
        found = [_newest_readable(run_dir, kind) if dist.get_rank() == 0 else None]
        dist.broadcast_object_list(found, src=0)
        return found[0]
    return _newest_readable(run_dir, kind)


def _newest_readable(run_dir: Path, kind: str) -> tuple[Path, Checkpoint] | None:
    candidates = sorted(
        (p for p in Path(run_dir).glob(RESUME_PATTERN) if not p.name.startswith(".")),
        key=checkpoint_number,
        reverse=True,
    )
    for path in candidates:
        try:
            return path, read_checkpoint(path, kind)
        except CheckpointError as exc:
            log.warning("skipping unusable checkpoint: %s", exc)
    return None


def prune(run_dir: Path, keep: int) -> list[Path]:
    """Keep the ``keep`` newest resume checkpoints (0 keeps all)."""
    return prune_checkpoints(Path(run_dir), RESUME_PATTERN, keep)


def truncate_metrics(run_dir: Path, step: int) -> int:
    """Drop metric rows logged after ``step`` (a resumed run logs those steps again); returns rows dropped."""
    path = Path(run_dir) / METRICS_FILE
    rows = read_metrics(path)
    kept = [r for r in rows if r.get("step", 0) <= step]
    if len(kept) == len(rows):
        return 0
    text = "".join(json.dumps(r, allow_nan=True) + "\n" for r in kept)
    atomic_write_text(path, text, permissions=0o666)  # an ordinary file, as append_metrics makes it
    return len(rows) - len(kept)


def weights_name(exp_name: str, epoch: int, step: int, suffix: str) -> str:
    """``<exp>_e<epoch>_s<step><suffix>``: upstream's SoVITS naming, used for both models here."""
    return f"{exp_name}_e{int(epoch)}_s{int(step)}{suffix}"


def agree(flag: bool, device: torch.device) -> bool:
    """True on every rank when it is True on any (a stop request reaches ranks at different steps)."""
    if not dist.is_initialized():
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def loader_worker_init(worker_id: int) -> None:
    """``worker_init_fn`` of the DataLoaders: workers ignore SIGTERM.

    A job is stopped with SIGTERM to its whole process group; the trainer finishes its step,
    saves and shuts its workers down itself. A worker that died of the signal first would make
    the DataLoader raise and the run end as failed without its checkpoint.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if hasattr(model, "module") else model


@dataclass(frozen=True)
class Position:
    """Where a run stands: what a resume checkpoint records."""

    step: int  # optimiser steps taken
    epochs_done: int  # completed epochs
    batches_done: int = 0  # batches of the current (next) epoch already trained


Found = tuple[Path, Checkpoint]  # a resume checkpoint and the file it was read from


def resume_or_begin(
    found: Found | None,
    run_dir: Path,
    env: DistributedEnv,
    session: TrainSession,
    restore: Callable[[Path, Checkpoint], None],
    begin_message: str,
    error: type[Exception],
) -> Position:
    """Where a run starts: from ``found``, restored by ``restore(path, checkpoint)``, or from the beginning.

    Raises:
        error: (the trainer's own error class) the checkpoint does not fit the run; the message names it.
    """
    if found is None:
        session.message(begin_message)
        return Position(0, 0, 0)
    path, _ = found
    try:
        restore(*found)
    except (KeyError, ValueError, RuntimeError, CheckpointError) as exc:
        raise error(f"{path}: cannot resume from it ({exc}); delete it to start over") from exc
    start = resumed_position(found, run_dir, env)
    template = "resumed from {file} at step {step} (epoch {epoch}, batch {batch})"
    said = Message(
        "train.note.resumed",
        template,
        file=path.name,
        step=start.step,
        epoch=start.epochs_done + 1,
        batch=start.batches_done,
    )
    session.message(said)
    return start


def resumed_position(found: Found, run_dir: Path, env: DistributedEnv) -> Position:
    """Where a resumed run continues; metric rows logged after the checkpoint are dropped."""
    _, ckpt = found
    where = Position(ckpt.step, ckpt.epoch, int(ckpt.extra.get("batches_done", 0)))
    if env.rank == 0:
        truncate_metrics(run_dir, where.step)
    return where


@dataclass(frozen=True)
class EpochHooks:
    """What a trainer plugs into :func:`run_epochs`."""

    train_step: Callable[[Any], dict[str, float]]  # one optimiser step on a batch -> named losses
    save: Callable[[Position], None]  # write a resume checkpoint (rank 0 decides inside)
    export: Callable[[int, int], None]  # (epoch, step): write the inference weights
    end_epoch: Callable[[], None]  # after each full epoch (learning-rate schedules)
    lr: Callable[[], float]  # current learning rate, for the log


def run_epochs(
    session: TrainSession,
    loader: Iterable[Any],
    sampler: PlannedBatches,
    hooks: EpochHooks,
    *,
    start: Position,
    epochs: int,
    save_every: int,
    log_interval: int,
    device: torch.device,
) -> Position:
    """Train from ``start`` to the end of epoch ``epochs``; returns where it stopped.

    A stop request (SIGTERM on any rank) saves a checkpoint at the current batch and ends the
    run as stopped; otherwise the session ends as done.
    """
    step = start.step
    for epoch in range(start.epochs_done + 1, epochs + 1):
        sampler.set_epoch(epoch, start.batches_done if epoch == start.epochs_done + 1 else 0)
        for index, batch in enumerate(loader, start=sampler.skip):
            losses = hooks.train_step(batch)
            step += 1
            if step % log_interval == 0 or step == 1:
                session.log_step(step, epoch, all_reduce_mean(losses), lr=hooks.lr())
            if agree(session.stop_requested, device):
                where = Position(step, epoch - 1, index + 1)
                hooks.save(where)
                session.stopped()
                return where
        hooks.end_epoch()
        if epoch % save_every == 0 or epoch == epochs:
            hooks.save(Position(step, epoch, 0))
            hooks.export(epoch, step)
    session.done(
        Message(
            "train.note.finished_epochs", "finished {epochs} epochs, {steps} steps", epochs=epochs, steps=step
        )
    )
    return Position(step, max(epochs, start.epochs_done), 0)
