"""What a synthesis is asked to do and what it gives back; the UI, the CLI and the HTTP API build these.

- :class:`PipelineSpec`: which models to load (cache key of loaded pipelines).
- :class:`TTSRequest`: one synthesis (reference, texts, sampling, output shaping).
- :class:`TTSResult`: the audio and everything needed to reproduce it (seed, segments, reference use).
- :class:`AudioChunk`: one piece of streamed audio.

Errors a user can fix derive from :class:`TTSInputError`; models that cannot be loaded raise
:class:`ModelLoadError`. Both are ``ValueError`` s whose message says what was wrong and what to do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from app.messages import Message
from app.text import LanguageMode, SplitMethod, UnsupportedLanguage

# Precision modes of a pipeline: "fp32" is the parity path; "fast" trades exactness for speed.
PRECISIONS = ("fp32", "fast")
# Request limits: wide enough for every sensible use, narrow enough to catch typos.
SPEED_RANGE = (0.25, 4.0)  # upstream's UI allows 0.6-1.65
MAX_PAUSE_SECONDS = 10.0
MAX_BATCH_SIZE = 64  # rows decoded together by the GPT (upstream's UI allows 200)
MAX_SEED = 2**32 - 1
MAX_EXTRA_REFERENCES = 16
SAMPLE_STEPS_RANGE = (4, 128)  # flow-matching steps of v3/v4 (upstream offers 4, 8, 16, 32, 64, 128)
# api_v2's sample_steps default, which its clients send whatever the model; other models accept it.
DEFAULT_SAMPLE_STEPS = 32

# A reference clip: a path, or the bytes of an audio file (an upload).
AudioSource = str | os.PathLike | bytes


class TTSError(ValueError):
    """Base of every error the TTS pipeline reports to a user."""


class TTSInputError(TTSError):
    """The request cannot be synthesised as given (text, reference, parameters).

    ``field``: the :class:`TTSRequest` field at fault, when one is (interfaces name it).
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        # What the pipeline noted before it refused (skipped letters, a trimmed or clipped
        # reference), one sentence each: interfaces show them with the error.
        self.notes: tuple[str, ...] = ()


class ReferenceAudioError(TTSInputError):
    """The reference clip cannot be used (unreadable, too short, silent, no speech)."""

    def __init__(self, message: str, field: str | None = "reference") -> None:
        super().__init__(message, field)


class ModelLoadError(TTSError):
    """A model file or a base model folder is missing, corrupt, or does not fit the others."""


@dataclass(frozen=True)
class PipelineSpec:
    """Which models a :class:`~app.infer.pipeline.TTSPipeline` loads; also the key of loaded pipelines."""

    # GPT (text -> semantic tokens) checkpoint: upstream ``.ckpt`` (GPT_weights*/ or pretrained).
    gpt_path: Path
    # SoVITS (tokens -> audio) generator: upstream ``.pth`` (SoVITS_weights*/ or pretrained s2G*.pth).
    sovits_path: Path
    # Folder of chinese-hubert-base (reference prompt tokens); loaded on first use.
    hubert_dir: Path
    # Folder of chinese-roberta-wwm-ext-large (BERT features of Chinese text); loaded on first use.
    bert_dir: Path
    # Torch device string: "cpu", "cuda", "cuda:1".
    device: str = "cpu"
    # "fp32" (default, numerically the upstream path) or "fast" (see app.infer.precision).
    precision: str = "fp32"
    # ERes2NetV2 speaker-verification checkpoint (v2Pro/v2ProPlus SoVITS only); None: upstream's
    # place, ``sv/pretrained_eres2netv2w24s4ep4.ckpt`` in the pretrained folder (hubert_dir's parent).
    sv_path: Path | None = None

    def __post_init__(self) -> None:
        for name in ("gpt_path", "sovits_path", "hubert_dir", "bert_dir"):
            object.__setattr__(self, name, Path(getattr(self, name)))
        if self.sv_path is not None:
            object.__setattr__(self, "sv_path", Path(self.sv_path))
        if self.precision not in PRECISIONS:
            template = "unknown precision {precision!r}: use one of {choices}"
            choices = ", ".join(PRECISIONS)
            raise TTSInputError(
                Message("weights.err.precision", template, precision=self.precision, choices=choices)
            )


