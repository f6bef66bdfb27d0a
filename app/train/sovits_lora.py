"""v3/v4 SoVITS fine-tuning: LoRA adapters on the flow-matching decoder (upstream ``s2_train_v3_lora.py``).

Started like every SoVITS run (``python -m app.train.sovits --config <experiment>/logs_s2_<v3|v4>/run.yaml``,
:class:`app.runconfig.SoVITSRunConfig`); :func:`app.train.sovits.train` hands v3/v4 runs here.

- Starting point: the version's base model (``s2Gv3.pth`` / ``gsv-v4-pretrained/s2Gv4.pth``) or a
  whole v3/v4 export; required (LoRA adapts a trained model: random weights would not).
- Adapters: rank r = alpha = ``lora_rank`` (scale 1; upstream's ``LoraConfig``) on ``to_q``,
  ``to_k``, ``to_v`` and ``to_out.0`` of every DiT block (:mod:`app.models.nn.lora`); the rest of
  the CFM is frozen, as peft freezes it.
- Frozen by ``freeze_quantizer`` (eval mode, no gradient): ``ssl_proj``, the quantizer, ``enc_p``.
- Trainable: ``bridge``, ``wns1`` and the adapters; ``ref_enc`` and ``linear_mel`` are trainable
  (and exported) as upstream, but no loss reaches them (``enc_p`` runs without gradient and
  ``wns1`` detaches the timbre vector), so they keep the base's values.
- Optimiser: AdamW (``betas``, ``eps``, weight decay 0.01 = torch's default, which upstream keeps)
  at ``learning_rate`` for every trainable tensor; ``lr_decay`` per epoch; no gradient clipping
  (upstream only measures the norm).
- Step: the flow-matching loss of :meth:`CfmSoVITS.forward` (logged as ``cfm``); fp16 (GradScaler)
  or bf16 autocast on CUDA; ``grad_checkpoint`` recomputes the DiT blocks in the backward pass.
- Data: :class:`app.train.sovits_data.CfmDataset` in upstream's v3/v4 buckets (clips up to 20 s).

Every ``save_every_epoch`` epochs and after the last it writes a resume checkpoint (the whole model
with its adapters, optimiser, scheduler, scaler; kind ``sovits_lora``) and exports
``<weights_dir>/<exp>_e<epoch>_s<step>_l<rank>.pth``, upstream's LoRA file (header 03/04,
:func:`app.models.upstream.sovits_lora.write_lora`), which inference merges onto the same base.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from app.models.checkpoint import Checkpoint, CheckpointError, restore, save_checkpoint
from app.models.nn.lora import add_lora, lora_layers
from app.models.nn.skip_init import without_init
from app.models.sovits.cfm_model import CfmSoVITS
from app.models.sovits.config import SoVITSConfig
from app.models.upstream.sovits import OPTIONAL_CFM_PREFIX, read_sovits
from app.models.upstream.sovits_lora import LORA_TARGETS, write_lora
from app.runconfig import SoVITSRunConfig
from app.settings import DistributedEnv
from app.train import resume
from app.train.buckets import CFM_BOUNDARIES
from app.train.common import TrainSession, autocast, grad_scaler, seed_everything, train_device
from app.train.sovits import (
    WEIGHT_DECAY,
    SoVITSTrainError,
    export_config,
    planned_loader,
    resumed_position,
)
from app.train.sovits_data import CfmDataset, collate_cfm

log = logging.getLogger(__name__)

KIND = "sovits_lora"
LOSS_NAME = "cfm"


def build_model(cfg: SoVITSRunConfig, resumed: Checkpoint | None) -> tuple[CfmSoVITS, str]:
    """The model to train with its adapters added and everything else frozen, and where its
    weights came from (a resumed run's weights are restored by the caller)."""
    rank = cfg.adapter_rank
    if resumed is not None:
        config = SoVITSConfig(**resumed.model_config)
        saved_rank = resumed.extra.get("lora_rank")
        if config.version != cfg.version:
            raise SoVITSTrainError(
                f"the checkpoint being resumed is a {config.version} model, this run trains {cfg.version}"
            )
        if saved_rank != rank:
            raise SoVITSTrainError(
                f"the checkpoint being resumed has LoRA rank {saved_rank}, this run asks for {rank}; "
                "keep the rank, or choose another experiment name (or delete its resume_*.pt) to start over"
            )
        model, source = without_init(lambda: CfmSoVITS(config)), "checkpoint"
    else:
        path = cfg.pretrained_g
        if path is None or not Path(path).is_file():
            raise SoVITSTrainError(
                f"no {cfg.version} base model at {path}: LoRA training adapts upstream's pretrained "
                f"SoVITS; download it with: python tools/download_models.py gpt-sovits-{cfg.version}"
            )
        record = read_sovits(path, expect_version=cfg.version)
        # freeze_quantizer is a choice of this trainer, as upstream's s2.json sets it.
        config = dataclasses.replace(record.config, freeze_quantizer=True)
        model = without_init(lambda: CfmSoVITS(config))  # every tensor comes from the file ...
        if not any(k.startswith(OPTIONAL_CFM_PREFIX) for k in record.state_dict):
            model.linear_mel.reset_parameters()  # ... but linear_mel, which starts fresh as upstream's
        _load_base(model, record.state_dict, str(path))
        source = str(path)
    return adapt(model, rank), source


def adapt(model: CfmSoVITS, rank: int) -> CfmSoVITS:
    """Freeze what upstream freezes and add rank-``rank`` adapters (alpha = rank) to the DiT. Returns the model."""
    for module in model.frozen_modules:
        module.requires_grad_(False)
    add_lora(model.cfm, LORA_TARGETS, rank, alpha=rank)
    return model


def _load_base(model: CfmSoVITS, state: dict[str, torch.Tensor], source: str) -> None:
    """Exactly the model's tensors (``linear_mel`` may be absent: it keeps its fresh init, as upstream)."""
    expected = model.state_dict()
    missing = sorted(k for k in set(expected) - set(state) if not k.startswith(OPTIONAL_CFM_PREFIX))
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k} {tuple(v.shape)} != {tuple(expected[k].shape)}" for k, v in state.items() if k in expected and v.shape != expected[k].shape]  # fmt: skip
    if missing or unexpected or wrong:
        raise SoVITSTrainError(
            f"{source}: weights do not fit the model to train (missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}, shapes {wrong[:3]})"
        )
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)


