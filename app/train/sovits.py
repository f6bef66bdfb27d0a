"""SoVITS fine-tuning: ``python -m app.train.sovits --config <experiment>/logs_s2_<version>/run.yaml``.

What it does for v1/v2/v2Pro/v2ProPlus (upstream ``s2_train.py`` rebuilt; config
:class:`app.runconfig.SoVITSRunConfig`); v3/v4 runs, LoRA on the flow-matching decoder, are handed
to :mod:`app.train.sovits_lora` (upstream ``s2_train_v3_lora.py``). Both take the steps of
:mod:`app.train.sovits_run` (resume, batches, checkpoints, the epoch loop):

- Starting point: the pretrained generator (``s2G2333k.pth`` for v2, ``v2Pro/s2Gv2Pro.pth`` /
  ``s2Gv2ProPlus.pth`` for v2Pro*, an exported ``.pth`` or an upstream ``G_*.pth``) and
  discriminator (``s2D2333k.pth``; v2Pro*'s ``s2Dv2Pro*.pth`` add periods 17 and 23). Its shape
  (v2Pro*: no dropout, gin 1024, v2ProPlus's wider decoder) comes from the file, as upstream's
  ``s2v2Pro*.json`` give it. A missing file gives a warning and that network starts from random
  weights (fine-tuning then needs far more data and epochs).
- v2Pro*: each clip's speaker embedding (``7-sv_cn/``, formatting step 2-get-sv) goes into the
  timbre vector beside the reference encoder's, as upstream's ``s2_train.py`` feeds ``sv_emb``.
- Frozen: ``ssl_proj`` and the quantizer codebook. Upstream keeps them in eval mode and, because
  its eval-mode quantizer has no straight-through path, they get no gradient either; freezing
  them keeps the semantic tokens of step 1c (and of the GPT) valid for the fine-tuned model.
  Everything else trains.
- Learning rates: AdamW (betas 0.8/0.99, eps 1e-9, weight decay 0.01) at ``learning_rate`` for
  the acoustic side and ``learning_rate * text_low_lr_rate`` (0.4) for ``enc_p.text_embedding``,
  ``enc_p.encoder_text`` and ``enc_p.mrte``; both decay by ``lr_decay`` per epoch.
- Step: discriminator update on the detached generated window, then generator update on
  LSGAN + feature matching + 45 x mel L1 + KL (:mod:`app.models.sovits.losses`).
- Data: clips of 0.6-54 s, bucketed by length (:mod:`app.train.buckets`), small sets repeated.

Every ``save_every_epoch`` epochs and after the last one it writes a resume checkpoint and
exports ``SoVITS_weights/<exp>_e<epoch>_s<step>.pth`` (upstream's format). It resumes from the
newest ``resume_*.pt`` in the run folder; SIGTERM saves a checkpoint at the current step and exits.
Under ``torchrun`` each process trains on its GPU (DDP); fp16/bf16 autocast on CUDA.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from app import config_io
from app.messages import Message, said
from app.models.checkpoint import Checkpoint, CheckpointError, restore
from app.models.nn.discriminators import MultiPeriodDiscriminator
from app.models.sovits.config import SoVITSConfig, preset
from app.models.sovits.losses import discriminator_objective, generator_objectives
from app.models.sovits.model import SoVITS, TrainOutput
from app.models.upstream.sovits import read_discriminator, read_sovits, write_sovits
from app.runconfig import PRECISIONS, TRAIN_VERSIONS, SoVITSRunConfig, is_lora
from app.settings import DistributedEnv
from app.train import resume, sovits_lora
from app.train.buckets import SOVITS_BOUNDARIES
from app.train.common import TrainSession, autocast, cleanup_distributed, grad_scaler, setup_distributed
from app.train.sovits_data import SoVITSDataset, TrainingDataError, collate
from app.train.sovits_run import (
    WEIGHT_DECAY,
    SoVITSTrainError,
    distributed,
    epoch_batches,
    export_config,
    open_run,
    save_resume,
    train_epochs,
)

log = logging.getLogger(__name__)

KIND = "sovits"
TEXT_MODULES = ("text_embedding", "encoder_text", "mrte")  # enc_p parts at the lower learning rate


def _tuples(value: Any) -> Any:
    """YAML lists -> tuples, so they fit the frozen config's tuple fields."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def _with_overrides(base: SoVITSConfig, overrides: dict[str, Any]) -> SoVITSConfig:
    known = {f.name for f in dataclasses.fields(SoVITSConfig)} - {"extra", "version"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise SoVITSTrainError(
            f"model overrides {unknown} are not SoVITSConfig fields; known: {sorted(known)}"
        )
    # freeze_quantizer is a choice of this trainer, not an option (see the module docstring).
    return dataclasses.replace(base, **{k: _tuples(v) for k, v in overrides.items()}, freeze_quantizer=True)


def _check_run(cfg: SoVITSRunConfig) -> None:
    if cfg.version not in TRAIN_VERSIONS:
        raise SoVITSTrainError(
            f"version {cfg.version!r} cannot be trained here: choose one of {TRAIN_VERSIONS}"
        )
    if cfg.precision not in PRECISIONS:
        raise SoVITSTrainError(f"precision {cfg.precision!r}: choose one of {PRECISIONS}")
    for name in ("batch_size", "epochs", "save_every_epoch", "log_interval", "discriminator_width_divisor"):
        if getattr(cfg, name) < 1:
            raise SoVITSTrainError(f"{name} must be at least 1, got {getattr(cfg, name)}")


def build_generator(cfg: SoVITSRunConfig, resumed: Checkpoint | None) -> tuple[SoVITS, str]:
    """The generator to train and where its weights came from (frozen parts already frozen)."""
    if resumed is not None:
        config = SoVITSConfig(**resumed.model_config)
        wanted = _with_overrides(config, cfg.model)
        if wanted != config:
            raise SoVITSTrainError(
                "the model settings differ from those of the checkpoint being resumed; "
                "choose another experiment name (or delete its resume_*.pt) to start over"
            )
        if config.version != cfg.version:
            raise SoVITSTrainError(
                f"the checkpoint being resumed is a {config.version} model, this run trains {cfg.version}"
            )
        model, source = SoVITS(config), "checkpoint"
    elif cfg.pretrained_g is not None and Path(cfg.pretrained_g).is_file():
        record = read_sovits(cfg.pretrained_g, expect_version=cfg.version)
        config = _with_overrides(record.config, cfg.model)
        model = SoVITS(config)
        state = {k: v.float() for k, v in record.state_dict.items()}
        if not any(k.startswith("enc_q.") for k in state):
            # Exported weights lack the posterior encoder: it starts fresh, as upstream's does.
            state.update({f"enc_q.{k}": v for k, v in model.enc_q.state_dict().items()})
        _load_exactly(model, state, str(cfg.pretrained_g))
        source = str(cfg.pretrained_g)
    else:
        log.warning(
            "no pretrained SoVITS generator at %s: training from scratch, which needs much more data "
            "and many more epochs (download: python tools/download_models.py gpt-sovits-%s)",
            cfg.pretrained_g,
            cfg.version.lower(),
        )
        model, source = SoVITS(_with_overrides(preset(cfg.version), cfg.model)), "scratch"
    model.ssl_proj.requires_grad_(False)
    model.quantizer.requires_grad_(False)
    return model, source


def build_discriminator(
    cfg: SoVITSRunConfig, config: SoVITSConfig, resumed: bool
) -> tuple[MultiPeriodDiscriminator, str]:
    disc = MultiPeriodDiscriminator(config.mpd_periods, cfg.discriminator_width_divisor)
    if resumed:
        return disc, "checkpoint"
    path = cfg.pretrained_d
    if path is None or not Path(path).is_file():
        log.warning("no pretrained SoVITS discriminator at %s: it starts from random weights", path)
        return disc, "scratch"
    if cfg.discriminator_width_divisor != 1:
        raise SoVITSTrainError("a pretrained discriminator needs discriminator_width_divisor 1")
    periods, state = read_discriminator(path)
    if tuple(periods) != tuple(config.mpd_periods):
        raise SoVITSTrainError(f"{path}: discriminator periods {periods} do not match {config.version}'s")
    _load_exactly(disc, {k: v.float() for k, v in state.items()}, str(path))
    return disc, str(path)


def _load_exactly(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    expected = module.state_dict()
    wrong = sorted(set(expected) ^ set(state)) + [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if wrong:
        raise SoVITSTrainError(f"{source}: weights do not fit the model to train (e.g. {wrong[:3]})")
    module.load_state_dict(state, strict=True)


def optimizers(
    model: SoVITS, disc: MultiPeriodDiscriminator, cfg: SoVITSRunConfig
) -> tuple[torch.optim.AdamW, torch.optim.AdamW]:
    text_params = [p for name in TEXT_MODULES for p in getattr(model.enc_p, name).parameters()]
    text_ids = {id(p) for p in text_params}
    base = [p for p in model.parameters() if p.requires_grad and id(p) not in text_ids]
    lr = cfg.learning_rate
    common = {"betas": tuple(cfg.betas), "eps": cfg.eps, "weight_decay": WEIGHT_DECAY}
    optim_g = torch.optim.AdamW(
        [{"params": base, "lr": lr}, {"params": text_params, "lr": lr * cfg.text_low_lr_rate}], lr, **common
    )
    optim_d = torch.optim.AdamW(disc.parameters(), lr, **common)
    return optim_g, optim_d


def _as_float(out: TrainOutput) -> TrainOutput:
    """Losses in float32 whatever the autocast dtype (the STFT of the mel loss refuses bf16)."""
    return dataclasses.replace(
        out,
        **{
            f.name: getattr(out, f.name).float()
            for f in dataclasses.fields(out)
            if getattr(out, f.name).is_floating_point()
        },
    )


@dataclasses.dataclass
class GanState:
    """What a v1-v2ProPlus run trains and what its resume checkpoints hold."""

    model: SoVITS
    disc: MultiPeriodDiscriminator
    optim_g: torch.optim.AdamW
    optim_d: torch.optim.AdamW
    sched_g: torch.optim.lr_scheduler.ExponentialLR
    sched_d: torch.optim.lr_scheduler.ExponentialLR
    scaler: torch.amp.GradScaler

    def restore(self, path: Path, ckpt: Checkpoint) -> None:
        """Every part from a resume checkpoint (raises KeyError/ValueError/RuntimeError when it does not fit)."""
        restore(ckpt, self.model, self.optim_g, self.sched_g, source=str(path))
        self.disc.load_state_dict(ckpt.extra["discriminator"], strict=True)
        self.optim_d.load_state_dict(ckpt.extra["optimizer_d"])
        self.sched_d.load_state_dict(ckpt.extra["scheduler_d"])
        self.scaler.load_state_dict(ckpt.extra["scaler"])

    def extra(self, batches_done: int) -> dict[str, Any]:
        """A resume checkpoint's ``extra``: the discriminator's side, the scaler and the batches done."""
        return {
            "discriminator": {k: v.detach().cpu() for k, v in self.disc.state_dict().items()},
            "optimizer_d": self.optim_d.state_dict(), "scheduler_d": self.sched_d.state_dict(),
            "scaler": self.scaler.state_dict(), "batches_done": batches_done,
        }  # fmt: skip

    def end_epoch(self) -> None:
        """Both learning rates decay by ``lr_decay`` after each epoch."""
        self.sched_g.step()
        self.sched_d.step()


def build_state(
    cfg: SoVITSRunConfig, found: resume.Found | None, device: torch.device
) -> tuple[GanState, str]:
    """The networks on ``device`` with their optimisers (not yet restored from ``found``) and where
    their weights came from, as the run's first message says it."""
    model, g_source = build_generator(cfg, found[1] if found else None)
    disc, d_source = build_discriminator(cfg, model.config, found is not None)
    model.to(device).train()
    disc.to(device).train()
    optim_g, optim_d = optimizers(model, disc, cfg)
    sched_g = torch.optim.lr_scheduler.ExponentialLR(optim_g, gamma=cfg.lr_decay)
    sched_d = torch.optim.lr_scheduler.ExponentialLR(optim_d, gamma=cfg.lr_decay)
    state = GanState(model, disc, optim_g, optim_d, sched_g, sched_d, grad_scaler(device, cfg.precision))
    template = "starting from generator: {generator}; discriminator: {discriminator}"
    return state, Message(
        "train.note.start_gan", template, generator=str(g_source), discriminator=str(d_source)
    )


def gan_hooks(
    state: GanState,
    cfg: SoVITSRunConfig,
    run_dir: Path,
    session: TrainSession,
    env: DistributedEnv,
    device: torch.device,
) -> resume.EpochHooks:
    """The step, save and export of a v1-v2ProPlus run for :func:`app.train.resume.run_epochs`."""
    model, config = state.model, state.model.config
    model_ddp = distributed(model, env, device, find_unused=True)
    disc_ddp = distributed(state.disc, env, device)

    def save(where: resume.Position) -> None:
        save_resume(
            where, kind=KIND, model=model, config=config, optimizer=state.optim_g, scheduler=state.sched_g,
            extra=lambda: state.extra(where.batches_done), cfg=cfg, run_dir=run_dir, env=env, session=session,
        )  # fmt: skip

    def export(epoch: int, step: int) -> None:
        if env.rank != 0 or not cfg.export_weights:
            return
        target = Path(cfg.weights_dir) / resume.weights_name(cfg.exp_name, epoch, step, ".pth")
        write_sovits(target, model.state_dict(), export_config(config, cfg, run_dir), epoch, step)
        session.message(Message("train.note.exported", "exported {file}", file=target.name))

    return resume.EpochHooks(
        train_step=lambda batch: train_step(
            batch,
            model_ddp,
            disc_ddp,
            state.optim_g,
            state.optim_d,
            state.scaler,
            config,
            device,
            cfg.precision,
        ),
        save=save,
        export=export,
        end_epoch=state.end_epoch,
        lr=lambda: state.optim_g.param_groups[0]["lr"],
    )


def train(cfg: SoVITSRunConfig, run_dir: Path, session: TrainSession, env: DistributedEnv) -> None:
    """The training run (called inside a :class:`TrainSession`); v3/v4 runs train LoRA adapters
    (:func:`app.train.sovits_lora.train`)."""
    _check_run(cfg)
    if is_lora(cfg.version):
        sovits_lora.train(cfg, run_dir, session, env)
        return
    device, found = open_run(cfg, run_dir, env, KIND)
    state, begin_message = build_state(cfg, found, device)
    start = resume.resume_or_begin(
        found, run_dir, env, session, state.restore, begin_message, SoVITSTrainError
    )
    dataset = SoVITSDataset(cfg.exp_dir, state.model.config, cfg.version, cfg.min_items_per_epoch)
    log.info("%d clips (%d with repeats); left out: %s", dataset.unique, len(dataset), dataset.left_out)
    loader, sampler = epoch_batches(dataset, cfg, env, device, session, collate, SOVITS_BOUNDARIES)
    hooks = gan_hooks(state, cfg, run_dir, session, env, device)
    train_epochs(session, loader, sampler, hooks, start, cfg, device)


def train_step(
    batch: dict[str, torch.Tensor],
    model: torch.nn.Module,
    disc: torch.nn.Module,
    optim_g: torch.optim.Optimizer,
    optim_d: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    config: SoVITSConfig,
    device: torch.device,
    precision: str,
) -> dict[str, float]:
    """One discriminator and one generator update; returns the named losses."""
    b = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    with autocast(device, precision):
        # sv_emb: v2Pro*'s (B, sv_dim) speaker embeddings; absent for v1/v2.
        out = model(b["ssl"], b["spec"], b["spec_lengths"], b["text"], b["text_lengths"], b.get("sv_emb"))
    out = _as_float(out)
    with autocast(device, precision):
        loss_d = discriminator_objective(out, b["wav"], disc, config)
    optim_d.zero_grad(set_to_none=True)
    scaler.scale(loss_d).backward()
    scaler.step(optim_d)
    with autocast(device, precision):
        parts = generator_objectives(out, b["spec"], b["wav"], disc, config)
    loss_g = sum(parts.values())
    optim_g.zero_grad(set_to_none=True)
    scaler.scale(loss_g).backward()
    scaler.step(optim_g)
    scaler.update()
    named = {"d": float(loss_d.detach()), "g": float(loss_g.detach())}
    named.update({k: float(v.detach()) for k, v in parts.items() if k != "commit"})
    return named


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m app.train.sovits", description="Fine-tune a SoVITS model.")
    p.add_argument("--config", type=Path, required=True, help="run.yaml (SoVITSRunConfig) in the run folder")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_dir = args.config.resolve().parent
    env = setup_distributed()
    try:
        with TrainSession(run_dir, stage=KIND, env=env) as session:
            try:
                cfg = config_io.load(SoVITSRunConfig, args.config)
                train(cfg, run_dir, session, env)
            except (config_io.ConfigError, SoVITSTrainError, CheckpointError, TrainingDataError) as exc:
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