# The request's fields as messages name them: the API's names in English, with the page's words
# for them in the other languages (app/ui/messages/infer.py).
FIELD_NAMES = {
    "text_language": Message("tts.field.text_language", "text_language"),
    "prompt_language": Message("tts.field.prompt_language", "prompt_language"),
    "seed": Message("tts.field.seed", "seed"),
    "top_k": Message("tts.field.top_k", "top_k"),
    "top_p": Message("tts.field.top_p", "top_p"),
    "temperature": Message("tts.field.temperature", "temperature"),
    "repetition_penalty": Message("tts.field.repetition_penalty", "repetition_penalty"),
    "speed": Message("tts.field.speed", "speed"),
    "pause_seconds": Message("tts.field.pause_seconds", "pause_seconds"),
    "batch_size": Message("tts.field.batch_size", "batch_size"),
    "batch_threshold": Message("tts.field.batch_threshold", "batch_threshold"),
    "sample_steps": Message("tts.field.sample_steps", "sample_steps"),
}


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if low <= value <= high:
        return
    fields = {"name": FIELD_NAMES[name], "low": low, "high": high, "value": value}
    if name == "repetition_penalty":
        template = "{name} must be between {low:g} and {high:g}, got {value:g} (1.0 disables it)"
        raise TTSInputError(Message("tts.req.range_penalty", template, **fields), field=name)
    template = "{name} must be between {low:g} and {high:g}, got {value:g}"
    raise TTSInputError(Message("tts.req.range", template, **fields), field=name)


