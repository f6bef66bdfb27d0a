"""Train a so-vits-svc 4.1 model: ``python -m app.train.svc --config logs/44k/run.yaml``.

The run's settings are one :class:`SvcRunConfig` saved as ``run.yaml`` in the experiment's
``logs/44k/`` (beside the checkpoints, ``status.json``, ``metrics.jsonl`` and ``tensorboard/``);
the network and optimiser settings come from the experiment's ``configs/config.json`` as in 4.1.

What happens (4.1 ``train.py``, our code):

- start: the newest ``G_<step>.pth``/``D_<step>.pth`` pair in ``logs/44k`` (resume: weights,
  AdamW state, epoch, step), else a base pair (``G_0.pth``/``D_0.pth`` there, or the files named in
  the run config) whose weights are copied where names and shapes match (speaker rows are
  re-initialised when the speaker count differs), else random weights with a warning;
- AdamW (lr from config.json, 4.1: 1e-4, betas 0.8/0.99, eps 1e-9) for G and D, learning rate
  ``lr * lr_decay^(epoch - 1)`` (4.1's ExponentialLR stepped once per epoch, optional warm-up);
- per step: discriminator update on the decoded window, then generator update on adversarial +
  feature matching + 45 x mel L1 + KL (+ log-f0 MSE with the F0 decoder), :mod:`app.models.svc.losses`;
- fp16/bf16 autocast with a GradScaler on CUDA (fp32 on CPU), DDP when launched by torchrun;
- every ``save_every`` steps ``G_<step>.pth``/``D_<step>.pth`` in 4.1's format, keeping the newest
  ``keep_checkpoints`` pairs (the base ``*_0.pth`` are never removed), a validation sample to
  TensorBoard; SIGTERM saves the current step and exits (resume continues from it);
- at the end, a compressed inference file ``logs/44k/release/<experiment>_<step>.pth`` + config.json.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from app import config_io
from app.audio.pitch_range import REPORT_FILE
from app.data.preprocess.svc.dataset import read_list
from app.messages import Message
from app.models.nn.losses import discriminator_loss
from app.models.nn.masks import slice_segments
from app.models.nn.spectrogram import spec_to_mel
from app.models.svc.config import SvcConfig
from app.models.svc.losses import build_discriminator, generator_losses, mel_spectrogram, slice_audio
from app.models.svc.synthesizer import SvcSynthesizer
from app.models.upstream.svc.checkpoint import (
    compress_checkpoint,
    copy_matching,
    load_svc,
    read_config,
    read_discriminator,
    write_discriminator,
    write_svc,
)
from app.runconfig import SvcRunConfig, save_svc_run
from app.settings import DistributedEnv
from app.train.common import (
    TrainSession,
    autocast,
    checkpoint_number,
    cleanup_distributed,
    grad_scaler,
    seed_everything,
    setup_distributed,
    train_device,
)
from app.train.svc.data import SvcBatch, SvcDataset, collate

log = logging.getLogger(__name__)

RELEASE_DIR = "release"


@dataclass
class _Resolved:
    """Run settings after filling the gaps from config.json."""

    epochs: int
    max_steps: int | None
    save_every: int
    keep: int
    batch_size: int
    log_every: int
    learning_rate: float
    precision: str
    seed: int


def _resolve(run: SvcRunConfig, cfg: SvcConfig) -> _Resolved:
    t = cfg.train
    precision = run.precision or (
        (t.half_type if t.half_type in ("fp16", "bf16") else "fp16") if t.fp16_run else "fp32"
    )

    def pick(value, default):  # type: ignore[no-untyped-def]
        return default if value is None else value

    return _Resolved(
        epochs=pick(run.epochs, t.epochs),
        max_steps=run.max_steps,
        save_every=max(1, pick(run.save_every, t.eval_interval)),
        keep=pick(run.keep_checkpoints, t.keep_ckpts),
        batch_size=max(1, pick(run.batch_size, t.batch_size)),
        log_every=max(1, pick(run.log_every, t.log_interval)),
        learning_rate=pick(run.learning_rate, t.learning_rate),
        precision=precision,
        seed=pick(run.seed, t.seed),
    )


def lr_at(epoch: int, cfg: SvcConfig, base_lr: float) -> float:
    """4.1's learning rate in ``epoch`` (1-based): linear warm-up, then exponential decay per epoch."""
    warmup = cfg.train.warmup_epochs
    if warmup and epoch <= warmup:
        return base_lr / warmup * epoch
    return base_lr * cfg.train.lr_decay ** (epoch - 1)


