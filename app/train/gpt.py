"""GPT (text-to-semantic) fine-tuning: ``python -m app.train.gpt --config <experiment>/logs_s1_<version>/run.yaml``.

What it does (upstream ``s1_train.py`` + ``t2s_lightning_module.py`` rebuilt; config
:class:`app.runconfig.GPTRunConfig`):

- Starting point: the pretrained GPT (``s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt`` for v2,
  ``s1v3.ckpt`` for v2Pro/v2ProPlus) or any exported ``.ckpt``; a missing file gives a warning and
  a model from scratch, shaped by ``model`` (defaults: upstream's 24 layers x 512). The GPT of
  v2Pro* reads v2's phone table and is a v2 GPT file (upstream trains it with ``s1longer-v2.yaml``,
  as for v2); only the SoVITS side differs.
- Objective: teacher-forced cross-entropy over every semantic token and the EOS
  (:meth:`app.models.gpt.model.GPT.forward`), with each row masked by its own lengths (upstream's
  left-padding quirk is not reproduced), plus top-3 accuracy for the log.
- Optimiser: AdamW, betas 0.9/0.95, no weight decay, ``learning_rate`` (1e-4) constant after an
  optional linear warm-up, gradients accumulated over ``accumulate_batches`` (4) batches and clipped
  to norm 1. Upstream uses ScaledAdam whose scheduler pins the rate at 0.002 from the second
  optimiser step (0.01 on the first); ScaledAdam scales each update by the parameter's RMS, so its
  0.002 is a relative step of 0.2 %, about 1e-4 in absolute terms for weights of RMS 0.02-0.05,
  which is what AdamW at 1e-4 takes. The loss is averaged per target token before the backward
  (upstream sums), which makes the rate independent of the batch size.
- Data: upstream's filters and duration buckets (:mod:`app.train.gpt_data`, :mod:`app.train.buckets`);
  the batch size is capped at a quarter of the dataset, as upstream does.

Every ``save_every_epoch`` epochs and after the last one it writes a resume checkpoint and
exports ``GPT_weights/<exp>_e<epoch>_s<step>.ckpt`` (upstream's format, config of the starting
point). It resumes from the newest ``resume_*.pt``; SIGTERM saves at the current step and exits.
Under ``torchrun`` each process trains on its GPU (DDP); fp16/bf16 autocast on CUDA.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import functools
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from app import config_io
from app.messages import Message, said
from app.models.checkpoint import Checkpoint, CheckpointError, restore, save_checkpoint
from app.models.gpt.config import GPTConfig, GPTConfigError
from app.models.gpt.model import GPT
from app.models.upstream.gpt import GPTFileError, default_config, load_gpt, save_gpt
from app.runconfig import PRECISIONS, TRAIN_VERSIONS, GPTRunConfig, text_version
from app.settings import DistributedEnv
from app.train import resume
from app.train.buckets import PlannedBatches, duration_batches
from app.train.common import (
    TrainSession,
    all_reduce_mean,
    autocast,
    cleanup_distributed,
    grad_scaler,
    seed_everything,
    setup_distributed,
    train_device,
)
from app.train.gpt_data import GPTDataset, collate
from app.train.sovits_data import TrainingDataError

log = logging.getLogger(__name__)

KIND = "gpt"
PHONEME_ROWS = {"v1": 512, "v2": 732}  # phoneme embedding rows of each symbol-table version (text_version)
SHAPE_FIELDS = ("vocab_size", "eos", "phoneme_vocab_size", "dim", "n_head", "n_layer", "bert_dim")


class GPTTrainError(RuntimeError):
    """The run cannot start; the message says what to change."""


def _check_run(cfg: GPTRunConfig) -> None:
    if cfg.version not in TRAIN_VERSIONS:
        raise GPTTrainError(f"version {cfg.version!r} cannot be trained here: choose one of {TRAIN_VERSIONS}")
    if cfg.precision not in PRECISIONS:
        raise GPTTrainError(f"precision {cfg.precision!r}: choose one of {PRECISIONS}")
    for name in ("batch_size", "epochs", "save_every_epoch", "log_interval", "accumulate_batches"):
        if getattr(cfg, name) < 1:
            raise GPTTrainError(f"{name} must be at least 1, got {getattr(cfg, name)}")


def _with_overrides(base: GPTConfig, overrides: dict[str, Any], *, shape_fixed: bool) -> GPTConfig:
    known = {f.name for f in dataclasses.fields(GPTConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise GPTTrainError(f"model overrides {unknown} are not GPTConfig fields; known: {sorted(known)}")
    try:
        config = dataclasses.replace(base, **overrides)
    except GPTConfigError as exc:
        raise GPTTrainError(str(exc)) from None
    changed = [f for f in SHAPE_FIELDS if getattr(config, f) != getattr(base, f)]
    if shape_fixed and changed:
        raise GPTTrainError(
            f"model overrides change {changed}, which the starting weights fix; "
            "remove them or train from scratch"
        )
    return config


def build_model(cfg: GPTRunConfig, resumed: Checkpoint | None) -> tuple[GPT, dict[str, Any], str]:
    """(model, upstream config dict for exports, where the weights came from)."""
    if resumed is not None:
        config = GPTConfig(**resumed.model_config)
        if _with_overrides(config, cfg.model, shape_fixed=False) != config:
            raise GPTTrainError(
                "the model settings differ from those of the checkpoint being resumed; "
                "choose another experiment name (or delete its resume_*.pt) to start over"
            )
        upstream = resumed.extra.get("upstream_config") or default_config(config, cfg.exp_name)
        return GPT(config), copy.deepcopy(upstream), "checkpoint"
    if cfg.pretrained_s1 is not None and Path(cfg.pretrained_s1).is_file():
        try:
            found = load_gpt(cfg.pretrained_s1, expect_version=text_version(cfg.version))
        except GPTFileError as exc:
            raise GPTTrainError(str(exc)) from None
        config = _with_overrides(found.model.config, cfg.model, shape_fixed=True)
        model = GPT(config)
        model.load_state_dict(found.model.state_dict(), strict=True)
        return model, copy.deepcopy(found.config), str(cfg.pretrained_s1)
    log.warning(
        "no pretrained GPT at %s: training from scratch, which needs far more data than fine-tuning "
        "(download: python tools/download_models.py gpt-sovits-%s)",
        cfg.pretrained_s1,
        cfg.version.lower(),
    )
    config = _with_overrides(
        GPTConfig(phoneme_vocab_size=PHONEME_ROWS[text_version(cfg.version)]), cfg.model, shape_fixed=False
    )
    return GPT(config), default_config(config, cfg.exp_name), "scratch"


def export_config(upstream: dict[str, Any], cfg: GPTRunConfig) -> dict[str, Any]:
    """The upstream config dict written into exported weights, with this run's settings."""
    out = copy.deepcopy(upstream)
    train = dict(out.get("train", {}))
    train.update(
        epochs=cfg.epochs, batch_size=cfg.batch_size, save_every_n_epoch=cfg.save_every_epoch, seed=cfg.seed,
        if_save_latest=cfg.keep_checkpoints == 1, if_save_every_weights=cfg.export_weights,
        half_weights_save_dir=str(cfg.weights_dir), exp_name=cfg.exp_name, gradient_clip=cfg.grad_clip,
    )  # fmt: skip
    out["train"] = train
    out["pretrained_s1"] = str(cfg.pretrained_s1 or "")
    out["train_semantic_path"] = str(Path(cfg.exp_dir) / "6-name2semantic.tsv")
    out["train_phoneme_path"] = str(Path(cfg.exp_dir) / "2-name2text.txt")
    return out


