"""The interfaces of the token and audio stages, as the planner and the decoding loop see them.

They live apart from every implementation so that :mod:`app.infer.runner` and
:mod:`app.infer.planning` depend on what a stage does, never on the pipeline that composes the
stages (the runner once borrowed the whole pipeline to call two of its methods back).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

import numpy as np
import torch

from app.infer.inputs import ReferenceFeatures, TextInput
from app.infer.request import DEFAULT_SAMPLE_STEPS, TTSRequest
from app.infer.streaming import ChunkDecoder, StreamOptions
from app.models.gpt.sampling import SamplingOptions, TokenChunk
from app.models.sovits.cfm_model import CfmPrompt
from app.models.sovits.model import Timbre

# What the audio stage decodes with: the reference's timbre (VITS) or the whole prompt the flow
# matching continues (v3/v4); built once per request by :meth:`AudioStage.voice`.
Voice = Timbre | CfmPrompt
# (spectrogram (1, 1025, F), speaker embedding (1, sv_dim) or None) of one reference clip.
TimbreInputs = tuple[torch.Tensor, torch.Tensor | None]


class TokenStage(Protocol):
    """Stage 3: rows of (phones (n_i,), BERT (bert_dim, n_i)) -> semantic tokens, decoded together."""

    def __call__(
        self,
        phones: Sequence[Sequence[int] | torch.Tensor],
        berts: Sequence[torch.Tensor],
        prompt_tokens: torch.Tensor | None,
        options: SamplingOptions,
        chunk_tokens: int | None = None,
    ) -> Iterator[TokenChunk]: ...


class TokenAligner(Protocol):
    """Stage 3 looked back at: a row's (phones (n,), BERT (bert_dim, n)), the prompt tokens and the
    (N,) tokens generated -> (N, n) attention of each token over the row's phones."""

    def __call__(
        self,
        phones: Sequence[int],
        bert: torch.Tensor,
        prompt_tokens: torch.Tensor | None,
        tokens: torch.Tensor,
    ) -> torch.Tensor: ...


class SegmentDecoder(Protocol):
    """Stage 4 on one whole segment: (n,) tokens + the segment's phones -> float32 audio."""

    def __call__(
        self,
        tokens: torch.Tensor,
        phones: Sequence[int] | torch.Tensor,
        timbre: Voice,
        speed: float = 1.0,
        noise_scale: float = 0.5,
        generator: torch.Generator | None = None,
        sample_steps: int = DEFAULT_SAMPLE_STEPS,
    ) -> np.ndarray: ...


class AudioStage(Protocol):
    """Stage 4 of one model family: what it needs from the reference and how it makes audio.

    One implementation per family (the VITS decoder; flow matching + vocoder), chosen by the
    SoVITS file's version; a new family (another decoder, another vocoder) is a new class.
    """

    # The SoVITS version ("v2", "v2ProPlus", "v4", ...): named in refusals.
    version: str
    # Output rate in Hz.
    sample_rate: int
    # Where the decoder runs (the per-segment noise generators are made there).
    device: torch.device
    # Whether a segment can be decoded in token chunks while the GPT still produces it.
    streams_token_chunks: bool

    def sample_steps(self, requested: int | None) -> int:
        """Flow-matching steps for a request's ``sample_steps`` (refuses what the family cannot use)."""
        ...

    def check(self, request: TTSRequest) -> None:
        """Refuse, before any work, a request this family cannot honour (:class:`TTSInputError`)."""
        ...

    def reference_mel(self, wav32: np.ndarray) -> torch.Tensor | None:
        """The mel of a 32 kHz reference clip when the family continues it, else None."""
        ...

    def voice(
        self, features: ReferenceFeatures, extras: Sequence[TimbreInputs], prompt: TextInput | None
    ) -> Voice:
        """What :meth:`decode` takes from the reference (and extra clips, and the prompt text)."""
        ...

    def decode(
        self,
        tokens: torch.Tensor,
        phones: Sequence[int] | torch.Tensor,
        timbre: Voice,
        speed: float,
        noise_scale: float,
        generator: torch.Generator | None,
        sample_steps: int,
    ) -> np.ndarray:
        """(n,) semantic tokens + the segment's phones -> (samples,) float32 at :attr:`sample_rate`."""
        ...

    def chunk_decoder(
        self,
        phones: Sequence[int],
        timbre: Voice,
        noise_scale: float,
        generator: torch.Generator | None,
        options: StreamOptions,
    ) -> ChunkDecoder:
        """An incremental decoder of one segment (only when :attr:`streams_token_chunks`)."""
        ...
