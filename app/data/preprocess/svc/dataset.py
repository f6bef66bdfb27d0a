"""SVC dataset layout: raw recordings -> resampled clips, train/val lists, config.json, pitch report.

What so-vits-svc 4.1's ``resample.py`` and ``preprocess_flist_config.py`` do, in our code and on
any readable audio (4.1 takes ``.wav`` only):

1. :func:`prepare_clips`: every file of ``dataset_raw/<speaker>/`` is decoded at the model's rate,
   leading/trailing silence below 40 dB under the peak is trimmed (4.1 ``trim_wav``), and the clip
   is **peak-normalised to full scale** (4.1's default "loudnorm": divide by the peak; it is not
   a LUFS loudness match) unless ``loudnorm`` is off, then written as 16-bit WAV to
   ``dataset/44k/<speaker>/<name>.wav``. Clips shorter than 0.3 s after trimming, silent or
   unreadable files are skipped and reported. Clips already written are kept (resumable).
2. :func:`split_lists`: per speaker, a seeded shuffle puts 2 clips in ``filelists/val.txt`` and the
   rest in ``filelists/train.txt``, as 4.1's relative paths ``./dataset/44k/<speaker>/<name>.wav``.
3. :func:`make_config`: ``configs/config.json`` from a template with the speaker map, speaker
   count and content-encoder widths (4.1's table).
"""

from __future__ import annotations

import copy
import logging
import random
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np

from app.audio import AUDIO_EXTENSIONS
from app.audio.io import SILENCE_PEAK, AudioError, load_audio, save_audio
from app.audio.pitch_range import PitchRange, measure
from app.fileio import atomic_write_text
from app.messages import Message
from app.models.svc.config import SSL_DIM_BY_ENCODER, SvcConfig
from app.models.upstream.svc.features import (
    CONTENT_SUFFIX,
    F0_SUFFIX,
    SPEC_SUFFIX,
    VOLUME_SUFFIX,
    feature_paths,
    read_f0,
)
from app.paths import NAME_MAX, SvcExperiment, fit_file_name, safe_name

log = logging.getLogger(__name__)

MIN_SECONDS = 0.3  # 4.1 preprocess_flist_config: shorter clips are skipped
VAL_PER_SPEAKER = 2  # 4.1: two validation clips per speaker
TRIM_TOP_DB = 40.0  # 4.1 resample.trim_wav
PEAK_GUARD = 0.98  # 4.1 normalize_peak: a clip over full scale is first scaled to this

# progress(done, total, name of the item just finished)
ItemProgress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class SkippedClip:
    """A source file that did not become a training clip."""

    source: Path  # the raw file
    reason: str  # why, in words


@dataclass(frozen=True)
class ClipsResult:
    """Outcome of :func:`prepare_clips`."""

    clips: dict[str, tuple[Path, ...]]  # speaker -> clips in dataset/44k/<speaker>/, sorted
    written: int  # clips written by this run
    reused: int  # clips already there from an earlier run
    skipped: tuple[SkippedClip, ...]  # files that were not used, with the reason


