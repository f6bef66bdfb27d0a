"""v3/v4 SoVITS fine-tuning: LoRA adapters on the flow-matching decoder (upstream ``s2_train_v3_lora.py``).

Started like every SoVITS run (``python -m app.train.sovits --config <experiment>/logs_s2_<v3|v4>/run.yaml``,
:class:`app.runconfig.SoVITSRunConfig`); :func:`app.train.sovits.train` hands v3/v4 runs here, and
the steps every SoVITS run takes (resume, batches, checkpoints) are those of :mod:`app.train.sovits_run`.

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

from app.messages import Message
from app.models.checkpoint import Checkpoint, restore
from app.models.nn.lora import add_lora, lora_layers
from app.models.nn.skip_init import without_init
from app.models.sovits.cfm_model import CfmSoVITS
from app.models.sovits.config import SoVITSConfig
from app.models.upstream.sovits import read_sovits
from app.models.upstream.sovits_cfm import OPTIONAL_CFM_PREFIX
from app.models.upstream.sovits_lora import LORA_TARGETS, write_lora
from app.runconfig import SoVITSRunConfig
from app.settings import DistributedEnv
from app.train import resume
from app.train.buckets import CFM_BOUNDARIES
from app.train.common import TrainSession, autocast, grad_scaler
from app.train.sovits_data import CfmDataset, collate_cfm
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


def lora_hooks(
    model: CfmSoVITS,
    optim: torch.optim.AdamW,
    sched: torch.optim.lr_scheduler.ExponentialLR,
    scaler: torch.amp.GradScaler,
    cfg: SoVITSRunConfig,
    run_dir: Path,
    session: TrainSession,
    env: DistributedEnv,
    device: torch.device,
) -> resume.EpochHooks:
    """The step, save and export of a LoRA run for :func:`app.train.resume.run_epochs`."""
    config = model.config
    # ref_enc and linear_mel get no gradient (see the module docstring).
    net = distributed(model, env, device, find_unused=True)

    def save(where: resume.Position) -> None:
        save_resume(
            where, kind=KIND, model=model, config=config, optimizer=optim, scheduler=sched,
            extra=lambda: {"scaler": scaler.state_dict(), "batches_done": where.batches_done, "lora_rank": cfg.adapter_rank},
            cfg=cfg, run_dir=run_dir, env=env, session=session,
        )  # fmt: skip

    def export(epoch: int, step: int) -> None:
        if env.rank != 0 or not cfg.export_weights:
            return
        name = resume.weights_name(cfg.exp_name, epoch, step, f"_l{cfg.adapter_rank}.pth")
        adapters, replaced = trained_tensors(model)
        target = write_lora(
            Path(cfg.weights_dir) / name, adapters, replaced, lora_export_config(config, cfg, run_dir),
            rank=cfg.adapter_rank, epoch=epoch, step=step,
        )  # fmt: skip
        session.message(Message("train.note.exported", "exported {file}", file=target.name))

    return resume.EpochHooks(
        train_step=lambda batch: train_step(
            batch, net, optim, scaler, device, cfg.precision, cfg.grad_checkpoint
        ),
        save=save,
        export=export,
        end_epoch=sched.step,
        lr=lambda: optim.param_groups[0]["lr"],
    )


def train(cfg: SoVITSRunConfig, run_dir: Path, session: TrainSession, env: DistributedEnv) -> None:
    """The LoRA run (chosen by :func:`app.train.sovits.train` inside a :class:`TrainSession`)."""
    device, found = open_run(cfg, run_dir, env, KIND)
    model, source = build_model(cfg, found[1] if found else None)
    model.to(device).train()
    optim = optimizer(model, cfg)
    sched = torch.optim.lr_scheduler.ExponentialLR(optim, gamma=cfg.lr_decay)
    scaler = grad_scaler(device, cfg.precision)

    def restore_all(path: Path, ckpt: Checkpoint) -> None:
        restore(ckpt, model, optim, sched, source=str(path))
        scaler.load_state_dict(ckpt.extra["scaler"])

    template = "starting from {source} with rank-{rank} LoRA adapters"
    begin_message = Message("train.note.start_lora", template, source=str(source), rank=cfg.adapter_rank)
    start = resume.resume_or_begin(found, run_dir, env, session, restore_all, begin_message, SoVITSTrainError)
    dataset = CfmDataset(cfg.exp_dir, model.config, cfg.version, cfg.min_items_per_epoch)
    log.info("%d clips (%d with repeats); left out: %s", dataset.unique, len(dataset), dataset.left_out)
    loader, sampler = epoch_batches(dataset, cfg, env, device, session, collate_cfm, CFM_BOUNDARIES)
    hooks = lora_hooks(model, optim, sched, scaler, cfg, run_dir, session, env, device)
    train_epochs(session, loader, sampler, hooks, start, cfg, device)