def training_checkpoints(folder: Path, prefix: str) -> list[Path]:
    """``<prefix>_<step>.pth`` files with step > 0, oldest first (the ``_0`` base is not a run checkpoint)."""
    files = [p for p in Path(folder).glob(f"{prefix}_*.pth") if not p.name.startswith(".")]
    return sorted(
        (p for p in files if p.stem[len(prefix) + 1 :].isdigit() and checkpoint_number(p) > 0),
        key=checkpoint_number,
    )


def prune(folder: Path, keep: int) -> None:
    """Keep the newest ``keep`` G/D pairs (0 keeps all; the ``_0`` base files stay)."""
    if keep <= 0:
        return
    for prefix in ("G", "D"):
        for old in training_checkpoints(folder, prefix)[:-keep]:
            old.unlink(missing_ok=True)


@dataclass
class _State:
    net_g: SvcSynthesizer
    net_d: torch.nn.Module
    optim_g: torch.optim.Optimizer
    optim_d: torch.optim.Optimizer
    step: int = 0  # optimiser steps done
    epoch: int = 1


def _build(run: SvcRunConfig, cfg: SvcConfig, res: _Resolved, device: torch.device) -> _State:
    """Models and optimisers, from the newest checkpoint, a base pair or random weights."""
    tree = run.tree
    net_g = SvcSynthesizer(cfg.synthesizer("sovits41"))
    net_d = build_discriminator(run.discriminator_width_divisor)
    g_ckpts = training_checkpoints(tree.models, "G")
    step, epoch, g_opt, d_opt = 0, 1, None, None
    if g_ckpts:
        g_path = g_ckpts[-1]
        d_path = tree.models / f"D_{checkpoint_number(g_path)}.pth"
        loaded = load_svc(g_path, cfg, purpose="training")
        net_g.load_state_dict(loaded.model.state_dict())
        g_opt = loaded.file.optimizer
        if d_path.is_file():
            d_file = read_discriminator(d_path)
            _load_discriminator(net_d, d_file.state_dict, d_path, run)
            d_opt = d_file.optimizer
        else:
            log.warning("%s has no matching %s; the discriminator starts over", g_path.name, d_path.name)
        step, epoch = checkpoint_number(g_path), max(1, loaded.file.iteration)
        log.info("resuming from %s: step %d, epoch %d", g_path, step, epoch)
    else:
        base_g = run.base_g or tree.models / "G_0.pth"
        base_d = run.base_d or tree.models / "D_0.pth"
        if Path(base_g).is_file():
            loaded = load_svc(base_g, cfg, purpose="training")
            if loaded.file.variant != "sovits41":
                template = "{path}: a {variant} model cannot be the base of 4.1 training"
                fields = {"path": str(base_g), "variant": loaded.file.variant}
                raise ValueError(Message("svctrain.err.base", template, **fields))
            net_g.load_state_dict(loaded.model.state_dict())
            log.info(
                "starting from base model %s (%d tensors kept their initial values)",
                base_g,
                len(loaded.report.missing) + len(loaded.report.mismatched),
            )
            if Path(base_d).is_file():
                _load_discriminator(net_d, read_discriminator(base_d).state_dict, Path(base_d), run)
            else:
                log.warning("no base discriminator %s; it starts from random weights", base_d)
        else:
            log.warning(
                "no base model (%s): training from scratch. That needs far more data and steps; put a "
                "so-vits-svc 4.1 G_0.pth/D_0.pth pair in %s for a much better start",
                base_g, tree.models,
            )  # fmt: skip
    net_g.to(device).train()
    net_d.to(device).train()
    betas = tuple(cfg.train.betas)
    optim_g = torch.optim.AdamW(net_g.parameters(), res.learning_rate, betas=betas, eps=cfg.train.eps)
    optim_d = torch.optim.AdamW(net_d.parameters(), res.learning_rate, betas=betas, eps=cfg.train.eps)
    for optim, state in ((optim_g, g_opt), (optim_d, d_opt)):
        if state is not None:
            try:
                optim.load_state_dict(state)
            except (ValueError, KeyError, RuntimeError) as exc:
                log.warning("optimizer state not restored (%s); its moments start over", exc)
    return _State(net_g, net_d, optim_g, optim_d, step=step, epoch=epoch)