def _warmup(warmup_steps: int):
    def factor(step: int) -> float:
        return min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0

    return factor


@dataclasses.dataclass
class GPTRun:
    """One GPT run: what it trains, how far it has come and where it reports and writes."""

    cfg: GPTRunConfig
    run_dir: Path
    session: TrainSession
    env: DistributedEnv
    device: torch.device
    model: GPT
    upstream: dict[str, Any]  # upstream config dict of the starting point, the base of the exports' config
    optim: torch.optim.AdamW
    sched: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    step: int = 0  # optimiser steps taken

    def restore(self, path: Path, ckpt: Checkpoint) -> None:
        """Model, optimiser, scheduler and scaler from a resume checkpoint."""
        restore(ckpt, self.model, self.optim, self.sched, source=str(path))
        self.scaler.load_state_dict(ckpt.extra["scaler"])

    def optimizer_step(self) -> None:
        """Step on the accumulated gradients (unscaled, clipped to ``grad_clip``); the scheduler follows."""
        self.scaler.unscale_(self.optim)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.optim)
        self.scaler.update()
        self.optim.zero_grad(set_to_none=True)
        self.sched.step()
        self.step += 1

    def log_step(self, epoch: int, sums: dict[str, float]) -> None:
        """Per-token loss and top-3 accuracy of the batches summed in ``sums`` (averaged over ranks)."""
        tokens = max(sums.pop("tokens", 1.0), 1.0)
        losses = {"loss": sums.get("loss_sum", 0.0) / tokens, "top3_acc": sums.get("acc_sum", 0.0) / tokens}
        self.session.log_step(self.step, epoch, all_reduce_mean(losses), lr=self.optim.param_groups[0]["lr"])

    def save(self, epoch_done: int, batches_done: int) -> None:
        """Write a resume checkpoint at the current step (rank 0) and prune the old ones."""
        if self.env.rank != 0:
            return
        path = resume.resume_path(self.run_dir, self.step)
        extra = {
            "scaler": self.scaler.state_dict(),
            "batches_done": batches_done,
            "upstream_config": self.upstream,
        }
        save_checkpoint(
            path, kind=KIND, model=self.model, model_config=self.model.config, step=self.step, epoch=epoch_done,
            optimizer=self.optim, scheduler=self.sched, extra=extra,
        )  # fmt: skip
        resume.prune(self.run_dir, self.cfg.keep_checkpoints)
        self.session.message(Message("train.note.saved", "saved {file}", file=path.name))

    def export(self, epoch: int) -> None:
        """Write ``<weights_dir>/<exp>_e<epoch>_s<step>.ckpt`` (rank 0, when the run exports weights)."""
        cfg = self.cfg
        if self.env.rank != 0 or not cfg.export_weights:
            return
        target = Path(cfg.weights_dir) / resume.weights_name(cfg.exp_name, epoch, self.step, ".ckpt")
        save_gpt(self.model, target, epoch, config=export_config(self.upstream, cfg), exp_name=cfg.exp_name)
        self.session.message(Message("train.note.exported", "exported {file}", file=target.name))


