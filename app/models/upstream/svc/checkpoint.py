"""so-vits-svc files: ``G_*.pth`` generators (+ the ``config.json`` beside them), read and written.

Formats (so-vits-svc 4.1 ``utils.save_checkpoint`` / ``compress_model.py``; innnky 32k the same):

- training checkpoint ``logs/44k/G_<step>.pth``: a ``torch.save`` zip of
  ``{"model": state dict (float32, with enc_q.* and f0_decoder.*), "iteration": epoch,
  "optimizer": AdamW state dict, "learning_rate": initial lr}``;
- compressed inference file (``compress_model.py``): the same dict without the ``enc_q.*``
  tensors (the posterior encoder is training-only), optionally float16, ``iteration`` 0 and a
  fresh AdamW state;
- ``config.json``: see :class:`app.models.svc.config.SvcConfig`.

Reading uses ``torch.load(weights_only=True)`` (these files hold only tensors and plain values).
Upstream's loader copies every model key found in the file with an equal shape and silently
keeps its own initial values for the others; we copy the same way but return what was missing,
unexpected or mismatched in a :class:`LoadReport` and refuse, naming the keys, whatever the
purpose does not allow (for inference only the training-only ``enc_q.*`` may be absent).

The layout (4.1 vs innnky 32k) is told from the tensor names, never from the file name or size.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from app.config_io import save as save_json
from app.fileio import atomic_write
from app.messages import Message, said
from app.models.nn.norm import fold_weight_norm
from app.models.svc.config import SvcConfig, SvcConfigError, Variant
from app.models.svc.synthesizer import SvcSynthesizer
from app.models.upstream.headers import HEADER_VERSIONS
from app.models.upstream.safe_pickle import CheckpointError, read_file

logger = logging.getLogger(__name__)

Purpose = Literal["inference", "training"]
# Key prefixes a purpose may find absent (kept at their initial values):
# inference needs no posterior encoder; fine-tuning from a base G_0 may lack or resize speakers.
ALLOWED_MISSING: dict[str, tuple[str, ...]] = {
    "inference": ("enc_q.",),
    "training": ("enc_q.", "emb_g.", "f0_decoder.", "emb_vol."),
}
TRAINING_KEYS = ("model", "iteration", "optimizer", "learning_rate")


@dataclass(frozen=True)
class LoadReport:
    """How a file's tensors matched the model they were copied into."""

    missing: tuple[str, ...]  # model keys absent from the file (kept their initial values)
    unexpected: tuple[str, ...]  # file keys the model does not have (ignored)
    mismatched: tuple[str, ...]  # "key: file (..) vs model (..)" (kept their initial values)

    @property
    def clean(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)


@dataclass(frozen=True)
class SvcFile:
    """A ``G_*.pth`` as read, before it is put into a model."""

    path: str  # where it came from
    variant: Variant  # "sovits41" or "legacy32k", from the tensor names
    state_dict: dict[str, torch.Tensor]  # as stored (float32, or float16 when compressed with -hf)
    iteration: int  # upstream stores the epoch here
    learning_rate: float | None
    optimizer: dict[str, Any] | None  # AdamW state dict, None if the file has none
    compressed: bool  # no enc_q.* tensors (an inference-only file)


@dataclass(frozen=True)
class SvcCheckpoint:
    """A loaded generator: the model (eval mode) plus what it was built from."""

    model: SvcSynthesizer
    config: SvcConfig
    file: SvcFile
    report: LoadReport


def detect_variant(state: Mapping[str, torch.Tensor], source: str) -> Variant:
    """Tell the weight layout from tensor names; raise naming the file if it is no SVC generator."""
    if "enc_p_.pre.weight" in state and "enc_p_.f0_emb.weight" in state:
        return "legacy32k"
    if "pre.weight" in state and "enc_p.f0_emb.weight" in state:
        return "sovits41"
    keys = list(state)
    if any(k.startswith(("discriminators.", "module.discriminators.")) for k in keys):
        template = "{source}: this is a discriminator checkpoint (D_*.pth); choose the G_*.pth beside it"
        raise CheckpointError(Message("svcfile.err.discriminator", template, source=source))
    if any(k.startswith(("enc_p.text_embedding", "ssl_proj.", "quantizer.")) for k in keys):
        template = (
            "{source}: this is a GPT-SoVITS SoVITS model, not a so-vits-svc generator; load it as a TTS voice"
        )
        raise CheckpointError(Message("svcfile.err.sovits", template, source=source))
    if any(k.startswith(("model.ar_", "model.h.")) for k in keys):
        template = "{source}: this is a GPT-SoVITS GPT (s1) model, not a so-vits-svc generator"
        raise CheckpointError(Message("svcfile.err.gpt", template, source=source))
    if any(k.startswith("enc_p.emb_phone") for k in keys):
        template = "{source}: this is an RVC model, which is not supported as so-vits-svc"
        raise CheckpointError(Message("svcfile.err.rvc", template, source=source))
    template = (
        "{source}: not a so-vits-svc generator: expected tensors 'pre.weight' + 'enc_p.f0_emb.weight' "
        "(4.x) or 'enc_p_.pre.weight' (32k); found e.g. {keys}"
    )
    raise CheckpointError(Message("svcfile.err.not_generator", template, source=source, keys=str(keys[:4])))


def read_svc(path: str | os.PathLike) -> SvcFile:
    """Read a ``G_*.pth`` (training or compressed) without building a model."""
    source = str(path)
    data = read_file(path)
    if data[:2] in HEADER_VERSIONS:  # GPT-SoVITS files start with their version tag
        template = (
            "{source}: starts with the GPT-SoVITS version header {head!r}: this is a GPT-SoVITS SoVITS model, "
            "not a so-vits-svc G_*.pth; load it as a TTS voice"
        )
        raise CheckpointError(Message("svcfile.err.sovits_header", template, source=source, head=data[:2]))
    if data[:2] != b"PK" and data[:1] != b"\x80":  # zip archive, or a legacy pickle
        template = (
            "{source}: not a PyTorch checkpoint (a G_*.pth is a zip archive starting with 'PK'; this file starts "
            "with {head!r})"
        )
        raise CheckpointError(Message("svcfile.err.not_torch", template, source=source, head=data[:8]))
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:
        if "HParams" in str(exc):  # GPT-SoVITS stage-2 files pickle their config as utils.HParams
            template = (
                "{source}: this is a GPT-SoVITS SoVITS model (it embeds a utils.HParams config), not a so-vits-svc "
                "G_*.pth; load it as a TTS voice"
            )
            raise CheckpointError(Message("svcfile.err.hparams", template, source=source)) from None
        template = "{source}: cannot be read as a so-vits-svc G_*.pth ({kind}: {problem})"
        problem = str(exc).splitlines()[0][:160]
        message = Message(
            "svcfile.err.unreadable", template, source=source, kind=type(exc).__name__, problem=problem
        )
        raise CheckpointError(message) from None
    if not isinstance(obj, Mapping):
        template = "{source}: expected a dict with a 'model' state dict, found {kind}"
        raise CheckpointError(
            Message("svcfile.err.not_dict", template, source=source, kind=type(obj).__name__)
        )
    if "model" in obj and isinstance(obj["model"], Mapping):
        raw = obj["model"]
    elif "weight" in obj and isinstance(obj["weight"], Mapping):
        raw = obj["weight"]  # let detect_variant name the foreign format
    elif "state_dict" in obj:
        template = "{source}: this is a GPT-SoVITS GPT (s1) Lightning checkpoint, not so-vits-svc"
        raise CheckpointError(Message("svcfile.err.gpt_lightning", template, source=source))
    elif all(isinstance(v, torch.Tensor) for v in obj.values()):
        raw = obj  # a bare state dict (some community exports)
    else:
        template = "{source}: expected so-vits-svc keys {expected}, found {found}"
        fields = {
            "source": source,
            "expected": str(list(TRAINING_KEYS)),
            "found": str(sorted(map(str, obj))[:6]),
        }
        raise CheckpointError(Message("svcfile.err.keys", template, **fields))
    state = {str(k): v for k, v in raw.items() if isinstance(v, torch.Tensor)}
    if not state:
        template = "{source}: the 'model' entry holds no tensors"
        raise CheckpointError(Message("svcfile.err.no_tensors", template, source=source))
    variant = detect_variant(state, source)
    return SvcFile(
        path=source,
        variant=variant,
        state_dict=state,
        iteration=int(obj.get("iteration", 0) or 0) if "model" in obj else 0,
        learning_rate=float(obj["learning_rate"]) if obj.get("learning_rate") is not None else None,
        optimizer=obj.get("optimizer") if isinstance(obj.get("optimizer"), dict) else None,
        compressed=not any(k.startswith("enc_q.") for k in state),
    )


def read_config(path: str | os.PathLike) -> SvcConfig:
    """Read ``config.json``; errors name the file."""
    import json

    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        template = (
            "{path}: config file not found; so-vits-svc needs the config.json the model was trained with"
        )
        raise SvcConfigError(Message("svcfile.err.no_config", template, path=str(path))) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        template = "{path}: not a readable JSON config ({problem})"
        raise SvcConfigError(
            Message("svcfile.err.config_json", template, path=str(path), problem=str(exc))
        ) from None
    return SvcConfig.from_json(data, str(path))


def write_config(config: SvcConfig, path: str | os.PathLike) -> Path:
    """Write ``config.json`` atomically (2-space indent like upstream)."""
    return save_json(config.to_json(), path)


def copy_matching(model: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> LoadReport:
    """Copy every tensor of ``state`` whose name and shape match into ``model`` (upstream's rule)."""
    own = model.state_dict()
    missing, mismatched, merged = [], [], {}
    for key, value in own.items():
        if key not in state:
            missing.append(key)
            merged[key] = value
        elif tuple(state[key].shape) != tuple(value.shape):
            mismatched.append(f"{key}: file {tuple(state[key].shape)} vs model {tuple(value.shape)}")
            merged[key] = value
        else:
            merged[key] = state[key]
    unexpected = tuple(k for k in state if k not in own)
    model.load_state_dict(merged, strict=True)  # every key is present by construction
    return LoadReport(tuple(missing), unexpected, tuple(mismatched))


def load_svc(
    path: str | os.PathLike,
    config: SvcConfig | str | os.PathLike | None = None,
    *,
    purpose: Purpose = "inference",
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> SvcCheckpoint:
    """Load ``G_*.pth`` (+ ``config.json``, by default the one in the same folder) into a model.

    Args:
        path: generator file.
        config: an ``SvcConfig``, a path to ``config.json``, or None for ``<folder>/config.json``.
        purpose: ``"inference"`` (only ``enc_q.*`` may be missing) or ``"training"`` (speakers,
            F0 decoder and volume layers may also be missing/resized: kept at their initial values).
        device, dtype: where the model lives; float16 files are upcast exactly to float32 by default.

    Raises:
        CheckpointError: unreadable, foreign, or not matching the config (names the keys).
        SvcConfigError: config missing or invalid.
    """
    file = read_svc(path)
    if not isinstance(config, SvcConfig):
        config = read_config(config if config is not None else Path(path).parent / "config.json")
    try:
        net_cfg = config.synthesizer(file.variant)
    except SvcConfigError as exc:
        raise CheckpointError(
            Message("svcfile.err.config", "{path}: {problem}", path=str(path), problem=said(exc))
        ) from None
    model = SvcSynthesizer(net_cfg)
    report = copy_matching(model, file.state_dict)
    allowed = ALLOWED_MISSING[purpose]
    bad_missing = [k for k in report.missing if not k.startswith(allowed)]
    bad_shapes = [k for k in report.mismatched if not k.startswith(allowed)]
    if bad_missing or bad_shapes:
        parts = (
            f"missing {bad_missing[:6]}{' ...' if len(bad_missing) > 6 else ''}" if bad_missing else "",
            f"different shapes {bad_shapes[:4]}" if bad_shapes else "",
        )
        template = (
            "{path}: does not match its config ({variant} layout): {problems}. Check that config.json is the one "
            "this model was trained with."
        )
        fields = {"path": str(path), "variant": file.variant, "problems": "; ".join(p for p in parts if p)}
        raise CheckpointError(Message("svcfile.err.mismatch", template, **fields))
    if report.unexpected:
        logger.warning(
            "%s: %d tensors not used by the model built from config.json (e.g. %s); "
            "the config may be switching off a layer the file has",
            path,
            len(report.unexpected),
            report.unexpected[:3],
        )
    if report.missing:
        logger.info(
            "%s: %d tensors not in the file kept their initial values (%s ...)",
            path,
            len(report.missing),
            report.missing[0],
        )
    model = model.to(device=device, dtype=dtype).eval()
    if purpose == "inference":
        fold_weight_norm(model)  # compute g * v / ||v|| once; train() drops it again
    return SvcCheckpoint(model=model, config=config, file=file, report=report)


def _fresh_optimizer_state(model: torch.nn.Module, config: SvcConfig) -> dict[str, Any]:
    """An AdamW state dict with no moments, as compress_model.py writes (upstream expects the key)."""
    optimizer = torch.optim.AdamW(
        model.parameters(), config.train.learning_rate, betas=tuple(config.train.betas), eps=config.train.eps
    )
    return optimizer.state_dict()


def write_svc(
    path: str | os.PathLike,
    model: SvcSynthesizer,
    config: SvcConfig,
    *,
    iteration: int = 0,
    optimizer_state: dict[str, Any] | None = None,
    compress: bool = False,
    half: bool = False,
    write_config_json: bool = True,
) -> Path:
    """Write a ``G_*.pth`` so-vits-svc loads (and ``config.json`` beside it).

    Args:
        iteration: the epoch, stored as upstream does.
        optimizer_state: AdamW state to resume from; None writes a fresh one.
        compress: drop ``enc_q.*`` (inference-only file, ~1/3 smaller), iteration 0.
        half: store float16 tensors (with ``compress``, like ``compress_model.py -hf``).
    """
    path = Path(path)
    state = {}
    for key, value in model.state_dict().items():
        if compress and key.startswith("enc_q."):
            continue
        value = value.detach().cpu()
        state[key] = (
            value.half()
            if half and value.is_floating_point()
            else value.float()
            if value.is_floating_point()
            else value
        )
    payload = {
        "model": state,
        "iteration": 0 if compress else int(iteration),
        "optimizer": optimizer_state
        if optimizer_state is not None
        else _fresh_optimizer_state(model, config),
        "learning_rate": float(config.train.learning_rate),
    }
    _atomic_torch_save(payload, path)
    if write_config_json:
        write_config(config, path.parent / "config.json")
    return path


@dataclass(frozen=True)
class DiscriminatorFile:
    """A ``D_*.pth`` as read: 4.1's four keys around the discriminator's state dict."""

    path: str
    state_dict: dict[str, torch.Tensor]
    iteration: int  # the epoch, as in G files
    optimizer: dict[str, Any] | None  # AdamW state, None when the file has none


def _atomic_torch_save(payload: dict[str, Any], path: Path) -> Path:
    with atomic_write(path, "wb") as fh:
        torch.save(payload, fh)
    return path


def write_discriminator(
    path: str | os.PathLike,
    model: torch.nn.Module,
    *,
    optimizer_state: dict[str, Any],
    learning_rate: float,
    iteration: int,
) -> Path:
    """Write ``D_<step>.pth`` as 4.1's ``save_checkpoint`` does (float32 state, AdamW state, epoch)."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {
        "model": state,
        "iteration": int(iteration),
        "optimizer": optimizer_state,
        "learning_rate": float(learning_rate),
    }
    return _atomic_torch_save(payload, Path(path))


def read_discriminator(path: str | os.PathLike) -> DiscriminatorFile:
    """Read a ``D_*.pth`` (4.1's or ours); errors name the file."""
    source = str(path)
    data = read_file(path)
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:
        template = "{source}: cannot be read as a so-vits-svc D_*.pth ({kind}: {problem})"
        problem = str(exc).splitlines()[0][:160]
        message = Message(
            "svcfile.err.d_unreadable", template, source=source, kind=type(exc).__name__, problem=problem
        )
        raise CheckpointError(message) from None
    model = obj.get("model") if isinstance(obj, Mapping) else None
    if not isinstance(model, Mapping) or not any(str(k).startswith("discriminators.") for k in model):
        template = "{source}: not a so-vits-svc discriminator (expected a 'model' dict with discriminators.* tensors)"
        raise CheckpointError(Message("svcfile.err.not_discriminator", template, source=source))
    return DiscriminatorFile(
        path=source,
        state_dict={str(k): v for k, v in model.items() if isinstance(v, torch.Tensor)},
        iteration=int(obj.get("iteration", 0) or 0),
        optimizer=obj.get("optimizer") if isinstance(obj.get("optimizer"), dict) else None,
    )


def compress_checkpoint(
    source: str | os.PathLike, target: str | os.PathLike, config: SvcConfig, *, half: bool = False
) -> Path:
    """An inference-only copy of a training ``G_*.pth`` (4.1 ``compress_model.py``; ``half`` = its ``-hf``).

    ``config.json`` is written beside the target, so the pair loads anywhere.
    """
    loaded = load_svc(source, config, purpose="training")
    return write_svc(target, loaded.model, config, compress=True, half=half, write_config_json=True)
