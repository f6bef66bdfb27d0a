"""What every trainer shares: distributed setup, status reporting, stop requests, checkpoints on disk.

A trainer's ``main()`` looks like::

    def main(argv=None):
        args = parse_args(argv)                       # --config run.yaml
        cfg = config_io.load(MyRunConfig, args.config)
        with TrainSession(args.config.parent, stage="sovits", total_epochs=cfg.epochs) as session:
            ... build model, resume from session.latest("G_*.pth") ...
            for epoch in ...:
                for batch in ...:
                    ...
                    session.log_step(step, epoch, {"loss_g": ..., "loss_d": ...})
                    if session.stop_requested:
                        save(); session.stopped(); return
            session.done()

The session writes ``status.json`` / ``metrics.jsonl`` (:mod:`app.runstatus`) and TensorBoard
events on rank 0, turns SIGTERM into ``stop_requested`` (the trainer saves and exits cleanly), and
records an exception as a failed status before re-raising it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import re
import signal
import time
import traceback
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import TracebackType

import numpy as np
import torch
import torch.distributed as dist

from app.messages import Message, said
from app.runstatus import METRICS_FILE, STATUS_FILE, RunStatus, append_metrics, write_status
from app.settings import DistributedEnv, distributed_env

log = logging.getLogger(__name__)


# -- devices and processes ------------------------------------------------------------------------
def setup_distributed(backend: str | None = None) -> DistributedEnv:
    """Join the torchrun process group when launched by torchrun; a no-op for a single process."""
    env = distributed_env()
    if env.enabled and not dist.is_initialized():
        if backend is None:
            backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(env.local_rank)
        dist.init_process_group(backend=backend)
        log.info(
            "joined process group: rank %d of %d (%s), node %d of %d, local rank %d",
            env.rank,
            env.world_size,
            backend,
            env.node_rank,
            env.nodes,
            env.local_rank,
        )
    return env


def cleanup_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def train_device(env: DistributedEnv, preference: str = "auto") -> torch.device:
    """The device this worker trains on: its local GPU under torchrun, else ``preference``."""
    if preference == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    if preference.startswith("cuda:"):
        return torch.device(preference)
    return torch.device("cuda", env.local_rank)


def seed_everything(seed: int, rank: int = 0) -> None:
    """Seed python, numpy and torch; ranks get different streams for data order and noise."""
    value = seed + rank
    random.seed(value)
    np.random.seed(value % (2**32))
    torch.manual_seed(value)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Mixed precision on CUDA (``fp16``/``bf16``); full precision otherwise or for ``fp32``."""
    if device.type != "cuda" or precision == "fp32":
        return contextlib.nullcontext()
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    return torch.autocast(device_type="cuda", dtype=dtype)


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """A GradScaler that is active only for fp16 on CUDA (bf16 and fp32 need none)."""
    return torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and precision == "fp16")


def all_reduce_mean(values: dict[str, float]) -> dict[str, float]:
    """Average scalar losses over workers (for logging); identity in a single process."""
    if not dist.is_initialized() or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    dist.all_reduce(tensor)
    tensor /= dist.get_world_size()
    return dict(zip(keys, tensor.cpu().tolist(), strict=True))


# -- checkpoints on disk ----------------------------------------------------------------------------
_NUMBER = re.compile(r"(\d+)")


def checkpoint_number(path: Path) -> int:
    """The last integer in a checkpoint's name (``G_1200.pth`` -> 1200); -1 when there is none."""
    numbers = _NUMBER.findall(path.stem)
    return int(numbers[-1]) if numbers else -1


def latest_checkpoint(folder: Path, pattern: str) -> Path | None:
    """The checkpoint matching ``pattern`` with the highest number, ignoring temp files."""
    candidates = [p for p in Path(folder).glob(pattern) if p.is_file() and not p.name.startswith(".")]
    return max(candidates, key=checkpoint_number, default=None)


