"""What every ASR engine shares: the options, one clip's transcript, the engine interface, the registry.

Engines (STYLE rule 8) register a factory ``(options, pretrained_root) -> ASREngine`` under a
stable id in :data:`ASR_ENGINES`: ``faster-whisper`` (:mod:`app.data.preprocess.transcribe`),
``sensevoice`` and ``paraformer-zh`` (:mod:`app.data.preprocess.asr_sherpa`). ``auto`` is not an
engine: :func:`app.data.preprocess.transcribe.choose_engine` turns it into one per language.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from app.data.filelist import LANGUAGES
from app.messages import Message

# Every engine here works on 16 kHz audio (Whisper, SenseVoice and Paraformer were trained on it).
ASR_RATE = 16000
# Languages offered: "auto" (detected per clip) and the ones GPT-SoVITS trains on.
ASR_LANGUAGES: tuple[str, ...] = ("auto", *LANGUAGES)
# faster-whisper's precisions ("auto": float16 on a GPU, int8 on CPU).
PRECISIONS: tuple[str, ...] = ("auto", "float32", "float16", "int8")
DEFAULT_MODEL = "default"  # each engine's default model (see the engine's resolver)
AUTO_ENGINE = "auto"  # pick the engine from the language and the installed models
_WHITESPACE = re.compile(r"\s+")

# progress(fraction in [0, 1], message)
Progress = Callable[[float, str], None]


class TranscriptionError(RuntimeError):
    """Transcription cannot run (missing model, bad options); the message says what to do."""


class MissingModelError(TranscriptionError, FileNotFoundError):
    """The ASR model asked for is not in ``pretrained_models/``."""


@dataclass(frozen=True)
class TranscribeOptions:
    """How to transcribe; the UI, API and CLI all build this."""

    engine: str = (
        AUTO_ENGINE  # key of ASR_ENGINES, or "auto" (choose_engine: by language and what is installed)
    )
    model: str = DEFAULT_MODEL  # "default", a Whisper size ("large-v3"), or a model folder
    language: str = "auto"  # "auto" or zh / en / ja / ko / yue
    precision: str = "auto"  # faster-whisper only: auto / float32 / float16 / int8
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1"
    vad_filter: bool = True  # faster-whisper only: drop non-speech with Silero VAD before decoding
    beam_size: int = 5  # faster-whisper only: beam search width (upstream uses 5)
    no_speech_threshold: float = 0.6  # faster-whisper only: segments more likely silence are dropped
    punctuation: bool = True  # SenseVoice: its ITN mode; Paraformer: the CT-Transformer model when installed
    speaker: str | None = None  # speaker name in the list; None = the input folder's name

    def __post_init__(self) -> None:
        if self.language not in ASR_LANGUAGES:
            template = "language {language!r}: choose one of {choices}"
            said = Message(
                "asr.err.language", template, language=self.language, choices=", ".join(ASR_LANGUAGES)
            )
            raise TranscriptionError(said)
        if self.precision not in PRECISIONS:
            template = "precision {precision!r}: choose one of {choices}"
            said = Message(
                "asr.err.precision", template, precision=self.precision, choices=", ".join(PRECISIONS)
            )
            raise TranscriptionError(said)
        if not 1 <= self.beam_size <= 20:
            template = "beam size {beam} must be between 1 and 20"
            raise TranscriptionError(Message("asr.err.beam", template, beam=self.beam_size))
        if not 0.0 < self.no_speech_threshold <= 1.0:
            template = "no-speech threshold {threshold} must be in (0, 1]"
            raise TranscriptionError(
                Message("asr.err.no_speech", template, threshold=self.no_speech_threshold)
            )


@dataclass(frozen=True)
class Transcript:
    """What an engine heard in one clip."""

    text: str  # transcript, one line, "" when nothing was said
    language: str  # language id spoken ("en", "zh", ... or another Whisper code such as "de")
    dropped: int  # segments dropped by the hallucination guards


class ASREngine(Protocol):
    """A loaded speech recogniser."""

    description: str  # which model runs, for results and the UI
    multilingual: bool  # False for English-only models

    def supports(self, language: str) -> bool:
        """Whether the model can be told to transcribe ``language`` (an id such as ``yue``)."""

    def transcribe(self, wav: np.ndarray, language: str | None) -> Transcript:
        """Transcribe ``wav`` (float32 mono at :data:`ASR_RATE`, shape ``(T,)``); ``language`` None = detect."""


EngineFactory = Callable[[TranscribeOptions, Path], ASREngine]
ASR_ENGINES: dict[str, EngineFactory] = {}


def register_engine(engine: str) -> Callable[[EngineFactory], EngineFactory]:
    """Decorator adding a factory ``(options, pretrained_root) -> ASREngine`` under ``engine``."""

    def add(factory: EngineFactory) -> EngineFactory:
        ASR_ENGINES[engine] = factory
        return factory

    return add


def clean_text(text: str) -> str:
    """One-line transcript for a ``.list``: whitespace collapsed, ``|`` (upstream's separator) removed."""
    return _WHITESPACE.sub(" ", text.replace("|", " ")).strip()