def _load_discriminator(net_d: torch.nn.Module, state: dict, path: Path, run: SvcRunConfig) -> None:
    """Copy ``path``'s matching tensors into ``net_d`` (4.1's rule); refuse a file of another width
    (4.1's discriminator has one shape: a mismatch is a divisor other than the file's, in either
    direction, and would leave the discriminator random)."""
    report = copy_matching(net_d, state)
    if report.mismatched:
        template = (
            "{path} holds a discriminator of another width than discriminator_width_divisor "
            "{divisor} builds ({first}); set discriminator_width_divisor to the one it was trained "
            "with (1 for so-vits-svc's D_*.pth files), or move the file away to start afresh"
        )
        fields = {
            "path": str(path),
            "divisor": run.discriminator_width_divisor,
            "first": report.mismatched[0],
        }
        raise ValueError(Message("svctrain.err.d_width", template, **fields))
    if report.missing:
        log.warning("%s: %d discriminator tensors kept their initial values", path, len(report.missing))


def _save(state: _State, run: SvcRunConfig, cfg: SvcConfig, res: _Resolved, session: TrainSession) -> Path:
    folder = run.tree.models
    g_path = write_svc(
        folder / f"G_{state.step}.pth", state.net_g, cfg, iteration=state.epoch,
        optimizer_state=state.optim_g.state_dict(), write_config_json=True,
    )  # fmt: skip
    write_discriminator(
        folder / f"D_{state.step}.pth", state.net_d, optimizer_state=state.optim_d.state_dict(),
        learning_rate=res.learning_rate, iteration=state.epoch,
    )  # fmt: skip
    prune(folder, res.keep)
    session.message(Message("train.note.saved", "saved {file}", file=g_path.name))
    return g_path


def _step(
    state: _State, net_g, net_d, batch: SvcBatch, cfg: SvcConfig, res: _Resolved, scaler, device
) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """One discriminator + one generator update; returns the named losses."""
    data = cfg.data
    segment = cfg.train.segment_size // data.hop_length
    mel = spec_to_mel(
        batch.spec, data.filter_length, data.n_mel_channels, data.sampling_rate, data.mel_fmin, data.mel_fmax
    )
    with autocast(device, res.precision):
        out = net_g(
            batch.content,
            batch.f0,
            batch.uv,
            batch.spec,
            batch.speakers,
            batch.lengths,
            batch.lengths,
            batch.volume,
        )
        y_mel = slice_segments(mel, out.ids_slice, segment)
        y_hat_mel = mel_spectrogram(out.audio.squeeze(1).float(), data)
        y = slice_audio(batch.audio, out, data.hop_length)
        real, fake, _, _ = net_d(y, out.audio.detach())
        loss_d, _, _ = discriminator_loss(real, fake)
    state.optim_d.zero_grad(set_to_none=True)
    scaler.scale(loss_d).backward()
    scaler.step(state.optim_d)
    with autocast(device, res.precision):
        _, fake, fmap_r, fmap_g = net_d(y, out.audio)
        losses = generator_losses(
            out, y_mel, y_hat_mel, fake, fmap_r, fmap_g, cfg.train.c_mel, cfg.train.c_kl
        )
    state.optim_g.zero_grad(set_to_none=True)
    scaler.scale(losses["total"]).backward()
    scaler.step(state.optim_g)
    scaler.update()
    named = {"loss_d": float(loss_d.detach()), "loss_g": float(losses["total"].detach())}
    named.update({k: float(v.detach()) for k, v in losses.items() if k != "total"})
    return named