def prune_checkpoints(folder: Path, pattern: str, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest checkpoints matching ``pattern`` (keep <= 0 keeps all)."""
    if keep <= 0:
        return []
    files = sorted(
        (p for p in Path(folder).glob(pattern) if not p.name.startswith(".")), key=checkpoint_number
    )
    removed = files[:-keep]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


# -- the session --------------------------------------------------------------------------------------
class TrainSession:
    """Status file, metrics, TensorBoard and stop handling for one training run (see module doc)."""

    def __init__(
        self,
        run_dir: Path,
        *,
        stage: str,
        total_epochs: int = 0,
        total_steps: int | None = None,
        env: DistributedEnv | None = None,
        tensorboard: bool = True,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.env = env or distributed_env()
        self.is_main = self.env.rank == 0
        self.stop_requested = False
        self._status = RunStatus(
            state="starting", stage=stage, total_epochs=total_epochs, total_steps=total_steps, pid=os.getpid()
        )
        self._tensorboard = tensorboard
        self._writer = None
        self._t0 = time.monotonic()
        self._step0: int | None = None
        self._previous_handler = None

    # context management -------------------------------------------------------------------------
    def __enter__(self) -> TrainSession:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._previous_handler = signal.signal(signal.SIGTERM, self._on_sigterm)
        self._status = replace(self._status, started=time.time())
        self._write()
        if self.is_main and self._tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is in requirements.txt; a trimmed install still trains
                log.warning("tensorboard is not installed; no TensorBoard logs for this run")
            else:
                self._writer = SummaryWriter(str(self.run_dir / "tensorboard"))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None and self._status.state not in ("done", "stopped", "failed"):
            if isinstance(exc, KeyboardInterrupt):
                self.stopped(Message("train.note.interrupted", "interrupted"))
            else:
                detail = "".join(traceback.format_exception_only(exc_type, exc)).strip()
                log.error("training failed:\n%s", "".join(traceback.format_exception(exc_type, exc, tb)))
                kept = said(exc)  # a Message keeps its key, so the web UI words it in the reader's language
                self.failed(kept if isinstance(kept, Message) else detail)
        if self._writer is not None:
            self._writer.close()
        if self._previous_handler is not None:
            signal.signal(signal.SIGTERM, self._previous_handler)

    def _on_sigterm(self, signum: int, frame: object) -> None:
        log.info("stop requested (SIGTERM): finishing the current step and saving")
        self.stop_requested = True

    # reporting ----------------------------------------------------------------------------------
    @property
    def status_path(self) -> Path:
        return self.run_dir / STATUS_FILE

    def _write(self) -> None:
        if self.is_main:
            write_status(self.status_path, self._status)

    def set_totals(self, *, total_epochs: int | None = None, total_steps: int | None = None) -> None:
        """Set the planned length once the data is known (for progress and ETA)."""
        if total_epochs is not None:
            self._status = replace(self._status, total_epochs=total_epochs)
        if total_steps is not None:
            self._status = replace(self._status, total_steps=total_steps)
        self._write()

    def message(self, text: str) -> None:
        """Record an event (e.g. "saved G_1200.pth") in the status and the log."""
        log.info("%s", text)
        self._status = replace(self._status, message=text)
        self._write()

    def log_step(self, step: int, epoch: int, losses: dict[str, float], *, lr: float | None = None) -> None:
        """Report a logged step: status, metrics line, TensorBoard scalars and ETA (rank 0 writes)."""
        losses = {k: float(v) for k, v in losses.items()}
        bad = [k for k, v in losses.items() if not math.isfinite(v)]
        if bad:
            log.warning("non-finite loss at step %d: %s", step, ", ".join(bad))
        if self._step0 is None:
            self._step0, self._t0 = step, time.monotonic()
        eta = None
        total = self._status.total_steps
        done = step - self._step0
        if total and done > 0:
            eta = (time.monotonic() - self._t0) / done * max(0, total - step)
        self._status = replace(
            self._status, state="running", step=step, epoch=epoch, losses=losses, eta_s=eta
        )
        if not self.is_main:
            return
        self._write()
        append_metrics(self.run_dir / METRICS_FILE, step=step, epoch=epoch, losses=losses)
        if self._writer is not None:
            for name, value in losses.items():
                self._writer.add_scalar(f"loss/{name}", value, step)
            if lr is not None:
                self._writer.add_scalar("lr", lr, step)

    def log_audio(self, tag: str, audio: torch.Tensor, step: int, sample_rate: int) -> None:
        """A sample to TensorBoard (rank 0; float audio in [-1, 1], shape ``(T,)``)."""
        if self._writer is not None:
            self._writer.add_audio(tag, audio.detach().float().cpu().clamp(-1, 1), step, sample_rate)

    def done(self, message: str = Message("train.note.finished", "finished")) -> None:
        self._status = replace(self._status, state="done", message=message, eta_s=0.0)
        self._write()

    def stopped(
        self,
        message: str = Message("train.note.stopped", "stopped; resume continues from the last checkpoint"),
    ) -> None:
        self._status = replace(self._status, state="stopped", message=message, eta_s=None)
        self._write()

    def failed(self, error: str) -> None:
        self._status = replace(self._status, state="failed", last_error=error, eta_s=None)
        self._write()

    @property
    def status(self) -> RunStatus:
        return self._status


@contextlib.contextmanager
def rank_zero_first(env: DistributedEnv) -> Iterator[None]:
    """Let rank 0 do something first (e.g. write a cache) while other ranks wait, then the rest."""
    if env.enabled and env.rank != 0:
        dist.barrier()
    yield
    if env.enabled and env.rank == 0:
        dist.barrier()