def trained_tensors(
    model: CfmSoVITS,
) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], dict[str, torch.Tensor]]:
    """What a LoRA export holds, as :func:`~app.models.upstream.sovits_lora.write_lora` takes it.

    Returns:
        adapters: layer (merged-model name, ``cfm.estimator....attn.to_q``) -> (A [r, in], B [out, r]);
        replaced: every state-dict entry that is not a frozen parameter and not an adapter
        matrix (trainable parameters and every buffer, as upstream's exporter keeps them).
    """
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    layers = {f"cfm.{name}": layer for name, layer in lora_layers(model.cfm).items()}
    adapters = {name: (layer.lora_A.weight, layer.lora_B.weight) for name, layer in layers.items()}
    matrices = {f"{name}.lora_{x}.weight" for name in layers for x in "AB"}
    replaced = {k: v for k, v in model.state_dict().items() if k not in frozen and k not in matrices}
    return adapters, replaced


def merged_state(model: CfmSoVITS) -> dict[str, torch.Tensor]:
    """The plain v3/v4 state dict the trained model equals (adapters folded: ``W + B @ A``)."""
    layers = {f"cfm.{name}": layer for name, layer in lora_layers(model.cfm).items()}
    state: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        layer, _, rest = key.rpartition(".base_layer.")
        if layer in layers and rest:
            state[f"{layer}.{rest}"] = layers[layer].merged_weight() if rest == "weight" else value
        elif ".lora_A." not in key and ".lora_B." not in key:
            state[key] = value
    return state


def optimizer(model: CfmSoVITS, cfg: SoVITSRunConfig) -> torch.optim.AdamW:
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(
        params, cfg.learning_rate, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=WEIGHT_DECAY
    )


def lora_export_config(config: SoVITSConfig, cfg: SoVITSRunConfig, run_dir: Path) -> SoVITSConfig:
    """The config tree of the exports: the base's with this run's settings (lora_rank is set by
    :func:`write_lora`)."""
    exported = export_config(config, cfg, run_dir)
    extra = dict(exported.extra)
    extra["train"] = {**extra["train"], "grad_ckpt": cfg.grad_checkpoint}
    return dataclasses.replace(exported, extra=extra)