@dataclass(frozen=True)
class TTSRequest:
    """One synthesis; defaults are upstream GPT-SoVITS's web UI defaults (v2)."""

    # Text to speak. Long texts are cut into segments (``split_method``) synthesised one by one.
    text: str
    # Reference clip whose voice is cloned: 3-10 s is used as is; longer is trimmed at pauses.
    reference: AudioSource
    # Language mode of ``text``: all_zh, en, all_ja, all_ko, all_yue, zh, ja, ko, yue, auto, auto_yue.
    text_language: str = "auto"
    # What the reference clip says; empty means reference-free mode (timbre only, no prompt).
    prompt_text: str = ""
    # Language mode of ``prompt_text``.
    prompt_language: str = "auto"
    # Ignore ``prompt_text`` and clone the timbre only (upstream's "ref-free" mode).
    reference_free: bool = False
    # More clips of the same voice: their timbre vectors are averaged with the main reference's.
    extra_references: tuple[AudioSource, ...] = ()
    # Sentence splitting: cut0 (none) .. cut5 (every punctuation mark); see app.text.SplitMethod.
    split_method: str = SplitMethod.FOUR_SENTENCES.value
    # GPT sampling: keep the k most likely tokens.
    top_k: int = 15
    # GPT sampling: nucleus filter (1.0 = off).
    top_p: float = 1.0
    # GPT sampling: logit temperature (values near 0 approach greedy decoding).
    temperature: float = 1.0
    # GPT sampling: penalty on tokens already present (1.0 = off; upstream 1.35).
    repetition_penalty: float = 1.35
    # Speaking rate (> 1 faster); applied in the SoVITS decoder as upstream does.
    speed: float = 1.0
    # Silence after every segment, in seconds (upstream 0.3).
    pause_seconds: float = 0.3
    # Random seed of GPT sampling and SoVITS noise; None (or -1) draws one, reported in the result.
    seed: int | None = None
    # Segments decoded together by the GPT (1 = one by one, as upstream's classic UI).
    batch_size: int = 1
    # With batch_size > 1: batch segments of similar length together (upstream's split_bucket);
    # the audio keeps the text's order either way.
    split_bucket: bool = True
    # Smallest ratio of a batch's middle segment length to its mean (upstream's batch_threshold).
    batch_threshold: float = 0.75
    # Flow-matching steps of v3/v4 models (more: finer, slower); None: the model's default.
    # Other models have no such step, and refuse a value.
    sample_steps: int | None = None
    # Align each segment's GPT tokens to its phones and report word/character times
    # (TTSResult.words; app.infer.alignment). Costs one more GPT pass per segment.
    word_timestamps: bool = False

    def __post_init__(self) -> None:
        self._check_inputs()
        self._check_sampling()
        _check_range("temperature", self.temperature, 0.0, 5.0)
        _check_range("repetition_penalty", self.repetition_penalty, 0.01, 5.0)
        _check_range("speed", self.speed, *SPEED_RANGE)
        _check_range("pause_seconds", self.pause_seconds, 0.0, MAX_PAUSE_SECONDS)
        _check_range("batch_size", self.batch_size, 1, MAX_BATCH_SIZE)
        _check_range("batch_threshold", self.batch_threshold, 0.0, 1.0)
        if self.sample_steps is not None:
            if isinstance(self.sample_steps, bool) or int(self.sample_steps) != self.sample_steps:
                template = "{name} must be a whole number, got {value!r}"
                fields = {"name": FIELD_NAMES["sample_steps"], "value": self.sample_steps}
                raise TTSInputError(Message("tts.req.whole", template, **fields), field="sample_steps")
            _check_range("sample_steps", self.sample_steps, *SAMPLE_STEPS_RANGE)

    def _check_inputs(self) -> None:
        """The text, the references, the languages and the split method (normalised in place)."""
        if not isinstance(self.text, str):
            template = "text must be a string, not {type}"
            raise TTSInputError(Message("tts.req.text_type", template, type=type(self.text).__name__), "text")
        if not self.text.strip():
            template = "the text is empty: enter something to read"
            raise TTSInputError(Message("tts.req.text_empty", template), field="text")
        if not isinstance(self.reference, (str, os.PathLike, bytes)):
            template = "reference must be a file path or the bytes of an audio file"
            raise TTSInputError(Message("tts.req.reference_type", template), field="reference")
        for name in ("text_language", "prompt_language"):
            value = getattr(self, name)
            try:
                object.__setattr__(self, name, LanguageMode.parse(value).value)
            except UnsupportedLanguage:
                template = "{name}: unknown language mode {value!r}: use one of {choices} (or all_en)"
                choices = ", ".join(m.value for m in LanguageMode)
                fields = {"name": FIELD_NAMES[name], "value": value, "choices": choices}
                raise TTSInputError(Message("tts.req.language", template, **fields), field=name) from None
        try:
            object.__setattr__(self, "split_method", SplitMethod.parse(self.split_method).value)
        except ValueError:
            template = "unknown text split method {value!r}: use one of {choices}"
            choices = ", ".join(f"{m.value} ({m.name.lower()})" for m in SplitMethod)
            message = Message("tts.req.split_method", template, value=self.split_method, choices=choices)
            raise TTSInputError(message, field="split_method") from None
        object.__setattr__(self, "extra_references", tuple(self.extra_references))
        if len(self.extra_references) > MAX_EXTRA_REFERENCES:
            template = "at most {most} extra reference clips are used"
            message = Message("tts.req.extra_references", template, most=MAX_EXTRA_REFERENCES)
            raise TTSInputError(message, field="extra_references")

    def _check_sampling(self) -> None:
        """The seed (-1 made None) and the GPT's top_k and top_p."""
        if self.seed == -1:
            object.__setattr__(self, "seed", None)
        if self.seed is not None and not 0 <= int(self.seed) <= MAX_SEED:
            template = "{name} must be between 0 and {most} (or -1 for a random one)"
            message = Message("tts.req.seed", template, name=FIELD_NAMES["seed"], most=MAX_SEED)
            raise TTSInputError(message, field="seed")
        if int(self.top_k) < 1:
            template = "{name} must be at least 1, got {value}"
            message = Message("tts.req.top_k", template, name=FIELD_NAMES["top_k"], value=self.top_k)
            raise TTSInputError(message, field="top_k")
        if not 0.0 < self.top_p <= 1.0:
            template = "{name} must be in (0, 1], got {value:g}"
            message = Message("tts.req.top_p", template, name=FIELD_NAMES["top_p"], value=self.top_p)
            raise TTSInputError(message, field="top_p")

    @property
    def uses_prompt(self) -> bool:
        """True when the prompt text conditions the GPT (not reference-free, prompt not blank)."""
        return not self.reference_free and bool(self.prompt_text.strip())

    def parameters(self) -> dict[str, object]:
        """Every field except the audio (for history files and logs); references named, not copied."""
        out: dict[str, object] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if name == "reference":
                value = _describe_source(value)
            elif name == "extra_references":
                value = [_describe_source(v) for v in value]
            out[name] = value
        return out