def raw_speakers(raw_dir: Path) -> dict[str, list[Path]]:
    """``{speaker: [audio files]}`` for the speaker folders of ``raw_dir`` (sorted, hidden ignored)."""
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        template = "{folder}: no such folder; put one folder per speaker with its recordings there"
        raise FileNotFoundError(Message("svc.data.err.no_raw", template, folder=str(raw_dir)))
    out = {}
    for folder in sorted(p for p in raw_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(
            p
            for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in AUDIO_EXTENSIONS
        )
        if files:
            out[folder.name] = files
    return out


def add_raw_files(experiment: SvcExperiment, speaker: str, files: Sequence[Path]) -> list[Path]:
    """Copy uploaded recordings into ``dataset_raw/<speaker>/`` (names kept; existing files replaced)."""
    target = experiment.raw / safe_name(speaker)
    target.mkdir(parents=True, exist_ok=True)
    copied = []
    for src in files:
        src = Path(src)
        if src.suffix.lower() not in AUDIO_EXTENSIONS:
            template = "{name}: not an audio file type this tool reads ({types})"
            types = ", ".join(sorted(AUDIO_EXTENSIONS))
            raise AudioError(Message("svc.data.err.not_audio", template, name=src.name, types=types))
        dst = target / src.name
        shutil.copyfile(src, dst)
        copied.append(dst)
    return copied


# A clip's feature files add up to this many bytes to its name (".soft.pt", ".vol.npy", ...): clip
# names leave room for them within a file name's 255 bytes.
_FEATURE_ROOM = max(len(s) for s in (CONTENT_SUFFIX, F0_SUFFIX, VOLUME_SUFFIX, SPEC_SUFFIX))


def _clip_names(files: Sequence[Path]) -> dict[Path, str]:
    """Output names: the stem, or stem_<ext> when two sources share a stem (a.wav and a.mp3).

    A long stem is shortened with a hash so the clip's feature files still fit in 255 bytes.
    """
    stems: dict[str, int] = {}
    for f in files:
        stems[f.stem] = stems.get(f.stem, 0) + 1
    limit = NAME_MAX - _FEATURE_ROOM
    return {
        f: fit_file_name(f.stem, ".wav", limit)
        if stems[f.stem] == 1
        else fit_file_name(f"{f.stem}_{f.suffix[1:]}", ".wav", limit)
        for f in files
    }


def _prepare_one(source: Path, target: Path, sr: int, loudnorm: bool, top_db: float) -> str:
    """Write one clip; returns "" or the reason it was skipped."""
    try:
        wav = load_audio(source, sr, allow_silent=True)
    except AudioError as exc:
        return str(exc)
    peak = float(np.abs(wav).max(initial=0.0))
    if peak < SILENCE_PEAK:
        return "silent (peak below -80 dBFS)"
    wav, _ = librosa.effects.trim(wav, top_db=top_db)
    if len(wav) < MIN_SECONDS * sr:
        return f"too short: {len(wav) / sr:.2f} s after trimming silence (minimum {MIN_SECONDS} s)"
    peak = float(np.abs(wav).max())
    if peak > 1.0:
        wav = wav * (PEAK_GUARD / peak)
    if loudnorm:
        wav = wav / float(np.abs(wav).max())
    save_audio(target, wav, sr)
    return ""


def prepare_clips(
    sources: Mapping[str, Sequence[Path]],
    experiment: SvcExperiment,
    sampling_rate: int,
    *,
    loudnorm: bool = True,
    top_db: float = TRIM_TOP_DB,
    progress: ItemProgress | None = None,
) -> ClipsResult:
    """Resample, trim and normalise every source into ``dataset/44k/<speaker>/`` (see module doc)."""
    clips: dict[str, list[Path]] = {}
    skipped: list[SkippedClip] = []
    written = reused = 0
    total = sum(len(v) for v in sources.values())
    done = 0
    for speaker, files in sources.items():
        folder = experiment.dataset / safe_name(speaker)
        names = _clip_names(list(files))
        clips[speaker] = []
        for src in files:
            target = folder / names[src]
            if target.is_file():
                reused += 1
                clips[speaker].append(target)
            else:
                reason = _prepare_one(Path(src), target, sampling_rate, loudnorm, top_db)
                if reason:
                    log.info("skipped %s: %s", src, reason)
                    skipped.append(SkippedClip(Path(src), reason))
                else:
                    written += 1
                    clips[speaker].append(target)
            done += 1
            if progress is not None:
                progress(done, total, Path(src).name)
    return ClipsResult(
        clips={spk: tuple(sorted(paths)) for spk, paths in clips.items() if paths},
        written=written,
        reused=reused,
        skipped=tuple(skipped),
    )


def relative_entry(clip: Path, experiment: SvcExperiment) -> str:
    """4.1's filelist form of a clip: ``./dataset/44k/<speaker>/<name>.wav``."""
    return "./" + clip.relative_to(experiment.root).as_posix()


def split_lists(
    clips: Mapping[str, Sequence[Path]],
    experiment: SvcExperiment,
    *,
    val_per_speaker: int = VAL_PER_SPEAKER,
    seed: int = 1234,
) -> tuple[list[str], list[str], list[str]]:
    """Write ``filelists/train.txt`` and ``val.txt``; returns (train rows, val rows, warnings).

    Every speaker keeps at least one training clip (4.1 would leave a speaker with two clips
    none); a speaker with one clip has no validation clip.
    """
    rng = random.Random(seed)
    train: list[str] = []
    val: list[str] = []
    warnings = []
    for speaker, paths in sorted(clips.items()):
        rows = [relative_entry(p, experiment) for p in sorted(paths)]
        rng.shuffle(rows)
        n_val = min(val_per_speaker, max(0, len(rows) - 1))
        if n_val < val_per_speaker:
            warnings.append(
                f"speaker {speaker!r} has only {len(rows)} clip(s): {n_val} for validation, "
                f"{len(rows) - n_val} for training; more clips give a better model"
            )
        val += rows[:n_val]
        train += rows[n_val:]
    rng.shuffle(train)
    for path, rows in ((experiment.train_list, train), (experiment.val_list, val)):
        atomic_write_text(path, "".join(f"{r}\n" for r in rows))
    return train, val, warnings


def read_list(path: Path, experiment: SvcExperiment) -> list[Path]:
    """The clips of a 4.1 filelist, resolved against the experiment folder (``|`` fields ignored)."""
    out = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        entry = line.split("|", 1)[0].strip()
        if not entry:
            continue
        clip = Path(entry)
        clip = clip if clip.is_absolute() else experiment.root / clip
        if not clip.is_file():
            template = "{path}:{number}: {entry} does not exist; run the preprocessing again"
            said = Message("svc.data.err.no_clip", template, path=str(path), number=number, entry=entry)
            raise FileNotFoundError(said)
        out.append(clip)
    return out


def make_config(
    speakers: Sequence[str],
    *,
    template: SvcConfig | None = None,
    speech_encoder: str = "vec768l12",
    vol_embedding: bool = False,
) -> SvcConfig:
    """config.json for these speakers (ids in sorted order, like the filelists).

    Without ``template`` it is 4.1's template with ``ssl_dim``/``gin_channels``/``filter_channels``
    set from the encoder as 4.1 does; a given template keeps its own widths.
    """
    if template is None:
        config = SvcConfig()
        width = SSL_DIM_BY_ENCODER.get(speech_encoder)
        if width is None:
            template = "unknown content encoder {encoder!r}"
            raise ValueError(Message("svc.data.err.encoder", template, encoder=speech_encoder))
        config.model.ssl_dim = config.model.gin_channels = width
        if width != 256:  # 4.1 leaves filter_channels at 768 for the 256-d encoders
            config.model.filter_channels = width
    else:
        config = copy.deepcopy(template)
    config.spk = {name: i for i, name in enumerate(sorted(speakers))}
    config.model.n_speakers = len(config.spk)
    config.model.speech_encoder = speech_encoder
    config.model.vol_embedding = vol_embedding
    config.train.vol_aug = vol_embedding
    for section, key in (
        (config.model, "speech_encoder"),
        (config.model, "vol_embedding"),
        (config.train, "vol_aug"),
    ):
        section.absent = tuple(k for k in section.absent if k != key)
    return config


def speaker_pitch(clips: Sequence[Path], frame_seconds: float) -> PitchRange | None:
    """Voiced-f0 statistics over the ``.f0.npy`` files of ``clips`` (None when nothing is voiced)."""
    f0s, uvs = [], []
    for clip in clips:
        path = feature_paths(clip)["f0"]
        if path.is_file():
            f0, uv = read_f0(path)
            f0s.append(f0)
            uvs.append(uv)
    if not f0s:
        return None
    return measure(np.concatenate(f0s), np.concatenate(uvs), frame_seconds)
