"""SoVITS training data from a formatted experiment, selected and batched as upstream does.

A clip is used when it has a row in ``2-name2text.txt``, HuBERT features in ``4-cnhubert/`` and
audio in ``5-wav32k/`` (v2Pro*: and a speaker embedding in ``7-sv_cn/``), and lasts between 0.6 s
and 54 s (upstream ``TextAudioSpeakerLoader``).
A dataset of fewer than ``min_items`` clips is repeated ``max(2, min_items // n)`` times so an
epoch is long enough to be worth a checkpoint (upstream does this with 100).

Each item: HuBERT features ``(768, T)``, linear spectrogram ``(1025, F)`` of the 32 kHz clip
(VITS conventions, :func:`app.models.nn.spectrogram.linear_spectrogram`), the waveform ``(1, N)``
and the phone ids; v2Pro* adds the ``(sv_dim,)`` speaker embedding. Features one frame shorter
than the spectrogram are padded by repeating their last frame, as upstream does.

v3/v4 (:class:`CfmDataset`, upstream ``TextAudioSpeakerLoaderV3/V4``): the same clips, with the
normalised 100-bin log-mel the flow matching learns in place of the waveform: v4 from the 32 kHz
clip (n_fft 1280, hop 320), v3 from the clip resampled to 24 kHz (n_fft 1024, hop 256);
:func:`collate_cfm` pads them.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from app.audio.io import resample
from app.data.experiment import ExperimentFiles, read_name2text
from app.models.nn.spectrogram import linear_spectrogram
from app.models.sovits.config import SoVITSConfig
from app.models.sovits.reference import normalize_mel, reference_mel
from app.runconfig import SV_STEP, text_version
from app.text.symbols import phones_to_ids

log = logging.getLogger(__name__)

MIN_SECONDS = 0.6  # upstream: 54 > duration > 0.6
MAX_SECONDS = 54.0
INT16_SCALE = 32768.0


class TrainingDataError(RuntimeError):
    """The experiment cannot be trained on; the message says what is missing."""


@dataclass(frozen=True)
class Clip:
    name: str
    phone_ids: tuple[int, ...]
    frames: int  # spectrogram frames (samples // hop), the bucketing length


def repeat_small(items: list, min_items: int) -> list:
    """Upstream's padding of small datasets: ``max(2, min_items // n)`` copies when ``n < min_items``."""
    if not items or min_items <= 0 or len(items) >= min_items:
        return items
    return items * max(2, min_items // len(items))


class SoVITSDataset(Dataset):
    """Clips of one experiment; see the module docstring."""

    def __init__(self, exp_dir: Path, config: SoVITSConfig, version: str, min_items: int = 100) -> None:
        self.files = ExperimentFiles(Path(exp_dir))
        self.config = config
        files = self.files
        if not files.name2text.is_file():
            raise TrainingDataError(
                f"{files.name2text} is missing: format the dataset first (step 1a, then 1b)"
            )
        if config.is_pro and not files.sv_dir.is_dir():
            raise TrainingDataError(
                f"{files.sv_dir} is missing: {config.version} training needs the speaker embeddings of "
                f"formatting step {SV_STEP} (run 1b again with the {config.version} version chosen)"
            )
        rows = read_name2text(files.name2text)
        have_features = {p.name[: -len(".pt")] for p in files.hubert_dir.glob("*.pt")}
        have_audio = {
            p.name for p in files.wav32k_dir.glob("*") if p.is_file() and not p.name.startswith(".")
        }
        # Upstream: 2-name2text ∩ 4-cnhubert ∩ 5-wav32k (∩ 7-sv_cn for v2Pro*).
        names = [n for n in rows if n in have_features and n in have_audio]
        without_sv = 0
        if config.is_pro:
            have_sv = {p.name[: -len(".pt")] for p in files.sv_dir.glob("*.pt")}
            without_sv = sum(1 for n in names if n not in have_sv)
            names = [n for n in names if n in have_sv]
        clips, too_short_or_long = [], 0
        for name in names:
            frames_total = sf.info(str(files.wav32k(name))).frames
            seconds = frames_total / config.sampling_rate
            if not MIN_SECONDS < seconds < MAX_SECONDS:
                too_short_or_long += 1
                continue
            ids = tuple(phones_to_ids(rows[name].phones, text_version(version)))
            clips.append(Clip(name, ids, frames_total // config.hop_length))
        self.left_out = {
            "no features or audio (run 1b)": len(rows) - len(names) - without_sv,
            f"shorter than {MIN_SECONDS} s or longer than {MAX_SECONDS:.0f} s": too_short_or_long,
        }
        if config.is_pro:
            self.left_out[f"no speaker embedding in 7-sv_cn/ (run {SV_STEP})"] = without_sv
        if not clips:
            raise TrainingDataError(
                f"{files.root}: no clip can be trained on ({', '.join(f'{v} {k}' for k, v in self.left_out.items())}); "
                f"format the dataset ({'1a, 1b and ' + SV_STEP if config.is_pro else '1a and 1b'}) first"
            )
        self.unique = len(clips)
        self.clips = repeat_small(clips, min_items)
        if config.is_pro:
            self._speaker(clips[0].name)  # a wrong width fails here, not in a loader worker

    def _speaker(self, name: str) -> torch.Tensor:
        """The ``(sv_dim,)`` speaker embedding of a clip (``7-sv_cn/<name>.pt`` holds ``(1, sv_dim)``)."""
        path = self.files.sv(name)
        try:
            emb = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
            raise TrainingDataError(
                f"{path}: cannot read the speaker embedding ({exc}); rerun {SV_STEP}"
            ) from exc
        if not isinstance(emb, torch.Tensor) or emb.numel() != self.config.sv_dim:
            shape = tuple(emb.shape) if isinstance(emb, torch.Tensor) else type(emb).__name__
            raise TrainingDataError(
                f"{path}: speaker embedding {shape}, the model reads (1, {self.config.sv_dim}); "
                f"it was made by another speaker model: delete 7-sv_cn/ and rerun {SV_STEP}"
            )
        return emb.float().reshape(-1)

    @property
    def lengths(self) -> list[int]:
        return [c.frames for c in self.clips]

    def __len__(self) -> int:
        return len(self.clips)

    def _read(self, clip: Clip) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(ssl (768, T), spec (1025, F), wav (1, N) float32 at 32 kHz) of a clip."""
        c = self.config
        path = self.files.wav32k(clip.name)
        try:
            data, rate = sf.read(str(path), dtype="int16", always_2d=True)
            ssl = torch.load(self.files.hubert(clip.name), map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, sf.LibsndfileError) as exc:
            raise TrainingDataError(f"{clip.name}: cannot read its training files: {exc}") from exc
        if rate != c.sampling_rate:
            raise TrainingDataError(f"{path}: {rate} Hz, expected {c.sampling_rate} (rerun step 1b)")
        wav = torch.from_numpy(np.ascontiguousarray(data[:, 0]).astype(np.float32) / INT16_SCALE)[None]
        spec = linear_spectrogram(wav, c.filter_length, c.hop_length, c.win_length)[0]  # (1025, F)
        ssl = ssl.float()[0] if ssl.dim() == 3 else ssl.float()  # (768, T)
        if ssl.shape[-1] != spec.shape[-1]:
            ssl = F.pad(ssl[None], (0, 1), mode="replicate")[0]
        return ssl, spec, wav

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        """(ssl (768, T), spec (1025, F), wav (1, N), phone ids (P,)), then v2Pro*'s sv_emb (sv_dim,)."""
        clip = self.clips[index]
        ssl, spec, wav = self._read(clip)
        item = (ssl, spec, wav, torch.tensor(clip.phone_ids, dtype=torch.long))
        return (*item, self._speaker(clip.name)) if self.config.is_pro else item


class CfmDataset(SoVITSDataset):
    """v3/v4 clips (same selection as :class:`SoVITSDataset`); items carry the mel target."""

    def __init__(self, exp_dir: Path, config: SoVITSConfig, version: str, min_items: int = 100) -> None:
        if not config.is_cfm:
            raise ValueError(f"CfmDataset serves v3/v4 models, not {config.version}")
        super().__init__(exp_dir, config, version, min_items)

    def mel(self, wav: torch.Tensor) -> torch.Tensor:
        """(1, N) 32 kHz clip -> (100, M) normalised log-mel at the version's rate (upstream's target)."""
        audio = self.config.cfm_audio
        if audio.sampling_rate != self.config.sampling_rate:
            # v3: upstream decodes the clip again at 24 kHz (ffmpeg); soxr's high-quality filter here.
            wav = torch.from_numpy(resample(wav[0].numpy(), self.config.sampling_rate, audio.sampling_rate))
        return normalize_mel(reference_mel(wav, audio))[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        """(ssl (768, T), spec (1025, F), mel (100, M), phone ids (P,))"""
        clip = self.clips[index]
        ssl, spec, wav = self._read(clip)
        return ssl, spec, self.mel(wav), torch.tensor(clip.phone_ids, dtype=torch.long)


def collate(batch: list[tuple[torch.Tensor, ...]]) -> dict[str, torch.Tensor]:
    """Zero-pad a batch, longest spectrogram first (upstream ``TextAudioSpeakerCollate``).

    Feature and spectrogram widths are rounded up to the next even number (the 25 Hz tokens halve
    them); both get the same width so the decoder's inputs line up. Items of v2Pro* carry a fifth
    tensor, the speaker embedding, stacked into ``sv_emb`` ``(B, sv_dim)``.
    """
    order = sorted(range(len(batch)), key=lambda i: batch[i][1].shape[1], reverse=True)
    width = max(max(b[0].shape[1], b[1].shape[1]) for b in batch)
    width = 2 * (width // 2 + 1)
    max_wav = max(b[2].shape[1] for b in batch)
    max_text = max(b[3].shape[0] for b in batch)
    n = len(batch)
    ssl = torch.zeros(n, batch[0][0].shape[0], width)
    spec = torch.zeros(n, batch[0][1].shape[0], width)
    wav = torch.zeros(n, 1, max_wav)
    text = torch.zeros(n, max_text, dtype=torch.long)
    lengths = {k: torch.zeros(n, dtype=torch.long) for k in ("ssl", "spec", "wav", "text")}
    for row, i in enumerate(order):
        s, sp, w, t = batch[i][:4]
        ssl[row, :, : s.shape[1]] = s
        spec[row, :, : sp.shape[1]] = sp
        wav[row, :, : w.shape[1]] = w
        text[row, : t.shape[0]] = t
        for key, value in zip(
            ("ssl", "spec", "wav", "text"), (s.shape[1], sp.shape[1], w.shape[1], t.shape[0]), strict=True
        ):
            lengths[key][row] = value
    out = {
        "ssl": ssl,
        "spec": spec,
        "spec_lengths": lengths["spec"],
        "wav": wav,
        "wav_lengths": lengths["wav"],
        "text": text,
        "text_lengths": lengths["text"],
    }
    if len(batch[0]) > 4:
        out["sv_emb"] = torch.stack([batch[i][4] for i in order])  # (B, sv_dim), in the sorted order
    return out


def collate_cfm(batch: list[tuple[torch.Tensor, ...]]) -> dict[str, torch.Tensor]:
    """Zero-pad a v3/v4 batch, longest spectrogram first (upstream ``TextAudioSpeakerCollateV3/V4``).

    Features and spectrogram share one even width, as in :func:`collate`; mels are padded to the
    longest mel (the model crops mel and features to their common length; the loss and the DiT's
    attention see only each item's valid frames).
    """
    order = sorted(range(len(batch)), key=lambda i: batch[i][1].shape[1], reverse=True)
    width = max(max(b[0].shape[1], b[1].shape[1]) for b in batch)
    width = 2 * (width // 2 + 1)
    max_mel = max(b[2].shape[1] for b in batch)
    max_text = max(b[3].shape[0] for b in batch)
    n = len(batch)
    out = {
        "ssl": torch.zeros(n, batch[0][0].shape[0], width),
        "spec": torch.zeros(n, batch[0][1].shape[0], width),
        "spec_lengths": torch.zeros(n, dtype=torch.long),
        "mel": torch.zeros(n, batch[0][2].shape[0], max_mel),
        "mel_lengths": torch.zeros(n, dtype=torch.long),
        "text": torch.zeros(n, max_text, dtype=torch.long),
        "text_lengths": torch.zeros(n, dtype=torch.long),
    }
    for row, i in enumerate(order):
        ssl, spec, mel, text = batch[i]
        out["ssl"][row, :, : ssl.shape[1]] = ssl
        out["spec"][row, :, : spec.shape[1]] = spec
        out["spec_lengths"][row] = spec.shape[1]
        out["mel"][row, :, : mel.shape[1]] = mel
        out["mel_lengths"][row] = mel.shape[1]
        out["text"][row, : text.shape[0]] = text
        out["text_lengths"][row] = text.shape[0]
    return out
