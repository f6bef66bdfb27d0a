"""What every vocal separation engine shares (:mod:`app.data.preprocess.separate` builds on it): the
options the UI, API and CLI build, the errors, the :class:`Separator` interface and the registry of
engines (STYLE rule 8), and the stem and model names. Kept apart from the engines so that the
workflow module stays one readable file; :mod:`~app.data.preprocess.separate` names all of it too."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from app.messages import Message

# Folder under pretrained_models/ holding demucs' model repository (app.assets: "demucs-<name>").
DEMUCS_FOLDER = "demucs"
DEFAULT_MODEL = "htdemucs"
# The pretrained names demucs 4 publishes (demucs/remote/*.yaml); the *_q ones need `diffq`.
DEMUCS_MODELS: tuple[str, ...] = (
    "htdemucs",
    "htdemucs_ft",
    "htdemucs_6s",
    "hdemucs_mmi",
    "mdx",
    "mdx_extra",
    "mdx_q",
    "mdx_extra_q",
)
VOCALS = "vocals"
ACCOMPANIMENT = "accompaniment"
OUTPUT_FORMATS = ("wav", "flac")

# progress(fraction in [0, 1], message)
Progress = Callable[[float, str], None]


class SeparationError(RuntimeError):
    """Separation cannot run (missing or unusable model, bad options); the message says what to do."""


class MissingModelError(SeparationError, FileNotFoundError):
    """The weights of a separation model are not in ``pretrained_models/``."""


@dataclass(frozen=True)
class SeparateOptions:
    """How to separate; the UI, API and CLI all build this."""

    engine: str = "demucs"  # key of SEPARATORS
    model: str = DEFAULT_MODEL  # demucs model name (DEMUCS_MODELS) or a signature in the repo folder
    segment: float | None = None  # seconds per chunk; None = the model's own (htdemucs: 7.8 s, its maximum)
    overlap: float = 0.25  # fraction of a chunk shared with the next one (demucs default)
    shifts: int = 1  # random time shifts averaged (demucs default 1; more = slightly better, slower)
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1"
    output_format: str = "wav"  # "wav" (16-bit PCM) or "flac"

    def __post_init__(self) -> None:
        if self.segment is not None and self.segment <= 0:
            raise SeparationError(
                Message("sep.err.segment", "segment {segment} s must be positive", segment=self.segment)
            )
        if not 0.0 <= self.overlap < 1.0:
            raise SeparationError(
                Message("sep.err.overlap", "overlap {overlap} must be in [0, 1)", overlap=self.overlap)
            )
        if not 0 <= self.shifts <= 20:
            raise SeparationError(
                Message("sep.err.shifts", "shifts {shifts} must be between 0 and 20", shifts=self.shifts)
            )
        if self.output_format not in OUTPUT_FORMATS:
            template = "output format {format!r}: choose one of {choices}"
            message = Message(
                "sep.err.format", template, format=self.output_format, choices=str(OUTPUT_FORMATS)
            )
            raise SeparationError(message)


class Separator(Protocol):
    """A loaded separation model."""

    samplerate: int  # Hz the model works at
    channels: int  # audio channels the model expects (demucs: 2)

    def separate(
        self, wav: np.ndarray, progress: Callable[[float], None] | None = None
    ) -> dict[str, np.ndarray]:
        """Split ``wav`` of shape ``(T, C)`` at :attr:`samplerate` into stems, each ``(T, C)``.

        The result has a ``vocals`` and an ``accompaniment`` stem (plus any others the model has).
        """


SeparatorFactory = Callable[[SeparateOptions, Path], Separator]
SEPARATORS: dict[str, SeparatorFactory] = {}


def register_separator(engine: str) -> Callable[[SeparatorFactory], SeparatorFactory]:
    """Decorator adding a factory ``(options, pretrained_root) -> Separator`` under ``engine``."""

    def add(factory: SeparatorFactory) -> SeparatorFactory:
        SEPARATORS[engine] = factory
        return factory

    return add
