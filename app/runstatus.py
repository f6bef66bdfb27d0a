"""The status file a long-running child process (training, formatting) writes and the UI reads.

Progress is read from this file, never by parsing a child's prints. The child rewrites
``status.json`` atomically after every logged step and appends one JSON line per logged step to
``metrics.jsonl`` (the loss plot). Both live beside the run's ``run.yaml``. Foundation layer:
trainers (``app.train``) write it, job management (``app.services``) reads it, neither imports the other.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from app.fileio import atomic_write_text
from app.messages import rebuilt, record

STATUS_FILE = "status.json"
METRICS_FILE = "metrics.jsonl"

# States a run passes through. "lost" is never written by a child: the reader concludes it when
# the file says running but the process is gone.
STATES = ("queued", "starting", "running", "done", "failed", "stopped", "lost")
FINAL_STATES = frozenset({"done", "failed", "stopped", "lost"})
# Text fields a writer may give as a Message (kept with its key, for the reader's language).
SAID_FIELDS = ("message", "last_error")


@dataclass(frozen=True)
class RunStatus:
    """One snapshot of a run's progress."""

    state: str = "starting"  # one of STATES
    stage: str = ""  # e.g. "sovits", "gpt", "format:1a"
    epoch: int = 0  # current epoch, 1-based once training started
    total_epochs: int = 0  # planned epochs (0 when not epoch-based)
    step: int = 0  # global optimiser step
    total_steps: int | None = None  # planned steps when known
    losses: dict[str, float] = field(default_factory=dict)  # latest named losses
    eta_s: float | None = None  # estimated seconds to the end
    message: str = ""  # latest human-readable event, e.g. "saved checkpoint e4"
    last_error: str | None = None  # the error that ended the run, when it failed
    pid: int | None = None  # process id of the writer
    started: float | None = None  # unix time the run started
    updated: float = 0.0  # unix time of this snapshot

    @property
    def progress(self) -> float | None:
        """Fraction done in [0, 1] when it can be told."""
        if self.total_steps:
            return min(1.0, self.step / self.total_steps)
        if self.total_epochs:
            return min(1.0, max(0, self.epoch - 1) / self.total_epochs)
        return None


def _floats(losses: dict[str, Any]) -> dict[str, float]:
    # NaN/Inf are kept (Python's json writes and reads them) so that a diverging loss stays visible.
    return {str(k): float(v) for k, v in losses.items()}


def write_status(path: str | os.PathLike, status: RunStatus) -> None:
    """Atomically replace the status file with ``status`` (stamped with the current time).

    A ``message`` or ``last_error`` that is a :class:`~app.messages.Message` is written as its
    English text, and its key, template and values beside it (``<field>_said``), so that a reader
    in another process (the web UI) words it in its own reader's language."""
    status = replace(status, losses=_floats(status.losses), updated=time.time())
    data = asdict(status)
    for name in SAID_FIELDS:
        kept = record(getattr(status, name) or "")
        if kept is not None:
            data[f"{name}_said"] = kept
    atomic_write_text(path, json.dumps(data, allow_nan=True) + "\n")


def read_status(path: str | os.PathLike) -> RunStatus | None:
    """The last status written at ``path``; None when there is none yet or it cannot be parsed."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    known = {f for f in RunStatus.__dataclass_fields__}
    fields = {k: v for k, v in data.items() if k in known}
    for name in SAID_FIELDS:
        message = rebuilt(data.get(f"{name}_said"), fields.get(name))
        if message is not None:
            fields[name] = message
    return RunStatus(**fields)


def append_metrics(path: str | os.PathLike, *, step: int, epoch: int, losses: dict[str, float]) -> None:
    """Append one line ``{"step", "epoch", "time", <loss name>: value...}`` to a metrics file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    row = {"step": step, "epoch": epoch, "time": time.time(), **_floats(losses)}
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(row, allow_nan=True) + "\n")


def read_metrics(path: str | os.PathLike) -> list[dict[str, float]]:
    """All metric rows written so far (a partially written last line is ignored)."""
    rows = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError:
        return rows
    for line in lines:
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows
