"""Content features for singing voice conversion: HuBERT-family encoders in transformers format.

All take 16 kHz mono audio and return ``(B, C, T50)`` features, one frame per 320 samples
(20 ms), computed by ``transformers.HubertModel`` from a local folder (never a hub name):

| name | C | what | as so-vits-svc 4.1 |
|---|---|---|---|
| ``vec768l12`` (default) | 768 | ContentVec, output of transformer layer 12 | ``vec768l12`` |
| ``vec256l9`` | 256 | ContentVec, layer 9 through ``final_proj`` (768 -> 256) | ``vec256l9`` (4.0 models) |
| ``hubertsoft`` | 256 | HuBERT-Soft: last layer through its 768 -> 256 projection, audio padded 40 samples each side | ``hubertsoft``, innnky 32k |

``hidden_states[N]`` of transformers' HuBERT equals fairseq's ``extract_features(output_layer=N)``.

Folder layout we read (what RVC's current release ships as ``assets/hubert_base/``): a transformers
HuBERT folder, ``config.json`` + ``model.safetensors`` (or ``pytorch_model.bin``). Encoders that
project (``vec256l9``, ``hubertsoft``) also need the projection in the same weights file as
``final_proj.weight`` ``(256, 768)`` and ``final_proj.bias`` ``(256,)`` (its width is the config's
``classifier_proj_size``). For HuBERT-Soft that projection is bshall's ``proj`` layer:
``python -m app.models.upstream.hubert_soft`` converts ``hubert-soft-0d54a1f4.pt`` into this layout.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from app.messages import Message

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000  # every content encoder here reads 16 kHz audio
HOP = 320  # samples per content frame (50 frames per second)


@dataclass(frozen=True)
class EncoderSpec:
    """How one named content encoder reads a HuBERT model."""

    name: str  # so-vits-svc's speech_encoder name
    layer: int | None  # hidden_states index; None = last layer
    project: bool  # apply final_proj
    pad: int  # zero samples added on each side of the audio first
    description: str  # one line for help texts


ENCODERS: dict[str, EncoderSpec] = {
    spec.name: spec
    for spec in (
        EncoderSpec("vec768l12", 12, False, 0, "ContentVec layer 12, 768-d (so-vits-svc 4.1 default)"),
        EncoderSpec("vec256l9", 9, True, 0, "ContentVec layer 9 + final_proj, 256-d (so-vits-svc 4.0)"),
        EncoderSpec("hubertsoft", None, True, 40, "HuBERT-Soft units, 256-d (innnky 32k)"),
    )
}
DEFAULT_ENCODER = "vec768l12"
# Where each encoder's transformers folder lives under pretrained_models/: the app.assets id that
# provides it, or None with the folder name when no download exists in that form (HuBERT-Soft is
# published as bshall's .pt and must be converted, see the module docstring).
ENCODER_ASSETS: dict[str, tuple[str | None, str]] = {
    "vec768l12": ("content-vec-best", "content-vec-best"),
    "vec256l9": ("content-vec-best", "content-vec-best"),
    "hubertsoft": (None, "hubert-soft-transformers"),
}


class ContentEncoderError(ValueError):
    """A content encoder folder or input that cannot be used; the message says what to do."""


def _hubert_class():  # type: ignore[no-untyped-def]
    """transformers' HubertModel plus the ``final_proj`` layer the weights file may hold."""
    from transformers import HubertModel

    class HubertWithProjection(HubertModel):
        def __init__(self, config):  # type: ignore[no-untyped-def]
            super().__init__(config)
            self.final_proj = nn.Linear(config.hidden_size, config.classifier_proj_size)

    return HubertWithProjection


class ContentEncoder(nn.Module):
    """16 kHz audio -> content features ``(B, C, T50)`` for one :class:`EncoderSpec`."""

    def __init__(self, hubert: nn.Module, spec: EncoderSpec) -> None:
        super().__init__()
        self.hubert = hubert
        self.spec = spec
        n_layers = hubert.config.num_hidden_layers
        if spec.layer is not None and spec.layer > n_layers:
            template = "{name} reads transformer layer {layer}, but this model has only {count} layers"
            fields = {"name": spec.name, "layer": spec.layer, "count": n_layers}
            raise ContentEncoderError(Message("content.err.layers", template, **fields))

    @property
    def dim(self) -> int:
        """Feature width C."""
        cfg = self.hubert.config
        return cfg.classifier_proj_size if self.spec.project else cfg.hidden_size

    @torch.no_grad()
    def forward(self, wav16k: torch.Tensor) -> torch.Tensor:
        """(N,) or (B, N) 16 kHz audio -> (B, C, T50) float32, T50 ~ N / 320."""
        if wav16k.dim() == 1:
            wav16k = wav16k.unsqueeze(0)
        if wav16k.dim() != 2:
            template = "expected audio of shape (samples,) or (batch, samples), got {shape}"
            raise ContentEncoderError(Message("content.err.shape", template, shape=tuple(wav16k.shape)))
        param = next(self.hubert.parameters())
        x = wav16k.to(device=param.device, dtype=param.dtype)
        if self.spec.pad:
            x = F.pad(x, (self.spec.pad, self.spec.pad))
        if x.size(1) < 400:  # the conv front-end's receptive field (25 ms)
            template = "audio of {samples} samples is too short for content features (needs 400)"
            raise ContentEncoderError(Message("content.err.short", template, samples=wav16k.size(1)))
        out = self.hubert(x, output_hidden_states=self.spec.layer is not None)
        hidden = out.last_hidden_state if self.spec.layer is None else out.hidden_states[self.spec.layer]
        if self.spec.project:
            hidden = self.hubert.final_proj(hidden)
        return hidden.transpose(1, 2).float()  # (B, T, C) -> (B, C, T)


def encoder_folder(name: str, pretrained_root: Path) -> Path:
    """The folder under ``pretrained_root`` that holds encoder ``name``'s transformers model."""
    if name not in ENCODER_ASSETS:
        template = (
            "content encoder {name!r} is not supported; so-vits-svc models using one of {choices} can be used"
        )
        choices = ", ".join(ENCODER_ASSETS)
        raise ContentEncoderError(Message("content.err.unsupported", template, name=name, choices=choices))
    return Path(pretrained_root) / ENCODER_ASSETS[name][1]


def missing_encoder_message(name: str, pretrained_root: Path) -> str:
    """Why encoder ``name`` cannot be loaded from ``pretrained_root`` and how to get it (a Message, the
    page words it in its reader's language); "" when present."""
    from app import assets

    folder = encoder_folder(name, pretrained_root)
    asset_id = ENCODER_ASSETS[name][0]
    weights = ("pytorch_model.bin", "model.safetensors")  # either serialisation loads
    if (folder / "config.json").is_file() and any((folder / w).is_file() for w in weights):
        return ""
    if asset_id is None:
        template = (
            "the {name} content encoder is missing: download bshall's file with `python tools/download_models.py "
            "hubert-soft`, then convert it into {folder}/ with `python -m app.models.upstream.hubert_soft`"
        )
        return Message("encoder.err.soft_missing", template, name=name, folder=str(folder))
    how = assets.missing_message(assets.status(pretrained_root, [assets.get(asset_id)]))
    template = "the {name} content encoder is missing.\n{how}"
    return Message("encoder.err.missing", template, name=name, how=how) if how else ""


@lru_cache(maxsize=2)
def load_content_encoder(
    name: str, folder: Path, device: str = "cpu", dtype: torch.dtype = torch.float32
) -> ContentEncoder:
    """Load ``name`` (see :data:`ENCODERS`) from a local transformers HuBERT folder (cached), its
    weights and arithmetic in ``dtype`` (features come out float32 whatever it is)."""
    if name not in ENCODERS:
        template = "unknown content encoder {name!r}; choose one of {choices}"
        raise ContentEncoderError(
            Message("content.err.unknown", template, name=name, choices=", ".join(ENCODERS))
        )
    spec = ENCODERS[name]
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        template = (
            "{folder}: no transformers HuBERT model here (config.json missing); put the {name} "
            "encoder there (see app.models.encoders.content for the layout)"
        )
        raise ContentEncoderError(Message("content.err.no_config", template, folder=str(folder), name=name))
    try:
        model, info = _hubert_class().from_pretrained(
            str(folder), local_files_only=True, output_loading_info=True
        )
    except (OSError, ValueError) as exc:
        template = "{folder}: cannot load the HuBERT model ({problem})"
        raise ContentEncoderError(
            Message("content.err.load", template, folder=str(folder), problem=str(exc))
        ) from exc
    missing = set(info.get("missing_keys", ()))
    if spec.project and missing & {"final_proj.weight", "final_proj.bias"}:
        template = (
            "{folder}: {name} needs the projection final_proj.weight/bias in the weights file; "
            "this folder has none (a plain HuBERT/ContentVec export only serves vec768l12)"
        )
        raise ContentEncoderError(Message("content.err.no_proj", template, folder=str(folder), name=name))
    other = sorted(k for k in missing if not k.startswith("final_proj."))
    if other:
        template = "{folder}: weights file lacks {names}; is it a complete HuBERT export?"
        raise ContentEncoderError(
            Message("content.err.lacks", template, folder=str(folder), names=str(other[:4]))
        )
    logger.info("loaded content encoder %s from %s", name, folder)
    return ContentEncoder(model.eval(), spec).to(device, dtype)


def align_frames(units: torch.Tensor, n_frames: int, mode: str = "nearest") -> torch.Tensor:
    """Stretch content frames to the synthesizer's frame count (so-vits-svc ``repeat_expand_2d``).

    Args:
        units: (C, T) or (B, C, T).
        n_frames: target length (the f0 frame count).
        mode: ``"nearest"`` (4.1 default: torch nearest interpolation) or ``"left"`` (4.0: target
            frame i takes source frame ``floor(i * T / n_frames)``).

    Returns:
        units with the last axis resized to ``n_frames``.
    """
    squeeze = units.dim() == 2
    x = units.unsqueeze(0) if squeeze else units
    if mode == "nearest":
        out = F.interpolate(x, size=n_frames, mode="nearest")
    elif mode == "left":
        index = torch.arange(n_frames, device=x.device) * x.size(-1) // n_frames
        out = x[..., index]
    else:
        template = "unit_interpolate_mode must be 'nearest' or 'left', got {mode!r}"
        raise ContentEncoderError(Message("content.err.mode", template, mode=mode))
    return out[0] if squeeze else out
