"""Model inputs of one synthesis: text segments, the prompt, the reference, and the whole plan.

These are what the pipeline's stages pass to each other; building them from a request is the
planner's job (:mod:`app.infer.planning`), and tests or benchmarks may build them directly from
fixture tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from app.infer.batching import plan_batches
from app.models.gpt.sampling import SamplingOptions
from app.models.sovits.cfm_model import CfmPrompt
from app.models.sovits.model import Timbre

# SoVITS decodes with this prior noise scale (upstream's decode default, not exposed by its UIs).
NOISE_SCALE = 0.5


@dataclass(frozen=True)
class TextInput:
    """Phones and BERT features of one piece of text."""

    # The text as read (after punctuation was added).
    text: str
    # Phone ids in the model's symbol table.
    phones: tuple[int, ...]
    # (bert_dim, len(phones)) float32: BERT features of Chinese parts, zeros elsewhere.
    bert: torch.Tensor
    # (word or character, phones it was read as) in phone order, summing to len(phones)
    # (app.text.words); () when unknown (word timestamps then give the whole text one span).
    words: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        if self.bert.ndim != 2 or self.bert.shape[1] != len(self.phones):
            raise ValueError(
                f"BERT features of shape {tuple(self.bert.shape)} do not fit {len(self.phones)} phones"
            )
        if self.words and sum(n for _, n in self.words) != len(self.phones):
            raise ValueError(f"word phone counts {self.words} do not add up to {len(self.phones)} phones")


@dataclass(frozen=True)
class ReferenceFeatures:
    """What the models need from one reference clip (cached per clip)."""

    # (T,) int64 semantic tokens of the clip + 0.3 s pad (the GPT prompt); None until computed
    # (reference-free requests never compute them).
    prompt_tokens: torch.Tensor | None
    # (1, 1025, F) linear spectrogram of the 32 kHz clip after upstream's level rule (timbre input).
    spectrogram: torch.Tensor
    # v2Pro*: (1, sv_dim) speaker-verification embedding of the same 32 kHz clip resampled to
    # 16 kHz (part of the timbre); None for v1/v2 models.
    sv_embedding: torch.Tensor | None = None
    # v3/v4: (1, 100, F) normalised log-mel of the clip at the model's mel rate (the frames the
    # flow matching continues); None for the VITS versions.
    mel: torch.Tensor | None = None


@dataclass(frozen=True)
class SynthesisPlan:
    """Everything the token and audio stages need; built from a request or from fixture inputs."""

    # Target segments in order.
    segments: tuple[TextInput, ...]
    # The prompt text's phones/BERT (prepended to each segment's), None in reference-free mode.
    prompt: TextInput | None
    # (T,) semantic tokens of the reference (the GPT prompt), None in reference-free mode.
    prompt_tokens: torch.Tensor | None
    # Timbre of the reference (and extra references), on the pipeline's device; for v3/v4 the
    # reference as the flow matching continues it (timbre, prompt features and mel).
    timbre: Timbre | CfmPrompt
    # GPT sampling; its seed is replaced per batch by one derived from ``seed``.
    sampling: SamplingOptions
    # Seed of the whole synthesis.
    seed: int
    # Speaking-rate factor of the SoVITS decoder.
    speed: float = 1.0
    # Silence after each segment, in seconds.
    pause_seconds: float = 0.3
    # Segments decoded together by the GPT.
    batch_size: int = 1
    # SoVITS prior noise scale (VITS versions).
    noise_scale: float = NOISE_SCALE
    # Flow-matching steps per segment (v3/v4).
    sample_steps: int = 32
    # Segment indices of each GPT batch (see app.infer.batching); None: text order, batch_size each.
    batches: tuple[tuple[int, ...], ...] | None = None
    # Align each segment's tokens to its phones and report word/character times (TTSResult.words).
    word_timestamps: bool = False

    def batch_rows(self) -> tuple[tuple[int, ...], ...]:
        """The GPT batches: ``batches`` when set, else consecutive segments ``batch_size`` at a time."""
        if self.batches is not None:
            return self.batches
        return plan_batches([0] * len(self.segments), self.batch_size, split_bucket=False)
