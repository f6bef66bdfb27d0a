"""The one TTS pipeline: reference clip + text -> speech in the reference's voice.

:class:`TTSPipeline` composes the four stages of :mod:`app.infer.stages` for one loaded model pair
and serialises their use:

1. text (:class:`~app.infer.stages.text.TextStage`): prompt text and target segments -> phones + BERT.
2. reference (:class:`~app.infer.stages.reference.ReferenceStage`): the clip -> GPT prompt tokens and
   timbre inputs, cached per clip.
3. tokens (:meth:`TTSPipeline.generate_tokens`): the GPT decodes each segment on phones = prompt
   phones + segment phones (BERT likewise), prompted with the reference tokens; ``batch_size``
   segments share one batched decoding loop.
4. audio (:attr:`TTSPipeline.audio`, chosen by the SoVITS version): the VITS decoder (v1-v2ProPlus)
   or flow matching + vocoder (v3/v4) decodes each segment's tokens with the segment's phones (not
   the prompt's); the runner divides a segment louder than full scale by its peak, appends
   ``pause_seconds`` of silence and yields int16 audio.

:meth:`TTSPipeline.plan` runs stages 1-2 (:mod:`app.infer.planning`), :meth:`TTSPipeline.run`
stages 3-4 (:mod:`app.infer.runner`); :meth:`TTSPipeline.synthesize` returns the whole result and
:meth:`TTSPipeline.stream` yields audio as soon as the first segment (or, with ``token_chunks``,
the first tokens) is decoded. Each stage is callable on its own, so parity can be checked with
fixture inputs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from app.devices import release_free_memory
from app.infer.inputs import ReferenceFeatures, SynthesisPlan, TextInput
from app.infer.loading import load_bert, load_hubert, load_models
from app.infer.planning import Planner
from app.infer.precision import PrecisionPlan, pack_gpt, plan_for
from app.infer.reference import ReferenceClip
from app.infer.request import (
    DEFAULT_SAMPLE_STEPS,
    AudioChunk,
    AudioSource,
    ModelLoadError,
    PipelineSpec,
    ReferenceInfo,
    Timings,
    TTSRequest,
    TTSResult,
)
from app.infer.runner import Runner
from app.infer.stages.audio import CFM_STEP_CHOICES, DEFAULT_CFM_STEPS, CfmAudio, VitsAudio, audio_stage
from app.infer.stages.base import TimbreInputs, Voice
from app.infer.stages.reference import ReferenceStage
from app.infer.stages.text import TextStage
from app.infer.stages.tokens import generate_tokens, token_attention, token_limit
from app.infer.streaming import StreamOptions
from app.messages import Message
from app.models.encoders.hubert import HubertEncoder
from app.models.encoders.sv import SpeakerEncoder
from app.models.gpt.sampling import SamplingOptions, TokenChunk
from app.models.sovits.cfm_model import CfmPrompt, CfmSoVITS
from app.models.sovits.model import SoVITS, Timbre
from app.models.upstream.gpt import GPTFile
from app.models.vocoders import Vocoder

if TYPE_CHECKING:
    from app.models.encoders.bert import BertFeaturizer

# The flow-matching step defaults and choices live with the audio stage; the UI reads them here.
__all__ = ["CFM_STEP_CHOICES", "DEFAULT_CFM_STEPS", "TTSPipeline"]

log = logging.getLogger(__name__)


class TTSPipeline:
    """GPT + SoVITS (+ HuBERT and BERT, loaded on first use) for one :class:`PipelineSpec`.

    Thread-safe: one synthesis runs at a time per pipeline.
    """

    def __init__(
        self,
        spec: PipelineSpec,
        gpt: GPTFile,
        sovits: SoVITS | CfmSoVITS,
        speaker: SpeakerEncoder | None = None,
        vocoder: Vocoder | None = None,
    ) -> None:
        self.spec = spec
        self.device = torch.device(spec.device)
        self.gpt = gpt.model
        self.gpt_version = gpt.version
        # Tokens per segment; tests of barely trained models lower it.
        self.max_new_tokens = token_limit(gpt.max_sec)
        self.sovits = sovits
        # v2Pro*: the speaker-verification encoder whose embedding joins the timbre.
        self.speaker = speaker
        if sovits.config.is_pro and (speaker is None or speaker.dim != sovits.config.sv_dim):
            fields = {"version": sovits.config.version, "expected": sovits.config.sv_dim}
            if speaker is None:
                template = "{version} SoVITS needs a {expected}-wide speaker embedding; got none"
                raise ModelLoadError(Message("pipeline.err.no_sv", template, **fields))
            template = "{version} SoVITS needs a {expected}-wide speaker embedding; got a {dim}-wide one"
            raise ModelLoadError(Message("pipeline.err.sv_width", template, **fields, dim=speaker.dim))
        self.version = sovits.config.version
        # v3/v4: flow matching makes a mel, a separate vocoder the audio (its rate is the output's).
        self.is_cfm = sovits.config.is_cfm
        self.text_version = "v1" if self.version == "v1" else "v2"
        self.precision: PrecisionPlan = plan_for(spec.precision, self.device)
        freed = pack_gpt(self.gpt, self.precision.gpt)  # load_models packs it already
        log.debug(
            "GPT %s kernels packed; %.0f MB of unpacked weights freed", self.precision.gpt, freed / 2**20
        )
        self.audio = audio_stage(
            sovits,
            vocoder,
            self.precision.decoder,
            self.device,
            spec.sovits_path.name,
            self.precision.prior,
            self.precision.decoder_int8,
        )
        self.sample_rate = self.audio.sample_rate
        self._hubert: HubertEncoder | None = None
        self._bert: BertFeaturizer | None = None
        self.text = TextStage(self.text_version, self.gpt.config.bert_dim, lambda: self.bert)
        self.references = ReferenceStage(
            sovits, self.device, lambda: self.hubert, speaker, self.audio.reference_mel
        )
        self.planner = Planner(self.text, self.references, self.audio)
        # A plain Lock, not an RLock: a streaming generator may be resumed on another thread
        # (web servers run each step in a worker pool), and only Lock may be released there.
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------ loading
    @classmethod
    def load(cls, spec: PipelineSpec) -> TTSPipeline:
        """Load the GPT and SoVITS files of ``spec``; :class:`ModelLoadError` names what is wrong."""
        models = load_models(spec)
        pipeline = cls(spec, models.gpt, models.sovits, models.speaker, models.vocoder)
        del models
        release_free_memory()  # the files' state dicts and the GPT weights its kernels copied
        return pipeline

    @property
    def hubert(self) -> HubertEncoder:
        """The content encoder, loaded on first use."""
        if self._hubert is None:
            self._hubert = load_hubert(self.spec, self.device, self.precision.hubert)
            release_free_memory()
        return self._hubert

    @property
    def bert(self) -> BertFeaturizer:
        """The BERT phone featurizer, loaded on first use (only Chinese text needs it)."""
        if self._bert is None:
            self._bert = load_bert(self.spec, self.device, self.gpt.config.bert_dim)
            release_free_memory()
        return self._bert

    @property
    def vocoder(self) -> Vocoder | None:
        """v3/v4: the vocoder the audio stage runs (benchmarks replace it to time it)."""
        return self.audio.vocoder if isinstance(self.audio, CfmAudio) else None

    @vocoder.setter
    def vocoder(self, vocoder: Vocoder) -> None:
        if not isinstance(self.audio, CfmAudio):
            raise TypeError(
                Message("pipeline.err.no_vocoder", "a {version} model has no vocoder", version=self.version)
            )
        self.audio.vocoder = vocoder

    def languages(self) -> tuple[str, ...]:
        """Language mode ids this pipeline's models can read."""
        return self.text.languages()

    def clear_cache(self) -> None:
        """Forget cached reference and prompt features (call between syntheses)."""
        self.references.clear()
        self.text.clear()

    # ------------------------------------------------------ stages one by one (tests, bench)
    def segment_inputs(self, text: str, language: str, split_method: str) -> list[TextInput]:
        """Stage 1: the target text split into segments, each with phones and BERT features."""
        return self.text.segments(text, language, split_method)

    def prompt_tokens(self, wav16: np.ndarray) -> torch.Tensor:
        """Stage 2: (T,) semantic tokens of a 16 kHz clip, 0.3 s of silence appended as upstream does."""
        return self.references.prompt_tokens(wav16)

    def spectrogram(self, wav32: np.ndarray) -> torch.Tensor:
        """Stage 2: (1, 1025, F) timbre spectrogram of a 32 kHz clip (upstream's level rule applied;
        no speaker embedding is computed)."""
        return self.references.spectrogram(wav32)

    def timbre_inputs(self, wav32: np.ndarray) -> TimbreInputs:
        """Stage 2: a 32 kHz clip's spectrogram and, for v2Pro*, its speaker embedding."""
        return self.references.timbre_inputs(wav32)

    def encode_reference(self, wav16: np.ndarray | None, wav32: np.ndarray) -> ReferenceFeatures:
        """Stage 2: features of an already loaded clip; ``wav16`` None skips the prompt tokens."""
        return self.references.encode(wav16, wav32)

    def reference_features(
        self, source: AudioSource, need_tokens: bool = True
    ) -> tuple[ReferenceClip, ReferenceFeatures, bool]:
        """Stage 2: the checked (maybe trimmed) clip and its features; (clip, features, from cache)."""
        return self.references.features(source, need_tokens)

    def _extra_reference(self, source: AudioSource) -> TimbreInputs:
        """Stage 2: (spectrogram, speaker embedding or None) of an extra reference clip."""
        return self.references.extra(source)

    def timbre(
        self,
        spectrograms: Sequence[torch.Tensor],
        sv_embeddings: Sequence[torch.Tensor | None] | None = None,
    ) -> Timbre:
        """Timbre of one or more references (VITS versions; v2Pro*: one embedding per spectrogram)."""
        if not isinstance(self.audio, VitsAudio):
            template = "v3/v4 models take their timbre with the prompt: use cfm_prompt"
            raise TypeError(Message("pipeline.err.timbre", template))
        return self.audio.timbre(spectrograms, sv_embeddings)

    def cfm_prompt(self, features: ReferenceFeatures, prompt: TextInput) -> CfmPrompt:
        """v3/v4: the reference as the flow matching continues it, for one prompt text."""
        assert isinstance(self.audio, CfmAudio)
        return self.audio.prompt(features, prompt)

    def generate_tokens(
        self,
        phones: Sequence[Sequence[int] | torch.Tensor],
        berts: Sequence[torch.Tensor],
        prompt_tokens: torch.Tensor | None,
        options: SamplingOptions,
        chunk_tokens: int | None = None,
    ) -> Iterator[TokenChunk]:
        """Stage 3: rows of (phones (n_i,), bert (bert_dim, n_i)) decoded together; token chunks."""
        return generate_tokens(self.gpt, self.device, phones, berts, prompt_tokens, options, chunk_tokens)

    def align_tokens(
        self,
        phones: Sequence[int],
        bert: torch.Tensor,
        prompt_tokens: torch.Tensor | None,
        tokens: torch.Tensor,
    ) -> torch.Tensor:
        """Word timestamps: ``(N, n)`` attention of a row's N generated tokens over its n phones."""
        return token_attention(self.gpt, phones, bert, prompt_tokens, tokens)

    def decode_tokens(
        self,
        tokens: torch.Tensor,
        phones: Sequence[int] | torch.Tensor,
        timbre: Voice,
        speed: float = 1.0,
        noise_scale: float = 0.5,
        generator: torch.Generator | None = None,
        sample_steps: int = DEFAULT_SAMPLE_STEPS,
    ) -> np.ndarray:
        """Stage 4: (n,) semantic tokens + the segment's phones -> float32 audio at :attr:`sample_rate`.

        VITS models: n * 1280 samples at speed 1, ``noise_scale`` the prior's. v3/v4:
        ``sample_steps`` flow-matching steps, then the vocoder.
        """
        return self.audio.decode(tokens, phones, timbre, speed, noise_scale, generator, sample_steps)

    # ---------------------------------------------------------------------- whole request
    def plan(self, request: TTSRequest) -> tuple[SynthesisPlan, ReferenceInfo, tuple[str, ...], Timings]:
        """Run stages 1 and 2 for ``request``: the plan, how the reference was used, notes, timings."""
        return self.planner.plan(request, self.max_new_tokens)

    def synthesize(self, request: TTSRequest) -> TTSResult:
        """The whole audio of ``request``."""
        result = None
        for chunk in self.stream(request, token_chunks=False):
            result = chunk.result or result
        assert result is not None, "stream() ends with the result"
        return result

    def stream(
        self, request: TTSRequest, token_chunks: bool = True, options: StreamOptions | None = None
    ) -> Iterator[AudioChunk]:
        """Yield audio as it is decoded; the last chunk carries the complete :class:`TTSResult`.

        ``token_chunks``: decode a segment in pieces while the GPT is still producing it (batch
        size 1 and speed 1 only; otherwise whole segments are yielded as they finish). Closing
        the generator stops the synthesis at the next chunk.
        """
        with self._lock:
            start = time.perf_counter()
            plan, info, notes, timings = self.plan(request)
            yield from self._run(plan, info, notes, timings, start, token_chunks, options)

    def run(
        self, plan: SynthesisPlan, token_chunks: bool = False, options: StreamOptions | None = None
    ) -> Iterator[AudioChunk]:
        """Stages 3 and 4 of a plan built by hand (tests, benchmarks); chunks as :meth:`stream`."""
        with self._lock:
            yield from self._run(plan, None, (), Timings(), time.perf_counter(), token_chunks, options)

    def _run(
        self,
        plan: SynthesisPlan,
        info: ReferenceInfo | None,
        notes: tuple[str, ...],
        timings: Timings,
        start: float,
        token_chunks: bool,
        options: StreamOptions | None,
    ) -> Iterator[AudioChunk]:
        # The stage calls are looked up on the pipeline here, so a wrapper put on the pipeline's
        # generate_tokens or decode_tokens (tests counting calls, benchmarks timing) sees every call.
        runner = Runner(
            plan,
            self.generate_tokens,
            self.audio,
            options or StreamOptions(),
            token_chunks,
            self.decode_tokens,
            self.align_tokens,
        )
        yield from runner.chunks(info, notes, timings, start)
