"""UVR's VR-architecture models (``.pth``): vocal separation, lead vocal (karaoke) and de-echo/de-reverb.

The files GPT-SoVITS users have in ``tools/uvr5/uvr5_weights/``, here in
``pretrained_models/uvr5_weights/`` (the folder the MDX-Net files use too)::

    HP2_all_vocals.pth         v5 ASPP net, 4band_v2   mask keeps the instrumental  -> separation
    HP3_all_vocals.pth         v5 ASPP net, 4band_v2   mask keeps the vocals        -> separation
    HP5_only_main_vocal.pth    v5 ASPP net, 4band_v2   mask keeps all but the lead  -> karaoke
    VR-DeEchoNormal.pth        new net (48), 4band_v3  mask keeps the dry vocal     -> de-reverb
    VR-DeEchoAggressive.pth    new net (48), 4band_v3  the same, removes more
    VR-DeEchoDeReverb.pth      new net (64), 4band_v3  echo and reverb (about twice as slow)

Inference follows upstream's ``tools/uvr5/vr.py`` with its defaults: the magnitude of the
multi-band spectrogram (:mod:`vr_spec`) normalised by its peak, cut in windows of 512 frames that
overlap by the network's ``offset`` at each side (those frames are dropped), the mask raised to
a power for the v5 networks (aggressiveness 10, upstream's fixed value), the masked spectrum and
the rest turned back into audio with the high end mirrored. No test-time augmentation and no
silence post-processing (both off upstream).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from app import assets
from app.data.preprocess.vr_spec import BandParams, analyse, load_bands, mirror_high_end, synthesise
from app.messages import Message, said
from app.models.upstream.safe_pickle import CheckpointError
from app.models.upstream.uvr_vr import ASPP, CASCADED, load_vr_net
from app.models.uvr.nets import VrNet

logger = logging.getLogger(__name__)

VR_RATE = 44100  # every UVR VR model works on 44.1 kHz stereo (the top band's rate)
VR_FOLDER = "uvr5_weights"  # upstream's folder for UVR weights, shared with the MDX-Net files
WINDOW = 512  # frames per network call (upstream's data["window_size"])
AGGRESSIVENESS = 10  # upstream's value (its slider is hidden); v5 networks only
BATCH = 4  # windows per network call (BatchNorm in eval mode: the same numbers as one at a time)
# What the mask keeps; the other stem is the input less it.
MASK_KEEPS = ("instrumental", "vocals", "dry")
ROLES = ("separate", "karaoke", "dereverb")


class VrError(ValueError):
    """A VR model cannot run (missing, unknown or malformed file); the message says what to do."""


class MissingVrModel(VrError, FileNotFoundError):
    """The ``.pth`` file is not in ``pretrained_models/uvr5_weights/``."""


@dataclass(frozen=True)
class VrParams:
    """How upstream runs a published VR file."""

    kind: str  # network: ASPP (UVR v5) or CASCADED (UVR "new")
    bands: str  # band parameters in uvr_bands/
    keeps: str  # what the masked spectrum is (MASK_KEEPS)
    role: str  # the step it serves (ROLES)
    asset: str  # id in app.assets


VR_MODELS: dict[str, VrParams] = {
    "HP2_all_vocals.pth": VrParams(ASPP, "4band_v2", "instrumental", "separate", "uvr-vr-hp2"),
    "HP3_all_vocals.pth": VrParams(ASPP, "4band_v2", "vocals", "separate", "uvr-vr-hp3"),
    "HP5_only_main_vocal.pth": VrParams(ASPP, "4band_v2", "instrumental", "karaoke", "uvr-vr-hp5"),
    "VR-DeEchoNormal.pth": VrParams(CASCADED, "4band_v3", "dry", "dereverb", "uvr-vr-deecho-normal"),
    "VR-DeEchoAggressive.pth": VrParams(CASCADED, "4band_v3", "dry", "dereverb", "uvr-vr-deecho-aggressive"),
    "VR-DeEchoDeReverb.pth": VrParams(CASCADED, "4band_v3", "dry", "dereverb", "uvr-vr-deecho-dereverb"),
}


def models_for(role: str) -> tuple[str, ...]:
    """Published files serving ``role`` (one of ROLES)."""
    return tuple(name for name, p in VR_MODELS.items() if p.role == role)


def model_path(name: str, pretrained_root: Path) -> Path:
    """Where the published file ``name`` belongs: ``pretrained_models/uvr5_weights/<name>``."""
    return Path(pretrained_root) / VR_FOLDER / name


def is_installed(name: str, pretrained_root: Path) -> bool:
    return model_path(name, pretrained_root).is_file()


@lru_cache(maxsize=2)
def _net(path: str, mtime_ns: int, kind: str, n_fft: int, device: str) -> VrNet:
    """The loaded network, cached per file version and device."""
    return load_vr_net(Path(path), kind, n_fft).to(device)


def make_padding(frames: int, offset: int) -> tuple[int, int, int]:
    """(left pad, right pad, new frames per window) so windows of WINDOW frames stepping by
    ``WINDOW - 2 * offset`` cover ``frames`` with their trusted centres."""
    step = WINDOW - 2 * offset
    return offset, step - frames % step + offset, step


class VrModel:
    """A loaded VR file: :meth:`split` gives the masked stem and the rest."""

    def __init__(self, name: str, pretrained_root: Path, device: str = "cpu") -> None:
        if name not in VR_MODELS:
            template = "unknown VR model {name!r}; choose one of {choices}"
            raise VrError(Message("sep.err.unknown_vr", template, name=name, choices=", ".join(VR_MODELS)))
        self.name, self.params = name, VR_MODELS[name]
        self.bands: BandParams = load_bands(self.params.bands)
        path = model_path(name, pretrained_root)
        if not path.is_file():
            how = assets.install_hint(self.params.asset, Path(pretrained_root))
            template = "{name} is not installed: {path} not found.\n{how}"
            raise MissingVrModel(
                Message("sep.err.not_installed", template, name=name, path=str(path), how=how)
            )
        try:
            self.net = _net(str(path), path.stat().st_mtime_ns, self.params.kind, self.bands.bins * 2, device)
        except CheckpointError as exc:
            raise VrError(said(exc)) from exc
        self.device = device
        self.description = f"VR {name}"

    def _mask(self, batch: torch.Tensor) -> torch.Tensor:
        """Magnitude windows ``(B, 2, bins + 1, WINDOW)`` -> masks of the same shape."""
        mask = self.net(batch)
        if self.params.kind == ASPP:
            # Upstream's aggressiveness: a steeper mask, gentler below the lowest band's crop.
            value, split = AGGRESSIVENESS / 100, self.bands.bands[0].crop_stop
            mask[:, :, :split] = mask[:, :, :split] ** (1 + value / 3)
            mask[:, :, split:] = mask[:, :, split:] ** (1 + value)
        return mask

    def predict_magnitude(
        self, magnitude: np.ndarray, progress: Callable[[float], None] | None = None
    ) -> np.ndarray:
        """``(2, bins + 1, frames)`` magnitude -> masked magnitude, same shape (upstream's inference)."""
        coef = float(magnitude.max()) or 1.0  # silence: nothing to scale
        frames, offset = magnitude.shape[2], self.net.offset
        left, right, step = make_padding(frames, offset)
        windows = int(np.ceil(frames / step))
        padded = np.pad(magnitude / coef, ((0, 0), (0, 0), (left, right)))  # (2, bins + 1, padded)
        padded_t = torch.from_numpy(padded.astype(np.float32))
        pieces = []
        with torch.inference_mode():
            for first in range(0, windows, BATCH):
                starts = range(first * step, min(windows, first + BATCH) * step, step)
                batch = torch.stack([padded_t[:, :, s : s + WINDOW] for s in starts]).to(self.device)
                masked = batch * self._mask(batch)  # (B, 2, bins + 1, WINDOW)
                pieces.extend(masked[:, :, :, offset:-offset].cpu().unbind(0))  # B x (2, bins + 1, step)
                if progress is not None:
                    progress(min(windows, first + BATCH) / windows)
        return torch.cat(pieces, dim=2)[:, :, :frames].numpy() * coef

    def split(
        self, mix: np.ndarray, progress: Callable[[float], None] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Stereo ``(T, 2)`` at 44.1 kHz -> (the masked stem, the rest), each ``(T, 2)``.

        The masked stem is ``params.keeps``. Both are as long as ``mix``: the input gets one top-band
        window of silence at its end first, so the last frames reach past it (upstream's outputs
        end up to a hop early).
        """
        if mix.ndim != 2 or mix.shape[1] != 2:
            template = "VR models need stereo audio (T, 2), got shape {shape}"
            raise VrError(Message("sep.err.vr_stereo", template, shape=tuple(mix.shape)))
        padded = np.pad(mix.T, ((0, 0), (0, self.bands.bands[-1].n_fft)))  # (2, T + n_fft)
        spec, high_end = analyse(padded, self.bands)  # (2, bins + 1, frames), (2, h, frames)
        masked_mag = self.predict_magnitude(np.abs(spec), progress)
        masked = masked_mag * np.exp(1.0j * np.angle(spec))
        rest = spec - masked
        stems = []
        for part in (masked, rest):
            wave = synthesise(part, self.bands, mirror_high_end(part, high_end, self.bands))  # (T', 2)
            stems.append(_fit(wave.astype(np.float32), len(mix)))
        return stems[0], stems[1]


def _fit(wave: np.ndarray, length: int) -> np.ndarray:
    """``(T', 2)`` cut or zero-padded to ``(length, 2)`` (the STFT frames end a little short or long)."""
    if len(wave) >= length:
        return wave[:length]
    return np.pad(wave, ((0, length - len(wave)), (0, 0)))


class VrSeparator:
    """HP2/HP3 as a :class:`app.data.preprocess.separate_base.Separator`: vocals and accompaniment."""

    samplerate = VR_RATE
    channels = 2

    def __init__(self, model: VrModel) -> None:
        if model.params.role != "separate":
            template = "{name} is not a separation model; choose one of {choices}"
            choices = ", ".join(models_for("separate"))
            raise VrError(Message("sep.err.vr_not_separation", template, name=model.name, choices=choices))
        self.model, self.device = model, model.device

    def separate(
        self, wav: np.ndarray, progress: Callable[[float], None] | None = None
    ) -> dict[str, np.ndarray]:
        """``(T, 2)`` at 44.1 kHz -> {"vocals", "accompaniment"}, each ``(T, 2)``."""
        masked, rest = self.model.split(wav, progress)
        if self.model.params.keeps == "vocals":
            return {"vocals": masked, "accompaniment": rest}
        return {"vocals": rest, "accompaniment": masked}
