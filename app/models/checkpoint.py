"""Our own training checkpoints: self-describing, strict, safe to open, written atomically.

A checkpoint is one ``torch.save`` dict of plain values and tensors::

    {"format": "sovits-studio-checkpoint/1", "kind": "gpt", "model_config": {...}, "model": state_dict,
     "optimizer": state_dict | None, "scheduler": state_dict | None, "step": int, "epoch": int,
     "extra": {...}}

- ``model_config`` is the model's config dataclass as a dict, so the model is rebuilt with
  ``Config(**ckpt.model_config)`` before loading the weights strictly (whisper's ``load_model``).
- Files are opened with ``weights_only=True``: a file can only produce tensors and containers.
- Writes go to a temporary file in the same folder, are flushed to disk, then renamed over the
  target, so an interrupted save leaves the previous checkpoint intact.

Model families (GPT, SoVITS, so-vits-svc trainers) share this module; ``kind`` tells them apart.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from app.fileio import atomic_write

logger = logging.getLogger(__name__)

FORMAT = "sovits-studio-checkpoint/1"
_REQUIRED = ("format", "kind", "model_config", "model", "step")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Checkpoint:
    """Contents of a checkpoint file."""

    # Model family, e.g. "gpt", "sovits", "svc".
    kind: str
    # The model config dataclass as a dict: rebuild the model with Config(**model_config).
    model_config: dict[str, Any]
    # Model state dict.
    model: dict[str, torch.Tensor]
    # Optimizer state dict, None when not saved.
    optimizer: dict[str, Any] | None
    # LR scheduler state dict, None when not saved.
    scheduler: dict[str, Any] | None
    # Optimizer steps taken.
    step: int
    # Completed epochs.
    epoch: int
    # Anything else the trainer keeps (plain values and tensors only), e.g. RNG states, run config.
    extra: dict[str, Any]


def save_checkpoint(
    path: str | os.PathLike,
    *,
    kind: str,
    model: nn.Module,
    model_config: Any,
    step: int,
    epoch: int = 0,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Atomically write a checkpoint; ``model_config`` is a config dataclass (or its dict)."""
    path = Path(path)
    config = dataclasses.asdict(model_config) if dataclasses.is_dataclass(model_config) else model_config
    if not isinstance(config, dict):
        raise TypeError(f"model_config must be a dataclass or a dict, got {type(model_config).__name__}")
    payload = {
        "format": FORMAT,
        "kind": kind,
        "model_config": config,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "step": int(step),
        "epoch": int(epoch),
        "extra": dict(extra or {}),
    }
    with atomic_write(path, "wb") as fh:
        torch.save(payload, fh)
        fh.flush()
        os.fsync(fh.fileno())  # on disk before the rename: a resume checkpoint survives a power cut
    logger.info("saved %s checkpoint %s (step %d, epoch %d)", kind, path, step, epoch)
    return path


def read_checkpoint(path: str | os.PathLike, kind: str | None = None) -> Checkpoint:
    """Open a checkpoint (tensors on CPU); ``kind`` given -> a checkpoint of another kind is refused."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.stat().st_size == 0 or not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: truncated or not a torch checkpoint; resume from an earlier one")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: refused: the file asks for objects other than tensors and containers ({exc})"
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{path}: cannot be read (truncated or corrupt?): {exc}") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        found = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(
            f"{path}: not a SoVITS Studio checkpoint (format {found!r}, expected {FORMAT!r}); "
            "upstream GPT/SoVITS files are read with app.models.upstream"
        )
    missing = [k for k in _REQUIRED if k not in obj]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {missing}")
    if kind is not None and obj["kind"] != kind:
        raise CheckpointError(f"{path}: a {obj['kind']!r} checkpoint, expected a {kind!r} one")
    return Checkpoint(
        kind=obj["kind"],
        model_config=obj["model_config"],
        model=obj["model"],
        optimizer=obj.get("optimizer"),
        scheduler=obj.get("scheduler"),
        step=int(obj["step"]),
        epoch=int(obj.get("epoch", 0)),
        extra=obj.get("extra") or {},
    )


def restore(
    ckpt: Checkpoint,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    source: str = "checkpoint",
) -> None:
    """Load model (strict), optimizer and scheduler states from ``ckpt``; ``source`` names it in errors."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(ckpt.model))
    unexpected = sorted(set(ckpt.model) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{source}: model weights do not match: missing {missing[:5]}, unexpected {unexpected[:5]}; "
            "was it saved from a model with another config?"
        )
    for name, tensor in ckpt.model.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(
                f"{source}: {name} has shape {tuple(tensor.shape)}, the model expects {tuple(expected[name].shape)}"
            )
    model.load_state_dict(ckpt.model, strict=True)
    if optimizer is not None:
        if ckpt.optimizer is None:
            raise CheckpointError(f"{source}: holds no optimizer state; cannot resume the optimizer")
        optimizer.load_state_dict(ckpt.optimizer)
    if scheduler is not None:
        if ckpt.scheduler is None:
            raise CheckpointError(f"{source}: holds no scheduler state; cannot resume the scheduler")
        scheduler.load_state_dict(ckpt.scheduler)


def load_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    kind: str | None = None,
) -> Checkpoint:
    """:func:`read_checkpoint` then :func:`restore` into the given objects; returns the checkpoint."""
    ckpt = read_checkpoint(path, kind)
    restore(ckpt, model, optimizer, scheduler, source=str(path))
    return ckpt