def _describe_source(source: AudioSource) -> str:
    if isinstance(source, bytes):
        return f"<{len(source)} bytes>"
    return str(source)


@dataclass(frozen=True)
class ReferenceInfo:
    """How the reference clip was used."""

    # Length of the clip as given, in seconds.
    original_seconds: float
    # The part used, in seconds from the start of the clip (0 and original_seconds when untrimmed).
    start_seconds: float
    end_seconds: float
    # True when the clip was longer than 10 s and cut to its best span between pauses.
    trimmed: bool
    # The prompt text given to the GPT ("" in reference-free mode).
    prompt_text: str
    # True when no prompt conditioned the GPT (asked for, or forced because the text could not
    # be matched to a trimmed clip).
    reference_free: bool
    # True when the clip's features came from the cache (it was not encoded again).
    cached: bool
    # sha256 of the clip's file bytes (the cache key).
    sha256: str


@dataclass(frozen=True)
class Timings:
    """Wall time of each stage of one synthesis, in seconds."""

    # Text normalisation, phones and BERT features (prompt + target).
    text: float = 0.0
    # Reference loading, trimming, HuBERT + codes, spectrogram (0 when cached).
    reference: float = 0.0
    # GPT decoding (prefill included).
    gpt: float = 0.0
    # SoVITS decoding.
    sovits: float = 0.0
    # Whole call.
    total: float = 0.0
    # Semantic tokens generated, all segments.
    tokens: int = 0
    # Time until the first audio was available (streaming), else the total.
    first_audio: float = 0.0


@dataclass(frozen=True)
class WordTime:
    """When one word (or character, for Chinese) is spoken."""

    # The word as read (normalised: numbers spelt out, full-width marks made ASCII).
    text: str
    # Seconds from the start of its segment's audio.
    start: float
    end: float


@dataclass(frozen=True)
class TTSResult:
    """The synthesised audio and how it was made."""

    # Mono samples, int16 (upstream's output format: float * 32767).
    audio: np.ndarray
    # Samples per second (32000 for v1/v2 models).
    sample_rate: int
    # The seed used (drawn when the request had none).
    seed: int
    # The text segments synthesised, in order.
    segments: tuple[str, ...]
    # Semantic tokens of each segment, (n,) int64.
    tokens: tuple[torch.Tensor, ...]
    # How the reference was used.
    reference: ReferenceInfo
    # Things the user should know (trimming, forced reference-free mode), one sentence each.
    notes: tuple[str, ...]
    # Stage timings.
    timings: Timings = field(default_factory=Timings)
    # With word_timestamps: the words of each segment with their times (punctuation left out);
    # () otherwise.
    words: tuple[tuple[WordTime, ...], ...] = ()

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.audio) / self.sample_rate


@dataclass(frozen=True)
class AudioChunk:
    """A piece of streamed audio; concatenating every chunk's ``audio`` gives the whole output."""

    # Mono int16 samples (may be empty for the last chunk).
    audio: np.ndarray
    # Samples per second.
    sample_rate: int
    # Index of the text segment the samples belong to (pause samples belong to the segment before).
    segment: int
    # Number of segments of the whole request (for progress).
    segments: int
    # True for the last chunk of a segment (its pause included).
    segment_done: bool
    # Set on the very last chunk only: the complete result (audio, seed, tokens, timings).
    result: TTSResult | None = None
    # The request's notes (as TTSResult.notes), on every chunk: a stream's first chunk has them.
    notes: tuple[str, ...] = ()