def start_run(
    cfg: GPTRunConfig, run_dir: Path, session: TrainSession, env: DistributedEnv
) -> tuple[GPTRun, resume.Position]:
    """The run's model, optimiser and scaler on this rank's device (seeds set), restored from the
    newest resume checkpoint if there is one, and where training starts."""
    device = train_device(env, cfg.device)
    seed_everything(cfg.seed, env.rank)
    found = resume.load_latest(run_dir, KIND)
    model, upstream, source = build_model(cfg, found[1] if found else None)
    model.to(device).train()
    optim = torch.optim.AdamW(model.parameters(), cfg.learning_rate, betas=tuple(cfg.betas), weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(optim, _warmup(cfg.warmup_steps))
    scaler = grad_scaler(device, cfg.precision)
    run = GPTRun(cfg, run_dir, session, env, device, model, upstream, optim, sched, scaler)
    start = resume.resume_or_begin(
        found,
        run_dir,
        env,
        session,
        run.restore,
        Message("train.note.start", "starting from {source}", source=str(source)),
        GPTTrainError,
    )
    run.step = start.step
    return run, start


def planned_loader(
    dataset: GPTDataset, cfg: GPTRunConfig, env: DistributedEnv, device: torch.device, pad_code: int
) -> tuple[DataLoader, PlannedBatches]:
    """The DataLoader over this rank's duration-bucketed batches (plan set to epoch 1)."""
    batch_size = max(1, min(cfg.batch_size, len(dataset) // 4))  # upstream: so an epoch has batches to save
    durations = dataset.durations
    sampler = PlannedBatches(
        lambda epoch: duration_batches(
            durations, batch_size, epoch=epoch, seed=cfg.seed, rank=env.rank, world=env.world_size
        )
    )
    loader = DataLoader(
        dataset, batch_sampler=sampler, collate_fn=functools.partial(collate, pad_code=pad_code),
        num_workers=cfg.num_workers, pin_memory=device.type == "cuda", persistent_workers=cfg.num_workers > 0, worker_init_fn=resume.loader_worker_init,
    )  # fmt: skip
    sampler.set_epoch(1)
    return loader, sampler


def train_epochs(
    run: GPTRun, net: torch.nn.Module, loader: DataLoader, sampler: PlannedBatches, start: resume.Position
) -> None:
    """Train from ``start`` to the end of epoch ``epochs``, an optimiser step every ``accumulate_batches``
    batches (and at an epoch's end); a stop request saves at the current batch and ends the run as stopped."""
    cfg = run.cfg
    sums: dict[str, float] = {}
    for epoch in range(start.epochs_done + 1, cfg.epochs + 1):
        sampler.set_epoch(epoch, start.batches_done if epoch == start.epochs_done + 1 else 0)
        total = len(sampler.batches())
        for index, batch in enumerate(loader, start=sampler.skip):
            boundary = (index + 1) % cfg.accumulate_batches == 0 or index + 1 == total
            # DDP averages gradients only on the batch that ends an accumulation.
            sync = net.no_sync() if run.env.enabled and not boundary else contextlib.nullcontext()
            with sync:
                parts = forward_backward(
                    batch, net, run.scaler, run.device, cfg.precision, cfg.accumulate_batches
                )
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            if not boundary:
                continue
            run.optimizer_step()
            if run.step % cfg.log_interval == 0 or run.step == 1:
                run.log_step(epoch, sums)
            sums = {}
            if resume.agree(run.session.stop_requested, run.device):
                run.save(epoch - 1, index + 1)
                run.session.stopped()
                return
        if epoch % cfg.save_every_epoch == 0 or epoch == cfg.epochs:
            run.save(epoch, 0)
            run.export(epoch)
    template = "finished {epochs} epochs, {steps} steps"
    run.session.done(Message("train.note.finished_epochs", template, epochs=cfg.epochs, steps=run.step))


def train(cfg: GPTRunConfig, run_dir: Path, session: TrainSession, env: DistributedEnv) -> None:
    """The training run (called inside a :class:`TrainSession`)."""
    _check_run(cfg)
    run, start = start_run(cfg, run_dir, session, env)
    dataset = GPTDataset(cfg.exp_dir, cfg.version, cfg.max_sec, cfg.min_items_per_epoch)
    log.info("%d clips (%d with repeats); left out: %s", dataset.unique, len(dataset), dataset.left_out)
    loader, sampler = planned_loader(dataset, cfg, env, run.device, run.model.config.eos)
    per_epoch = -(-len(sampler.batches()) // cfg.accumulate_batches)  # optimiser steps, the last one partial
    session.set_totals(total_epochs=cfg.epochs, total_steps=per_epoch * cfg.epochs)
    net: torch.nn.Module = (
        DistributedDataParallel(run.model, device_ids=_ids(run.device)) if env.enabled else run.model
    )
    train_epochs(run, net, loader, sampler, start)


def forward_backward(
    batch: dict[str, torch.Tensor],
    net: torch.nn.Module,
    scaler: torch.amp.GradScaler,
    device: torch.device,
    precision: str,
    accumulate: int,
) -> dict[str, float]:
    """Backward of one batch's per-token loss (divided by ``accumulate``); returns sums for the log."""
    b = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    with autocast(device, precision):
        out = net(b["phones"], b["phone_lens"], b["bert"], b["codes"], b["code_lens"])
    tokens = float((b["code_lens"] + 1).sum())  # every code plus the EOS is a target
    loss = out.loss.float() / tokens
    scaler.scale(loss / accumulate).backward()
    return {"loss_sum": float(out.loss.detach()), "acc_sum": float(out.top_k_acc) * tokens, "tokens": tokens}


def _ids(device: torch.device) -> list[int] | None:
    return [device.index] if device.type == "cuda" and device.index is not None else None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m app.train.gpt", description="Fine-tune a GPT-SoVITS GPT.")
    p.add_argument("--config", type=Path, required=True, help="run.yaml (GPTRunConfig) in the run folder")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_dir = args.config.resolve().parent
    env = setup_distributed()
    try:
        with TrainSession(run_dir, stage=KIND, env=env) as session:
            try:
                cfg = config_io.load(GPTRunConfig, args.config)
                train(cfg, run_dir, session, env)
            except (config_io.ConfigError, GPTTrainError, CheckpointError, TrainingDataError) as exc:
                log.error("%s", exc)
                session.failed(said(exc))  # a Message keeps its key: the Train tab words it
                return 2
    except Exception:
        return 1
    finally:
        cleanup_distributed()
    return 0


if __name__ == "__main__":
    sys.exit(main())
