"""Stage 4, semantic tokens -> audio, one class per model family (see :class:`~app.infer.stages.base.AudioStage`).

- :class:`VitsAudio` (v1, v2, v2Pro, v2ProPlus): the SoVITS prior, flow and HiFi-GAN decoder; the
  timbre is averaged over the reference and any extra clips; a segment can be decoded in token
  chunks while the GPT still runs (:class:`~app.infer.streaming.ChunkDecoder`).
- :class:`CfmAudio` (v3, v4): flow matching continues the reference's mel, a separate vocoder makes
  the audio (its rate is the output's); it needs the reference's transcript and takes one clip.

:func:`audio_stage` picks the class from the loaded SoVITS model and installs the decode-side
wrappers of :mod:`app.infer.decoder` (windowed decoding, fast-mode casts).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from app.audio.resample import sinc_resample
from app.devices import release_free_memory
from app.infer.decoder import (
    STREAM_WINDOW_LENGTHS,
    CastDecoder,
    CastFlow,
    CastPrior,
    CastSampler,
    CastVocoder,
    FixedWindowDecoder,
    FixedWindowVocoder,
    WindowedDecoder,
    fixed_windows_pay,
)
from app.infer.inputs import ReferenceFeatures, TextInput
from app.infer.request import DEFAULT_SAMPLE_STEPS, ModelLoadError, TTSInputError, TTSRequest
from app.infer.stages.base import AudioStage, TimbreInputs, Voice
from app.infer.streaming import ChunkDecoder, StreamOptions
from app.messages import Message
from app.models.sovits.cfm_model import CfmPrompt, CfmSoVITS
from app.models.sovits.model import SoVITS, Timbre
from app.models.vocoders import Vocoder
from app.models.vocoders.hifigan import HiFiGANVocoder

# Flow-matching steps when a request leaves sample_steps out: upstream's web UI defaults.
DEFAULT_CFM_STEPS = {"v3": 32, "v4": 8}
# The choices upstream's web UI offers (the API takes any count in SAMPLE_STEPS_RANGE).
CFM_STEP_CHOICES = {"v3": (4, 8, 16, 32, 64, 128), "v4": (4, 8, 16, 32)}
SOVITS_RATE = 32000  # the reference clip's timbre rate (ReferenceClip.wav32)


class VitsAudio:
    """The VITS decoder of v1-v2ProPlus: tokens + phones + timbre -> n * 1280 samples at speed 1.

    Installs on ``model.dec`` windowed decoding: in bf16 on CPU (fast mode) windows of fixed lengths on
    channels-last activations (:class:`~app.infer.decoder.FixedWindowDecoder`), otherwise a cast to
    ``decoder_dtype`` and windows of at most 320 frames; the prior encoder and the flow run in
    ``prior_dtype`` (casts around them where it is not float32).
    """

    streams_token_chunks = True

    def __init__(
        self,
        model: SoVITS,
        decoder_dtype: torch.dtype,
        device: torch.device,
        file_name: str,
        prior_dtype: torch.dtype = torch.float32,
        decoder_int8: bool = False,
    ) -> None:
        self.model = model
        self.version = model.config.version
        self.sample_rate = model.config.sampling_rate
        self.device = device
        self.file_name = file_name  # named in refusals
        if prior_dtype != torch.float32:
            model.enc_p = CastPrior(model.enc_p, prior_dtype)
            model.flow = CastFlow(model.flow, prior_dtype)
        if fixed_windows_pay(decoder_dtype, device, model.config):
            # One or two input shapes ever (channels-last bf16 kernels built once, at load).
            model.dec = FixedWindowDecoder(
                model.dec, model.config, lengths=STREAM_WINDOW_LENGTHS, dtype=decoder_dtype, int8=decoder_int8
            )
            model.dec.warm_up()
            return
        if decoder_dtype != torch.float32:
            model.dec = CastDecoder(model.dec, decoder_dtype)
        # Long segments decode in windows: same samples, a fraction of the activations in memory.
        model.dec = WindowedDecoder(model.dec, model.config)

    def sample_steps(self, requested: int | None) -> int:
        """Refuses a step count but api_v2's default, which its clients send whatever the model."""
        if requested not in (None, DEFAULT_SAMPLE_STEPS):
            template = (
                "sample_steps applies to v3/v4 models (flow matching); {name} is a {version} model: "
                "leave sample_steps out (or at api_v2's default, {default})"
            )
            fields = {"name": self.file_name, "version": self.version, "default": DEFAULT_SAMPLE_STEPS}
            message = Message("tts.audio.no_steps", template, **fields)
            raise TTSInputError(message, field="sample_steps")
        return DEFAULT_SAMPLE_STEPS  # unused by the VITS decoder

    def check(self, request: TTSRequest) -> None:
        """Every request the API validated can be decoded."""

    def reference_mel(self, wav32: np.ndarray) -> None:
        return None

    def timbre(
        self, spectrograms: Sequence[torch.Tensor], sv_embeddings: Sequence[torch.Tensor | None] | None = None
    ) -> Timbre:
        """Timbre of one or more references (averaged over clips, as upstream averages them).

        v2Pro*: ``sv_embeddings`` holds one speaker embedding per spectrogram.
        """
        if not self.model.config.is_pro:
            return self.model.timbre(list(spectrograms))
        embeddings = list(sv_embeddings or [])
        if len(embeddings) != len(spectrograms) or any(e is None for e in embeddings):
            raise ValueError(f"{self.version} needs one speaker embedding per reference spectrogram")
        return self.model.timbre(list(spectrograms), [e for e in embeddings if e is not None])

    def voice(
        self, features: ReferenceFeatures, extras: Sequence[TimbreInputs], prompt: TextInput | None
    ) -> Timbre:
        """The reference's and extra clips' averaged timbre; the prompt text plays no part."""
        specs = [features.spectrogram] + [spec for spec, _ in extras]
        embeddings = [features.sv_embedding] + [emb for _, emb in extras]
        return self.timbre(specs, embeddings)

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
        """``noise_scale`` is the prior's; ``sample_steps`` is unused."""
        assert isinstance(timbre, Timbre)
        codes, ids = _model_inputs(tokens, phones, self.device)
        # The decoder's activations (~100-170 MB for 10 s) are freed once the samples are out.
        return _samples(self.model.decode(codes, ids, timbre, speed, noise_scale, generator=generator))

    def chunk_decoder(
        self,
        phones: Sequence[int],
        timbre: Voice,
        noise_scale: float,
        generator: torch.Generator | None,
        options: StreamOptions,
    ) -> ChunkDecoder:
        assert isinstance(timbre, Timbre)
        ids = torch.tensor(phones, dtype=torch.long, device=self.device)[None]
        return ChunkDecoder(self.model, ids, timbre, noise_scale, generator, options)


