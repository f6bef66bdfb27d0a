"""BS-/Mel-Band-RoFormer vocal separation: published checkpoints, chunked inference with overlap.

The files sit where upstream GPT-SoVITS keeps them, a checkpoint and the config published with it
under one name::

    pretrained_models/uvr5_weights/model_bs_roformer_ep_317_sdr_12.9755.ckpt
    pretrained_models/uvr5_weights/model_bs_roformer_ep_317_sdr_12.9755.yaml

Any other ``<name>.ckpt`` with its ``<name>.yaml`` there runs too (Mel-Band-RoFormer vocal
models, other BS-RoFormer trainings); :data:`ROFORMER_MODELS` are the ones the download tool
knows. A recording is cut in chunks of the config's ``chunk_size`` samples, one every
``chunk_size // num_overlap``; each chunk's output is faded in and out over a tenth of a chunk
(not at the recording's two ends) and the overlapping outputs are averaged by their fade weights,
so chunk edges never show. The recording is reflect-padded by the overlap first, so its start
and end are inside a chunk as much as its middle.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from app import assets
from app.messages import Message
from app.models.upstream.roformer import RoformerFileError, RoformerFiles, load_model, read_config

logger = logging.getLogger(__name__)

ROFORMER_FOLDER = "uvr5_weights"  # upstream's folder for UVR weights (tools/uvr5/uvr5_weights/)
CHECKPOINT_SUFFIX, CONFIG_SUFFIX = ".ckpt", ".yaml"
# Published checkpoints -> their id in app.assets (the download tool's name).
ROFORMER_MODELS: dict[str, str] = {
    "model_bs_roformer_ep_317_sdr_12.9755.ckpt": "roformer-bs-viperx-1297",
}
FADE_SHARE = 10  # fades span chunk_size // FADE_SHARE samples (the published inference's tenth)
VOCALS = "vocals"


class RoformerError(RuntimeError):
    """A RoFormer model cannot run (missing, unknown or malformed files); the message says what to do."""


class MissingRoformerModel(RoformerError, FileNotFoundError):
    """The checkpoint or its config is not in ``pretrained_models/uvr5_weights/``."""


def model_files(name: str, pretrained_root: Path) -> tuple[Path, Path]:
    """``(checkpoint, config)`` of the model file ``name`` (``<stem>.ckpt``) in ``uvr5_weights/``."""
    checkpoint = Path(pretrained_root) / ROFORMER_FOLDER / name
    return checkpoint, checkpoint.with_suffix(CONFIG_SUFFIX)


def installed_models(pretrained_root: Path) -> tuple[str, ...]:
    """The published models and any other checkpoint with its config in ``uvr5_weights/``, sorted."""
    folder = Path(pretrained_root) / ROFORMER_FOLDER
    found = {p.name for p in folder.glob(f"*{CHECKPOINT_SUFFIX}") if p.with_suffix(CONFIG_SUFFIX).is_file()}
    return tuple(sorted(found))


def is_roformer(name: str) -> bool:
    """Whether a separation model name is a RoFormer checkpoint (the engine follows the name)."""
    return name.endswith(CHECKPOINT_SUFFIX)


@lru_cache(maxsize=1)
def _load(checkpoint: str, config: str, mtime: float, device: str) -> tuple[torch.nn.Module, RoformerFiles]:
    files = read_config(Path(config))
    logger.info("loading %s (%s, %s stems) on %s", checkpoint, files.config.kind, files.stems, device)
    return load_model(Path(checkpoint), files).to(device), files


def _fades(size: int, fade: int, first: bool, last: bool) -> torch.Tensor:
    """``(size,)`` weights: 1, rising over ``fade`` at the start unless ``first``, falling at the end unless ``last``."""
    window = torch.ones(size)
    if fade == 0:
        return window
    if not first:
        window[:fade] = torch.linspace(0, 1, fade)
    if not last:
        window[size - fade :] *= torch.linspace(1, 0, fade)
    return window


def demix(
    model: torch.nn.Module,
    files: RoformerFiles,
    mix: torch.Tensor,
    progress: Callable[[float], None] | None = None,
) -> torch.Tensor:
    """``mix`` ``(C, T)`` -> the network's stems ``(S, C, T)``, chunk by chunk with faded overlaps."""
    size, device = files.chunk_size, next(model.parameters()).device
    step = size // files.num_overlap
    # Fades stay inside the overlap, where the neighbouring chunk has full weight (none without overlap).
    border = size - step
    fade = min(size // FADE_SHARE, border)
    length = mix.shape[-1]
    padded = length > 2 * border > 0
    if padded:  # reflect the edges so the first and last samples sit inside a chunk too
        mix = torch.nn.functional.pad(mix[None], (border, border), mode="reflect")[0]
    total = mix.shape[-1]
    starts = list(range(0, total, step))
    out = torch.zeros(files.config.num_stems, *mix.shape)  # (S, C, T')
    weight = torch.zeros(total)
    for first in range(0, len(starts), files.batch_size):
        batch, spans = [], []
        for start in starts[first : first + files.batch_size]:
            part = mix[:, start : start + size]
            n = part.shape[-1]
            if n < size:  # the last chunk: reflect when there is enough of it, else silence
                mode = "reflect" if n > size // 2 + 1 else "constant"
                part = torch.nn.functional.pad(part[None], (0, size - n), mode=mode)[0]
            batch.append(part)
            spans.append((start, n))
        with torch.inference_mode():
            result = model(torch.stack(batch).to(device)).float().cpu()  # (B, S, C, size)
        for (start, n), stems in zip(spans, result, strict=True):
            window = _fades(size, fade, start == 0, start + step >= total)[:n]
            out[..., start : start + n] += stems[..., :n] * window
            weight[start : start + n] += window
        if progress is not None:
            progress(min(1.0, (first + len(batch)) / len(starts)))
    out = torch.nan_to_num(out / weight.clamp(min=1e-8))
    return out[..., border : border + length] if padded else out


class RoformerSeparator:
    """A loaded RoFormer checkpoint as a separator: vocals, and the rest as the accompaniment."""

    def __init__(self, name: str, pretrained_root: Path, device: str = "cpu") -> None:
        if not is_roformer(name):
            template = "{name!r} is not a RoFormer checkpoint (<name>{suffix})"
            raise RoformerError(
                Message("sep.err.not_roformer", template, name=name, suffix=CHECKPOINT_SUFFIX)
            )
        checkpoint, config = model_files(name, pretrained_root)
        missing = [p for p in (checkpoint, config) if not p.is_file()]
        if missing:
            files = " and ".join(str(p) for p in missing)
            asset_id = ROFORMER_MODELS.get(name)
            if asset_id is None:
                template = "{name} is not installed: {files} not found. Put the checkpoint and its {suffix} config there."
                said = Message("sep.err.roformer_put", template, name=name, files=files, suffix=CONFIG_SUFFIX)
                raise MissingRoformerModel(said)
            how = assets.install_hint(asset_id, Path(pretrained_root))
            template = "{name} is not installed: {path} not found.\n{how}"
            raise MissingRoformerModel(
                Message("sep.err.not_installed", template, name=name, path=files, how=how)
            )
        try:
            self.model, self.files = _load(str(checkpoint), str(config), checkpoint.stat().st_mtime, device)
        except RoformerFileError as exc:
            raise RoformerError(exc.args[0]) from exc  # a Message (its key kept)
        if len(self.files.stems) != 1 and VOCALS not in self.files.stems:
            template = "{name}: its stems {stems} include no {vocals!r}"
            said = Message(
                "sep.err.no_vocals_stem",
                template,
                name=name,
                stems=str(list(self.files.stems)),
                vocals=VOCALS,
            )
            raise RoformerError(said)
        self.samplerate = self.files.config.sample_rate
        self.channels = self.files.config.channels

    def separate(
        self, wav: np.ndarray, progress: Callable[[float], None] | None = None
    ) -> dict[str, np.ndarray]:
        """``wav`` ``(T, C)`` at :attr:`samplerate` -> ``{"vocals", "accompaniment"}``, each ``(T, C)``."""
        mix = torch.from_numpy(np.ascontiguousarray(wav.T, dtype=np.float32))  # (C, T)
        stems = demix(self.model, self.files, mix, progress).numpy()  # (S, C, T)
        names = self.files.stems
        if VOCALS in names:
            vocals = stems[names.index(VOCALS)].T
            return {"vocals": vocals, "accompaniment": wav - vocals}
        other = stems[0].T  # a one-stem model of something else: the vocals are the rest
        return {"vocals": wav - other, "accompaniment": other}
