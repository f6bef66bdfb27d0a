"""Training data for the SVC trainer: 4.1 filelists + feature files -> padded batches.

One item (4.1 ``TextAudioSpeakerLoader``): the clip's audio, its linear spectrogram (``.spec.pt``
when present, else computed), f0 and voiced flags (``.f0.npy``), content features (``.soft.pt``)
stretched to the f0 frame count, the speaker id from the clip's folder name through config.json's
``spk`` map, and the frame volume when the model has a volume embedding. All streams are cut to
the shortest. Long clips are cropped to a random 790-frame window (4.1 crops above 800 frames),
and with ``vol_aug`` half of the items get a random gain (4.1 does the same).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset

from app.audio.volume import frame_volume
from app.messages import Message
from app.models.encoders.content import align_frames
from app.models.svc.config import SvcConfig
from app.models.svc.losses import linear_spectrogram
from app.models.upstream.svc.features import feature_paths, read_content, read_f0, read_spec, read_volume

log = logging.getLogger(__name__)

CROP_ABOVE = 800  # frames; 4.1 data_utils crops longer items ...
CROP_TO = 790  # ... to this many frames
LENGTH_TOLERANCE = 3  # frames the streams of one clip may differ by (4.1 asserts the same)


class SvcDataError(ValueError):
    """A training clip whose files do not fit together; the message names the clip."""


@dataclass(frozen=True)
class SvcItem:
    """One training example, all at the synth frame rate (T frames)."""

    content: torch.Tensor  # (C, T)
    f0: torch.Tensor  # (T,) Hz, unvoiced interpolated
    uv: torch.Tensor  # (T,) 1 = voiced
    spec: torch.Tensor  # (F, T)
    audio: torch.Tensor  # (1, T * hop)
    speaker: int
    volume: torch.Tensor | None  # (T,) or None


@dataclass(frozen=True)
class SvcBatch:
    """Padded batch, longest first (4.1 ``TextAudioCollate``)."""

    content: torch.Tensor  # (B, C, T)
    f0: torch.Tensor  # (B, T)
    uv: torch.Tensor  # (B, T)
    spec: torch.Tensor  # (B, F, T)
    audio: torch.Tensor  # (B, 1, T * hop)
    speakers: torch.Tensor  # (B,)
    lengths: torch.Tensor  # (B,) valid frames
    volume: torch.Tensor | None  # (B, T)

    def to(self, device: torch.device) -> SvcBatch:
        move = {
            k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v)
            for k, v in vars(self).items()
        }
        return SvcBatch(**move)


def _read_audio(path: Path, sr: int) -> torch.Tensor:
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    if rate != sr:
        template = "{path}: sampled at {rate} Hz, config.json says {sr}; run the preprocessing again"
        raise SvcDataError(Message("svctrain.err.rate", template, path=str(path), rate=rate, sr=sr))
    return torch.from_numpy(data.mean(axis=1))


class SvcDataset(Dataset):
    """Items of one filelist (see module doc); clips shorter than the training window are left out."""

    def __init__(
        self, clips: Sequence[Path], config: SvcConfig, *, augment: bool = True, seed: int = 1234
    ) -> None:
        self.config = config
        self.hop = config.data.hop_length
        self.segment = config.train.segment_size // self.hop
        self.spk = dict(config.spk)
        self.volume = bool(config.model.vol_embedding and "vol_embedding" not in config.model.absent)
        self.vol_aug = bool(augment and config.train.vol_aug and self.volume)
        self.rng = random.Random(seed)
        self.clips: list[Path] = []
        self.too_short: list[Path] = []
        for clip in clips:
            if clip.parent.name not in self.spk:
                template = "{clip}: speaker folder {folder!r} is not in config.json's spk map {speakers}"
                fields = {"clip": str(clip), "folder": clip.parent.name, "speakers": sorted(self.spk)}
                raise SvcDataError(Message("svctrain.err.speaker", template, **fields))
            frames = sf.info(clip).frames // self.hop
            (self.clips if frames >= self.segment else self.too_short).append(clip)
        if self.too_short:
            log.warning(
                "%d clip(s) shorter than the training window of %d frames are not used (e.g. %s)",
                len(self.too_short), self.segment, self.too_short[0].name,
            )  # fmt: skip

    def __len__(self) -> int:
        return len(self.clips)

    def load(self, clip: Path) -> SvcItem:
        """Read one clip's streams and cut them to a common length."""
        data = self.config.data
        paths = feature_paths(clip)
        audio = _read_audio(clip, data.sampling_rate)
        spec = read_spec(paths["spec"]) if paths["spec"].is_file() else linear_spectrogram(audio, data)[0]
        f0, uv = (torch.from_numpy(a) for a in read_f0(paths["f0"]))
        content = align_frames(read_content(paths["content"]), f0.numel(), data.unit_interpolate_mode)
        volume = torch.from_numpy(read_volume(paths["volume"])) if self.volume else None
        n = min(content.size(-1), spec.size(-1))
        if abs(content.size(-1) - spec.size(-1)) >= LENGTH_TOLERANCE or audio.numel() < (n - 1) * self.hop:
            template = (
                "{clip}: features do not match the audio (f0 {f0} frames, spectrogram {spec}, {samples} samples"
                " at hop {hop}); delete its feature files and run the preprocessing again"
            )
            fields = {"f0": f0.numel(), "spec": spec.size(-1), "samples": audio.numel(), "hop": self.hop}
            raise SvcDataError(Message("svctrain.err.features", template, clip=str(clip), **fields))
        return SvcItem(
            content=content[:, :n],
            f0=f0[:n],
            uv=uv[:n],
            spec=spec[:, :n],
            audio=audio[: n * self.hop].unsqueeze(0),
            speaker=self.spk[clip.parent.name],
            volume=None if volume is None else volume[:n],
        )

    def _augment(self, item: SvcItem) -> SvcItem:
        """4.1's volume augmentation: random gain (never clipping) on audio, volume and spectrogram."""
        peak = float(item.audio.abs().max()) + 1e-5
        shift = self.rng.uniform(-1.0, min(1.0, float(np.log10(1.0 / peak))))
        gain = 10**shift
        audio = item.audio * gain
        return SvcItem(
            content=item.content, f0=item.f0, uv=item.uv,
            spec=linear_spectrogram(audio[0], self.config.data)[0][:, : item.spec.size(1)],
            audio=audio, speaker=item.speaker,
            volume=None if item.volume is None else frame_volume(audio[0], self.hop)[: item.spec.size(1)],
        )  # fmt: skip

    def __getitem__(self, index: int) -> SvcItem:
        item = self.load(self.clips[index])
        if self.vol_aug and self.rng.random() < 0.5:
            item = self._augment(item)
        n = item.spec.size(1)
        if n > CROP_ABOVE:
            start = self.rng.randint(0, n - CROP_ABOVE)
            end = start + CROP_TO
            item = SvcItem(
                content=item.content[:, start:end], f0=item.f0[start:end], uv=item.uv[start:end],
                spec=item.spec[:, start:end], audio=item.audio[:, start * self.hop : end * self.hop],
                speaker=item.speaker, volume=None if item.volume is None else item.volume[start:end],
            )  # fmt: skip
        return item


def collate(items: Sequence[SvcItem]) -> SvcBatch:
    """Zero-pad items to the longest, longest first."""
    items = sorted(items, key=lambda it: it.spec.size(1), reverse=True)
    b, t = len(items), items[0].spec.size(1)
    hop = items[0].audio.size(1) // t
    content = torch.zeros(b, items[0].content.size(0), t)
    spec = torch.zeros(b, items[0].spec.size(0), t)
    f0, uv = torch.zeros(b, t), torch.zeros(b, t)
    audio = torch.zeros(b, 1, t * hop)
    volume = torch.zeros(b, t) if items[0].volume is not None else None
    lengths = torch.zeros(b, dtype=torch.long)
    for i, it in enumerate(items):
        n = it.spec.size(1)
        lengths[i] = n
        content[i, :, :n] = it.content
        spec[i, :, :n] = it.spec
        f0[i, :n], uv[i, :n] = it.f0, it.uv
        audio[i, :, : it.audio.size(1)] = it.audio
        if volume is not None and it.volume is not None:
            volume[i, :n] = it.volume
    speakers = torch.tensor([it.speaker for it in items], dtype=torch.long)
    return SvcBatch(content, f0, uv, spec, audio, speakers, lengths, volume)