def _fast_vocoder(vocoder: Vocoder, dtype: torch.dtype, device: torch.device) -> Vocoder:
    """The vocoder in ``dtype``: v4's HiFi-GAN in fixed windows where they pay (kernels built now),
    others (v3's BigVGAN) cast."""
    if isinstance(vocoder, HiFiGANVocoder) and fixed_windows_pay(dtype, device, vocoder.config):
        fixed = FixedWindowVocoder(vocoder, dtype=dtype)
        fixed.warm_up()
        return fixed
    return CastVocoder(vocoder, dtype)


class CfmAudio:
    """Flow matching + vocoder of v3/v4: ``sample_steps`` Euler steps to a mel (v4 4, v3 3.75 frames
    per token), then the vocoder (v4 480, v3 256 samples per frame).

    In fast mode the DiT and the vocoder run in ``decoder_dtype`` (the decode's arithmetic).
    """

    streams_token_chunks = False  # a segment's mel is made whole

    def __init__(
        self,
        model: CfmSoVITS,
        vocoder: Vocoder,
        decoder_dtype: torch.dtype,
        device: torch.device,
        file_name: str,
    ) -> None:
        self.model = model
        self.version = model.config.version
        self.sample_rate = vocoder.sample_rate
        self.device = device
        self.file_name = file_name
        if decoder_dtype != torch.float32:
            model.cfm = CastSampler(model.cfm, decoder_dtype)
            vocoder = _fast_vocoder(vocoder, decoder_dtype, device)
        self.vocoder = vocoder

    def sample_steps(self, requested: int | None) -> int:
        return int(requested or DEFAULT_CFM_STEPS[self.version])

    def check(self, request: TTSRequest) -> None:
        """One reference clip, with its transcript (what the flow matching continues)."""
        if request.extra_references:
            template = (
                "{version} models take their timbre from the one reference clip (upstream offers no "
                "extra references for v3/v4): leave the extra reference clips out"
            )
            message = Message("tts.audio.no_extras", template, version=self.version)
            raise TTSInputError(message, field="extra_references")
        if not request.uses_prompt:
            template = (
                "{version} models continue the reference clip's speech, so they need its transcript as "
                "the prompt text (reference-free mode is not available for v3/v4, as upstream)"
            )
            message = Message("tts.audio.needs_prompt", template, version=self.version)
            raise TTSInputError(message, field="prompt_text")

    def reference_mel(self, wav32: np.ndarray) -> torch.Tensor:
        """(1, 100, F) normalised log-mel of a 32 kHz clip at the model's mel rate (v4 32 kHz,
        v3 24 kHz), the frames the flow matching continues (no level rule, as upstream)."""
        wav = torch.from_numpy(np.ascontiguousarray(wav32))[None]
        rate = self.model.config.cfm_audio.sampling_rate
        if rate != SOVITS_RATE:
            wav = sinc_resample(wav, SOVITS_RATE, rate)
        return self.model.reference_mel(wav.to(self.device))

    def prompt(self, features: ReferenceFeatures, prompt: TextInput) -> CfmPrompt:
        """The reference as the flow matching continues it (timbre, features of its tokens and
        phones, its mel), for one reference and prompt text."""
        if features.prompt_tokens is None or features.mel is None:
            raise ValueError("the reference's prompt tokens and mel are needed for a v3/v4 prompt")
        ge = self.model.timbre(features.spectrogram)
        codes = features.prompt_tokens.view(1, 1, -1).to(self.device)
        phones = torch.as_tensor(prompt.phones, dtype=torch.long, device=self.device).view(1, -1)
        return self.model.prompt(codes, phones, ge, features.mel)

    def voice(
        self, features: ReferenceFeatures, extras: Sequence[TimbreInputs], prompt: TextInput | None
    ) -> CfmPrompt:
        """The prompt; ``prompt`` None here means trimming the clip left no matching transcript."""
        if prompt is None:
            template = (
                "the prompt text could not be matched to the kept part of the long reference clip, and "
                "{version} models need the transcript of what they continue: give a 3-10 s clip with "
                "its exact text"
            )
            message = Message("tts.audio.unmatched_prompt", template, version=self.version)
            raise TTSInputError(message, field="prompt_text")
        return self.prompt(features, prompt)

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
        """``noise_scale`` is unused: the flow matching starts from unit noise."""
        assert isinstance(timbre, CfmPrompt)
        codes, ids = _model_inputs(tokens, phones, self.device)
        mel = self.model.decode_mel(codes, ids, timbre, sample_steps, speed, generator=generator)
        with torch.inference_mode():
            return _samples(self.vocoder(mel))  # the DiT's and the vocoder's activations freed

    def chunk_decoder(
        self,
        phones: Sequence[int],
        timbre: Voice,
        noise_scale: float,
        generator: torch.Generator | None,
        options: StreamOptions,
    ) -> ChunkDecoder:
        raise TypeError(f"{self.version} models decode whole segments (no token-chunk streaming)")