def _stop_everywhere(session: TrainSession, env: DistributedEnv, device: torch.device) -> bool:
    """A stop asked of any worker stops all of them at the same step."""
    if not env.enabled:
        return session.stop_requested
    flag = torch.tensor([1.0 if session.stop_requested else 0.0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def _validation_sample(
    state: _State, dataset: SvcDataset | None, session: TrainSession, cfg: SvcConfig
) -> None:
    if dataset is None or not len(dataset):
        return
    item = dataset.load(dataset.clips[0])
    model = state.net_g
    param = next(model.parameters())
    with torch.no_grad():
        out = model.infer(
            item.content[None].to(param), item.f0[None].to(param.device), item.uv[None].to(param.device),
            sid=item.speaker, vol=None if item.volume is None else item.volume[None].to(param.device),
        )  # fmt: skip
    model.train()
    session.log_audio("val/generated", out.audio[0, 0], state.step, cfg.data.sampling_rate)


@dataclass
class _Loop:
    """What the epoch loop needs besides the training state."""

    run: SvcRunConfig
    cfg: SvcConfig
    res: _Resolved
    env: DistributedEnv
    device: torch.device
    session: TrainSession
    loader: DataLoader
    sampler: DistributedSampler | None  # under DDP: reshuffled per epoch
    val_set: SvcDataset | None  # the first clip gives the validation sample


def _data(
    run: SvcRunConfig, cfg: SvcConfig, res: _Resolved, env: DistributedEnv, device: torch.device
) -> tuple[DataLoader, DistributedSampler | None, SvcDataset | None]:
    """The training loader (seeded; a distributed sampler under DDP) and the validation set, if any."""
    tree = run.tree
    train_set = SvcDataset(read_list(tree.train_list, tree), cfg, seed=res.seed + env.rank)
    if not len(train_set):
        template = "{path}: no usable training clips; run the SVC preprocessing first"
        raise ValueError(Message("svctrain.err.no_clips", template, path=str(tree.train_list)))
    val_set = (
        SvcDataset(read_list(tree.val_list, tree), cfg, augment=False) if tree.val_list.is_file() else None
    )
    sampler = (
        DistributedSampler(train_set, env.world_size, env.rank, shuffle=True, seed=res.seed)
        if env.enabled
        else None
    )
    generator = torch.Generator().manual_seed(res.seed)
    loader = DataLoader(
        train_set, batch_size=res.batch_size, shuffle=sampler is None, sampler=sampler, collate_fn=collate,
        num_workers=run.num_workers, drop_last=False, generator=generator, pin_memory=device.type == "cuda",
    )  # fmt: skip
    return loader, sampler, val_set


def _run_epochs(state: _State, loop: _Loop, total: int) -> int | None:
    """Train until ``total`` steps or the last epoch; the step last saved, or None after a stop."""
    res, env, device, session = loop.res, loop.env, loop.device, loop.session
    net_g, net_d = state.net_g, state.net_d
    if env.enabled:
        ids = [device.index] if device.type == "cuda" else None
        net_g = DistributedDataParallel(net_g, device_ids=ids)
        net_d = DistributedDataParallel(net_d, device_ids=ids)
    scaler = grad_scaler(device, res.precision)
    last_saved = state.step
    finished = state.step >= total
    while not finished and state.epoch <= res.epochs:
        lr = lr_at(state.epoch, loop.cfg, res.learning_rate)
        for optim in (state.optim_g, state.optim_d):
            for group in optim.param_groups:
                group["lr"] = lr
        if loop.sampler is not None:
            loop.sampler.set_epoch(state.epoch)
        for batch in loop.loader:
            losses = _step(state, net_g, net_d, batch.to(device), loop.cfg, res, scaler, device)
            state.step += 1
            if state.step % res.log_every == 0:
                session.log_step(state.step, state.epoch, losses, lr=lr)
            stop = _stop_everywhere(session, env, device)
            if env.rank == 0 and (state.step % res.save_every == 0 or stop):
                _save(state, loop.run, loop.cfg, res, session)
                _validation_sample(state, loop.val_set, session, loop.cfg)
                last_saved = state.step
            if stop:
                template = "stopped at step {step}; G_{step}.pth saved, resume continues from it"
                session.stopped(Message("train.note.stopped_at", template, step=state.step))
                return None
            if state.step >= total:
                finished = True
                break
        else:
            state.epoch += 1
    return last_saved


def _finish(state: _State, loop: _Loop, last_saved: int) -> Path | None:
    """Save the last step (unless just saved) and export the compressed inference file."""
    run, tree = loop.run, loop.run.tree
    if last_saved != state.step:
        _save(state, run, loop.cfg, loop.res, loop.session)
    if not run.export:
        return None
    name = f"{tree.root.name}_{state.step}.pth"
    exported = compress_checkpoint(
        tree.models / f"G_{state.step}.pth", tree.models / RELEASE_DIR / name, loop.cfg, half=run.export_half
    )
    loop.session.message(
        Message("train.note.exported", "exported {file}", file=str(exported.relative_to(tree.root)))
    )
    return exported


def train(run: SvcRunConfig) -> Path | None:
    """Run the training described by ``run`` (module doc); returns the exported file, if any."""
    if run.cpu_threads:
        torch.set_num_threads(run.cpu_threads)
    env = setup_distributed()
    tree = run.tree
    cfg = read_config(tree.config)
    res = _resolve(run, cfg)
    device = train_device(env, run.device)
    seed_everything(res.seed, env.rank)
    exported = None
    with TrainSession(
        tree.models, stage="svc", total_epochs=res.epochs, env=env, tensorboard=run.tensorboard
    ) as session:
        # Inside the session, so that a refusal of the data (no usable clip, an unknown speaker)
        # reaches the status file the SVC tab shows.
        loader, sampler, val_set = _data(run, cfg, res, env, device)
        state = _build(run, cfg, res, device)
        if env.rank == 0:
            report = tree.config.parent / REPORT_FILE
            if report.is_file():
                shutil.copyfile(report, tree.models / REPORT_FILE)  # conversion reads it beside the model
        total = res.max_steps or res.epochs * len(loader)
        session.set_totals(total_epochs=res.epochs, total_steps=total)
        loop = _Loop(run, cfg, res, env, device, session, loader, sampler, val_set)
        last_saved = _run_epochs(state, loop, total)
        if last_saved is None:
            cleanup_distributed()
            return None
        if env.rank == 0:
            exported = _finish(state, loop, last_saved)
        session.done(Message("train.note.finished_at", "finished at step {step}", step=state.step))
    cleanup_distributed()
    return exported


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.train.svc", description="Train a so-vits-svc 4.1 model."
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", type=Path, help="run.yaml (see app.runconfig.SvcRunConfig)")
    source.add_argument(
        "--experiment",
        type=Path,
        help="write EXPERIMENT/logs/44k/run.yaml from the options below, then train",
    )
    parser.add_argument("--max-steps", type=int, help="with --experiment: stop after this many steps")
    parser.add_argument(
        "--precision", choices=["fp32", "fp16", "bf16"], help="with --experiment: CUDA autocast"
    )
    parser.add_argument("--device", default="auto", help="with --experiment: auto, cpu, cuda:N")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.experiment is not None:
            run = SvcRunConfig(
                experiment=args.experiment.resolve(),
                max_steps=args.max_steps,
                precision=args.precision,
                device=args.device,
            )
            if not run.tree.config.is_file():
                template = "{path} does not exist; run the SVC preprocessing first"
                raise config_io.ConfigError(
                    Message("svctrain.err.no_config", template, path=str(run.tree.config))
                )
            save_svc_run(run)
        else:
            run = config_io.load(SvcRunConfig, args.config)
    except config_io.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    train(run)
    return 0
