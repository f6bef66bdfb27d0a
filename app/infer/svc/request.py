"""What a singing voice conversion takes and gives: :class:`SvcRequest` -> :class:`SvcResult`.

UI, CLI and API build the same request; :class:`app.infer.svc.pipeline.SVCPipeline` runs it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.audio.pitch_range import PitchRange
from app.models.svc.synthesizer import DEFAULT_NOISE_SCALE, DEFAULT_SEED

# progress(fraction in [0, 1], message)
Progress = Callable[[float, str], None]


class SvcInputError(ValueError):
    """The input or the options cannot be converted; the message says why and what to change."""


class SvcModelError(ValueError):
    """A model, config or helper file is missing or unusable; the message names it."""


@dataclass(frozen=True)
class SvcRequest:
    """One conversion (the steps: :mod:`app.infer.svc.pipeline`)."""

    audio: Path | bytes  # the song or speech, any readable format
    model: Path  # G_*.pth (training or compressed)
    config: Path | None = None  # config.json; None = the one beside the model
    speaker: str | None = None  # a name of config.json's spk map; None = the first
    mix: tuple[
        tuple[str, float], ...
    ] = ()  # speaker mix (name, weight) instead of one speaker; weights normalised
    transpose: float = 0.0  # semitones (12 = an octave up)
    f0_method: str = "pm"  # app.audio.pitch tracker id (4.1's inference default)
    f0_threshold: float | None = None  # tracker's voicing threshold (None: its default)
    auto_f0: bool = False  # let the model predict the pitch (speech only; makes singing go off-key)
    noise_scale: float = DEFAULT_NOISE_SCALE  # prior noise (4.1 default 0.4)
    seed: int = DEFAULT_SEED  # noise seed (4.1's fixed 52468)
    slice_db: float = -40.0  # silence threshold for slicing, dBFS (4.1 -40; -30 noisy, -50 breathy)
    pad_seconds: float = 0.5  # silence added around each piece (4.1 default) against edge noise
    max_slice_seconds: float = 30.0  # longest piece the model gets (an unbroken song is split)
    crossfade_seconds: float = 0.1  # overlap of consecutive pieces of a long stretch
    cluster_ratio: float = 0.0  # 0..1 pull toward the speaker's training features (needs the cluster model)
    cluster_model: Path | None = None  # kmeans_10000.pt; None = beside the model
    loudness_mix: float = 1.0  # 1 = the output's own loudness, 0 = follow the input's envelope
    check_range: bool = True  # refuse inputs far outside the speaker's trained pitch range
    separate: bool = False  # separate the vocals first
    mix_accompaniment: bool = False  # with separate: mix the accompaniment back into the output
    separator_engine: str = "demucs"  # app.data.preprocess.separate engine
    separator_model: str = "htdemucs"  # its model
    # "fp32" (so-vits-svc's numbers) or "fast": the content encoder and the NSF decoder in bfloat16
    # where the device has native bf16 (CUDA, AVX512-BF16/AMX CPUs; elsewhere as fp32).
    precision: str = "fp32"


@dataclass(frozen=True)
class SvcResult:
    """A converted song."""

    audio: np.ndarray  # (T,) converted voice, or (T, C) with the accompaniment mixed back; float32
    sample_rate: int  # Hz (the model's)
    speaker: str  # the speaker (or "mix")
    slices: int  # pieces the model converted
    longest_piece_seconds: float  # longest input one model call got (bounded by max_slice_seconds + 2 pads)
    input_pitch: PitchRange | None  # voiced pitch of the input before transposing
    vocals: np.ndarray | None = None  # converted vocals alone (when the output has the accompaniment)
    warnings: tuple[str, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage


def default_output_name(source: str, transpose_st: float, speaker: str, ext: str = "wav") -> str:
    """4.1's result name: ``<input>_<transpose>key_<speaker>.<ext>``."""
    stem = Path(source).stem or "input"
    return f"{stem}_{transpose_st:g}key_{speaker}.{ext}"