def _model_inputs(
    tokens: torch.Tensor, phones: Sequence[int] | torch.Tensor, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(n,) tokens and a segment's phones as the decoders take them: (1, 1, n) codes, (1, m) ids."""
    codes = tokens.view(1, 1, -1).to(device)
    return codes, torch.as_tensor(phones, dtype=torch.long).view(1, -1).to(device)


def _samples(audio: torch.Tensor) -> np.ndarray:
    """(1, 1, samples) decoder output -> float32 numpy; the activations behind it go back to the OS
    (left in glibc's heap they would sit under the next segment's)."""
    out = audio[0, 0].float().cpu().numpy()
    del audio
    release_free_memory()
    return out


def audio_stage(
    model: SoVITS | CfmSoVITS,
    vocoder: Vocoder | None,
    decoder_dtype: torch.dtype,
    device: torch.device,
    file_name: str,
    prior_dtype: torch.dtype = torch.float32,
    decoder_int8: bool = False,
) -> AudioStage:
    """The audio stage of a loaded SoVITS model (a v3/v4 one needs its vocoder; ``prior_dtype`` is
    v1-v2ProPlus's prior encoder and flow's, ``decoder_int8`` their decoder's residual blocks')."""
    if isinstance(model, CfmSoVITS):
        if vocoder is None:
            template = "a {version} SoVITS model needs its vocoder"
            raise ModelLoadError(Message("tts.audio.no_vocoder", template, version=model.config.version))
        return CfmAudio(model, vocoder, decoder_dtype, device, file_name)
    return VitsAudio(model, decoder_dtype, device, file_name, prior_dtype, decoder_int8)
