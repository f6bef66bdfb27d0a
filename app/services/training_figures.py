"""What training jobs report, for observers such as ``/metrics``: step, losses and throughput.

Built on the files the trainers already write (:mod:`app.runstatus`: ``status.json`` and
``metrics.jsonl`` beside each run's config) and the job records of :mod:`app.services.jobs`;
nothing here starts, stops or reaps a job, so any process sharing the data folder (an API replica)
may read them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from app.runstatus import FINAL_STATES, METRICS_FILE, STATUS_FILE, read_status
from app.services.jobs import recorded_jobs

# Bytes read from the end of metrics.jsonl for the throughput: the last few dozen logged steps.
TAIL_BYTES = 8192


@dataclass(frozen=True)
class TrainingFigures:
    """One job's latest figures."""

    # Job id (its folder under output/jobs/).
    job: str
    # What it runs: "sovits", "gpt", "svc", "format", ...
    kind: str
    # Its label, e.g. "sovits: my_voice".
    name: str
    # "running" while its process lives, else the run's final state ("done", "failed", ...).
    state: str
    # Global optimiser step of the latest logged step.
    step: int = 0
    # Current epoch (1-based once training started).
    epoch: int = 0
    # Fraction done in [0, 1] when it can be told.
    progress: float | None = None
    # Latest named losses.
    losses: dict[str, float] = field(default_factory=dict)
    # Optimiser steps per second over the last logged steps.
    steps_per_s: float | None = None


def throughput(metrics_path: Path, tail_bytes: int = TAIL_BYTES) -> float | None:
    """Steps per second between the first and last rows of the tail of a ``metrics.jsonl``."""
    try:
        with Path(metrics_path).open("rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - tail_bytes))
            lines = fh.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return None
    rows = []
    for line in lines[1:] if size > tail_bytes else lines:  # the first line of a tail may be cut
        try:
            row = json.loads(line)
            rows.append((float(row["step"]), float(row["time"])))
        except (ValueError, KeyError, TypeError):
            continue
    # A resumed run logs earlier steps again: count only the last run of increasing steps.
    start = len(rows) - 1
    while start > 0 and rows[start - 1][0] < rows[start][0]:
        start -= 1
    if len(rows) - start < 2:
        return None
    (step0, time0), (step1, time1) = rows[start], rows[-1]
    if time1 <= time0:
        return None
    return (step1 - step0) / (time1 - time0)


def training_figures(jobs_root: Path) -> list[TrainingFigures]:
    """Running jobs and the newest finished job of each kind, newest first."""
    figures = []
    kinds_seen: set[str] = set()
    for record, alive in recorded_jobs(jobs_root):
        kind = record.spec.kind or record.spec.module
        if not alive and (record.state == "queued" or kind in kinds_seen):
            continue
        if not alive:
            kinds_seen.add(kind)
        run_dir = Path(record.spec.config).parent
        status = read_status(run_dir / STATUS_FILE)
        # A run that says "running" but whose process is gone died unwatched.
        final = status is not None and status.state in FINAL_STATES
        state = "running" if alive else (status.state if final else "lost")
        if status is None:
            figures.append(TrainingFigures(record.id, kind, record.spec.name, state))
            continue
        figures.append(
            TrainingFigures(
                job=record.id,
                kind=kind,
                name=record.spec.name,
                state=state,
                step=status.step,
                epoch=status.epoch,
                progress=status.progress,
                losses={k: v for k, v in status.losses.items() if not math.isnan(v)},
                steps_per_s=throughput(run_dir / METRICS_FILE),
            )
        )
    return figures
