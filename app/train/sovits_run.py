"""What every SoVITS run shares: the GAN fine-tune of v1-v2ProPlus (:mod:`app.train.sovits`) and the
LoRA fine-tune of v3/v4 (:mod:`app.train.sovits_lora`).

Both are started as ``python -m app.train.sovits --config run.yaml``
(:class:`app.runconfig.SoVITSRunConfig`) and go through the same steps, in this order:

1. :func:`open_run`: the device, the seeds and the newest resume checkpoint of the run's kind;
2. the trainer builds its model, optimisers and scaler (the part that differs);
3. :func:`app.train.resume.resume_or_begin`: restore them from that checkpoint (or say where the
   weights came from), failing with :class:`SoVITSTrainError`;
4. :func:`epoch_batches`: the length-bucketed batches of this rank and the run's totals;
5. :func:`train_epochs`: :func:`app.train.resume.run_epochs` with the run's hooks, which save
   through :func:`save_resume` and export the trainer's inference weights.

This module imports neither trainer: :mod:`app.train.sovits` chooses between them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from app.messages import Message
from app.models.checkpoint import save_checkpoint
from app.models.sovits.config import SoVITSConfig
from app.runconfig import SoVITSRunConfig
from app.settings import DistributedEnv
from app.train import resume
from app.train.buckets import PlannedBatches, boundary_batches
from app.train.common import TrainSession, seed_everything, train_device
from app.train.sovits_data import SoVITSDataset

WEIGHT_DECAY = 0.01  # torch AdamW's default, which upstream keeps


class SoVITSTrainError(RuntimeError):
    """The run cannot start; the message says what to change."""


def open_run(
    cfg: SoVITSRunConfig, run_dir: Path, env: DistributedEnv, kind: str
) -> tuple[torch.device, resume.Found | None]:
    """This rank's device (seeds set) and the newest readable resume checkpoint of ``kind``, if any."""
    device = train_device(env, cfg.device)
    seed_everything(cfg.seed, env.rank)
    return device, resume.load_latest(run_dir, kind)


def epoch_batches(
    dataset: SoVITSDataset,
    cfg: SoVITSRunConfig,
    env: DistributedEnv,
    device: torch.device,
    session: TrainSession,
    collate_fn: Callable[[list], dict[str, torch.Tensor]],
    boundaries: Sequence[int],
) -> tuple[DataLoader, PlannedBatches]:
    """The loader over this rank's batches of ``dataset`` (SoVITS or CFM clips); sets the run's totals.

    (The trainer logs the dataset's size itself, so the line names the trainer's module as before.)
    """
    loader, sampler = planned_loader(dataset, cfg, env, device, collate_fn, boundaries)
    per_epoch = len(sampler.batches())
    session.set_totals(total_epochs=cfg.epochs, total_steps=per_epoch * cfg.epochs)
    return loader, sampler


def planned_loader(
    dataset: SoVITSDataset,
    cfg: SoVITSRunConfig,
    env: DistributedEnv,
    device: torch.device,
    collate_fn: Callable[[list], dict[str, torch.Tensor]],
    boundaries: Sequence[int],
) -> tuple[DataLoader, PlannedBatches]:
    """The DataLoader over this rank's length-bucketed batches (plan set to epoch 1)."""
    lengths = dataset.lengths
    sampler = PlannedBatches(
        lambda epoch: boundary_batches(
            lengths,
            cfg.batch_size,
            boundaries,
            epoch=epoch,
            seed=cfg.seed,
            rank=env.rank,
            world=env.world_size,
        )
    )
    loader = DataLoader(
        dataset, batch_sampler=sampler, collate_fn=collate_fn, num_workers=cfg.num_workers,
        pin_memory=device.type == "cuda", persistent_workers=cfg.num_workers > 0, worker_init_fn=resume.loader_worker_init,
    )  # fmt: skip
    sampler.set_epoch(1)
    return loader, sampler


def distributed(
    module: torch.nn.Module, env: DistributedEnv, device: torch.device, *, find_unused: bool = False
) -> torch.nn.Module:
    """``module`` wrapped for DDP under torchrun, else ``module`` itself."""
    if not env.enabled:
        return module
    ids = [device.index] if device.type == "cuda" and device.index is not None else None
    return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused)


def save_resume(
    where: resume.Position,
    *,
    kind: str,
    model: torch.nn.Module,
    config: SoVITSConfig,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    extra: Callable[[], dict[str, Any]],
    cfg: SoVITSRunConfig,
    run_dir: Path,
    env: DistributedEnv,
    session: TrainSession,
) -> None:
    """Write the resume checkpoint at ``where`` (rank 0 only) and prune the old ones.

    ``extra`` gives the trainer's own state (scaler, discriminator, ...) with ``where.batches_done``;
    it is called on rank 0 only.
    """
    if env.rank != 0:
        return
    path = resume.resume_path(run_dir, where.step)
    save_checkpoint(
        path, kind=kind, model=model, model_config=config, step=where.step, epoch=where.epochs_done,
        optimizer=optimizer, scheduler=scheduler, extra=extra(),
    )  # fmt: skip
    resume.prune(run_dir, cfg.keep_checkpoints)
    session.message(Message("train.note.saved", "saved {file}", file=path.name))


def train_epochs(
    session: TrainSession,
    loader: DataLoader,
    sampler: PlannedBatches,
    hooks: resume.EpochHooks,
    start: resume.Position,
    cfg: SoVITSRunConfig,
    device: torch.device,
) -> None:
    """Train from ``start`` to the end of the run (:func:`app.train.resume.run_epochs`)."""
    resume.run_epochs(
        session, loader, sampler, hooks, start=start, epochs=cfg.epochs, save_every=cfg.save_every_epoch,
        log_interval=cfg.log_interval, device=device,
    )  # fmt: skip


def export_config(config: SoVITSConfig, cfg: SoVITSRunConfig, run_dir: Path) -> SoVITSConfig:
    """The config written into exported weights: the starting point's tree with this run's settings."""
    extra = {k: dict(v) if isinstance(v, dict) else v for k, v in config.extra.items()}
    train = dict(extra.get("train", {}))
    train.update(
        epochs=cfg.epochs, batch_size=cfg.batch_size, learning_rate=cfg.learning_rate, betas=list(cfg.betas),
        eps=cfg.eps, lr_decay=cfg.lr_decay, text_low_lr_rate=cfg.text_low_lr_rate, seed=cfg.seed,
        save_every_epoch=cfg.save_every_epoch, if_save_latest=cfg.keep_checkpoints == 1,
        if_save_every_weights=cfg.export_weights, fp16_run=cfg.precision == "fp16",
        pretrained_s2G=str(cfg.pretrained_g or ""), pretrained_s2D=str(cfg.pretrained_d or ""),
    )  # fmt: skip
    data = dict(extra.get("data", {}))
    data["exp_dir"] = str(cfg.exp_dir)
    extra.update(
        train=train,
        data=data,
        name=cfg.exp_name,
        s2_ckpt_dir=str(run_dir),
        save_weight_dir=str(cfg.weights_dir),
    )
    return dataclasses.replace(config, extra=extra)