def train_step(
    batch: dict[str, torch.Tensor],
    net: torch.nn.Module,
    optim: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    device: torch.device,
    precision: str,
    grad_checkpoint: bool,
) -> dict[str, float]:
    """One optimiser step on the flow-matching loss; returns ``{"cfm": loss}``."""
    b = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    with autocast(device, precision):
        loss = net(
            b["ssl"], b["spec"], b["spec_lengths"], b["mel"], b["mel_lengths"], b["text"], b["text_lengths"],
            grad_checkpoint,
        )  # fmt: skip
    optim.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optim)
    scaler.update()
    return {LOSS_NAME: float(loss.detach())}


def train(cfg: SoVITSRunConfig, run_dir: Path, session: TrainSession, env: DistributedEnv) -> None:
    """The LoRA run (called by :func:`app.train.sovits.train` inside a :class:`TrainSession`)."""
    device = train_device(env, cfg.device)
    seed_everything(cfg.seed, env.rank)
    found = resume.load_latest(run_dir, KIND)
    model, source = build_model(cfg, found[1] if found else None)
    config = model.config
    model.to(device).train()
    optim = optimizer(model, cfg)
    sched = torch.optim.lr_scheduler.ExponentialLR(optim, gamma=cfg.lr_decay)
    scaler = grad_scaler(device, cfg.precision)
    start = resume.Position(0, 0, 0)
    if found is not None:
        try:
            restore(found[1], model, optim, sched, source=str(found[0]))
            scaler.load_state_dict(found[1].extra["scaler"])
        except (KeyError, ValueError, RuntimeError, CheckpointError) as exc:
            raise SoVITSTrainError(
                f"{found[0]}: cannot resume from it ({exc}); delete it to start over"
            ) from exc
        start = resumed_position(found, run_dir, env)
        session.message(
            f"resumed from {found[0].name} at step {start.step} "
            f"(epoch {start.epochs_done + 1}, batch {start.batches_done})"
        )
    else:
        session.message(f"starting from {source} with rank-{cfg.adapter_rank} LoRA adapters")

    dataset = CfmDataset(cfg.exp_dir, config, cfg.version, cfg.min_items_per_epoch)
    log.info("%d clips (%d with repeats); left out: %s", dataset.unique, len(dataset), dataset.left_out)
    loader, sampler = planned_loader(dataset, cfg, env, device, collate_cfm, CFM_BOUNDARIES)
    per_epoch = len(sampler.batches())
    session.set_totals(total_epochs=cfg.epochs, total_steps=per_epoch * cfg.epochs)
    if env.enabled:
        ids = [device.index] if device.type == "cuda" and device.index is not None else None
        # ref_enc and linear_mel get no gradient (see the module docstring).
        net: torch.nn.Module = DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)
    else:
        net = model

    def save(where: resume.Position) -> None:
        if env.rank != 0:
            return
        path = resume.resume_path(run_dir, where.step)
        save_checkpoint(
            path, kind=KIND, model=model, model_config=config, step=where.step, epoch=where.epochs_done,
            optimizer=optim, scheduler=sched,
            extra={"scaler": scaler.state_dict(), "batches_done": where.batches_done, "lora_rank": cfg.adapter_rank},
        )  # fmt: skip
        resume.prune(run_dir, cfg.keep_checkpoints)
        session.message(f"saved {path.name}")

    def export(epoch: int, step: int) -> None:
        if env.rank != 0 or not cfg.export_weights:
            return
        name = resume.weights_name(cfg.exp_name, epoch, step, f"_l{cfg.adapter_rank}.pth")
        adapters, replaced = trained_tensors(model)
        target = write_lora(
            Path(cfg.weights_dir) / name, adapters, replaced, lora_export_config(config, cfg, run_dir),
            rank=cfg.adapter_rank, epoch=epoch, step=step,
        )  # fmt: skip
        session.message(f"exported {target.name}")

    hooks = resume.EpochHooks(
        train_step=lambda batch: train_step(
            batch, net, optim, scaler, device, cfg.precision, cfg.grad_checkpoint
        ),
        save=save,
        export=export,
        end_epoch=sched.step,
        lr=lambda: optim.param_groups[0]["lr"],
    )
    resume.run_epochs(
        session, loader, sampler, hooks, start=start, epochs=cfg.epochs, save_every=cfg.save_every_epoch,
        log_interval=cfg.log_interval, device=device,
    )  # fmt: skip
