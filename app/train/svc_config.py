"""The settings of one SVC training run (``run.yaml``), importable without torch.

The UI writes this file and starts ``python -m app.train.svc --config run.yaml`` as a job;
:mod:`app.train.svc` reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from app import config_io
from app.paths import SvcExperiment

RUN_FILE = "run.yaml"  # in the experiment's logs/44k/, beside the checkpoints
TRAIN_MODULE = "app.train.svc"


@dataclass(frozen=True)
class SvcTrainConfig:
    """One training run (``run.yaml``); None = take the value from config.json's ``train`` section."""

    experiment: Path  # the 4.1 tree (dataset/44k, filelists, configs/config.json, logs/44k)
    base_g: Path | None = (
        None  # generator to start from when the run has no checkpoint (default logs/44k/G_0.pth)
    )
    base_d: Path | None = None  # its discriminator (default logs/44k/D_0.pth)
    epochs: int | None = None  # last epoch (config.json train.epochs)
    max_steps: int | None = None  # stop after this many optimiser steps in total (None: no limit)
    save_every: int | None = None  # steps between G_/D_ checkpoints (config.json train.eval_interval)
    keep_checkpoints: int | None = None  # newest G_/D_ pairs kept, 0 = all (config.json train.keep_ckpts)
    batch_size: int | None = None  # per process (config.json train.batch_size)
    log_every: int | None = None  # steps between status/metrics lines (config.json train.log_interval)
    learning_rate: float | None = None  # config.json train.learning_rate
    precision: Literal["fp32", "fp16", "bf16"] | None = (
        None  # CUDA autocast (None: config.json fp16_run/half_type)
    )
    device: str = "auto"  # "auto", "cpu", "cuda:N" (torchrun workers take their local GPU)
    num_workers: int = 0  # DataLoader processes
    cpu_threads: int | None = (
        None  # torch intra-op threads (None: torch's default); 1 avoids thrashing a busy CPU
    )
    seed: int | None = None  # config.json train.seed
    export: bool = True  # write the compressed inference file at the end
    export_half: bool = False  # store it in float16
    tensorboard: bool = True

    @property
    def tree(self) -> SvcExperiment:
        return SvcExperiment(Path(self.experiment))


def write_run_config(run: SvcTrainConfig) -> Path:
    """Save ``run`` as ``logs/44k/run.yaml`` (what the job is started with)."""
    return config_io.save(run, run.tree.models / RUN_FILE)
