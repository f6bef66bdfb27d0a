"""The one TTS pipeline: reference clip + text -> 32 kHz speech in the reference's voice.

Stages (each callable on its own, so parity can be checked with fixture inputs):

1. text (:meth:`TTSPipeline.prompt_input`, :meth:`TTSPipeline.segment_inputs`): the prompt text gets
   a final "。" (or "." for English) when it ends without punctuation; the target text is split
   (``app.text.split_text``: method, merging of short pieces, final punctuation); each piece is read
   into phones, and Chinese parts get BERT features (zeros elsewhere; BERT loads on first use).
2. reference (:meth:`TTSPipeline.reference_features`): trim (``app.infer.reference``), then the GPT
   prompt = semantic tokens of the 16 kHz clip + 0.3 s of silence through HuBERT and the SoVITS
   quantizer, and the timbre spectrogram of the 32 kHz clip. Cached per clip (sha256 of its bytes).
3. tokens (:meth:`TTSPipeline.generate_tokens`): the GPT decodes each segment on phones = prompt
   phones + segment phones (BERT likewise), prompted with the reference tokens; ``batch_size``
   segments share one batched decoding loop.
4. audio (:meth:`TTSPipeline.decode_tokens`): SoVITS decodes each segment's tokens with the
   segment's phones (not the prompt's) and the timbre; a segment louder than full scale is
   divided by its peak; ``pause_seconds`` of silence follow every segment; int16 output.

:meth:`TTSPipeline.synthesize` returns the whole result; :meth:`TTSPipeline.stream` yields audio as
soon as the first segment (or, with ``token_chunks``, the first tokens) is decoded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace

import numpy as np
import torch

from app.assets.registry import DOWNLOAD_COMMAND
from app.audio.resample import sinc_resample
from app.devices import release_free_memory
from app.infer import reference as ref
from app.infer import scripts
from app.infer.batching import plan_batches
from app.infer.cache import LRUCache
from app.infer.decoder import CastDecoder, CastSampler, CastVocoder, WindowedDecoder
from app.infer.inputs import ReferenceFeatures, SynthesisPlan, TextInput
from app.infer.precision import PrecisionPlan, plan_for, release_packed_weights
from app.infer.request import (
    DEFAULT_SAMPLE_STEPS,
    AudioChunk,
    ModelLoadError,
    PipelineSpec,
    ReferenceInfo,
    Timings,
    TTSInputError,
    TTSRequest,
    TTSResult,
)
from app.infer.seeds import random_seed
from app.infer.streaming import StreamOptions
from app.models.encoders.hubert import HubertEncoder
from app.models.encoders.sv import SV_ASSET, SV_FILE, SpeakerEncoder
from app.models.gpt.sampling import MAX_NEW_TOKENS, SamplingOptions, TokenChunk, generate
from app.models.sovits.cfm_model import CfmPrompt, CfmSoVITS
from app.models.sovits.model import SoVITS, Timbre
from app.models.sovits.reference import normalize_reference, reference_spectrogram
from app.models.upstream.cfm_voice import LORA_BASE_FILES, is_cfm_file, load_cfm_voice, lora_base
from app.models.upstream.gpt import GPTFile, load_gpt
from app.models.upstream.sovits import FlowMatchingModel, SoVITSFile, load_sovits
from app.models.upstream.vocoder import load_vocoder
from app.models.vocoders import VOCODER_PATHS, Vocoder
from app.text import EmptyText, LanguageMode, OverrideError, UnsupportedLanguage, split_text, text_to_phones
from app.text.frontend import TextResult
from app.text.split import CLAUSE_MARKS

log = logging.getLogger(__name__)

TOKEN_RATE = 25  # semantic tokens per second; upstream stops the GPT after 25 * max_sec tokens
BERT_LANGUAGE = "zh"  # the only language whose segments get BERT features
HUBERT_ASSET, BERT_ASSET = "chinese-hubert-base", "chinese-roberta-wwm-ext-large"


def _load_speaker_encoder(spec: PipelineSpec, device: torch.device, version: str) -> SpeakerEncoder:
    """The ERes2NetV2 speaker-verification model a v2Pro/v2ProPlus SoVITS needs."""
    path = spec.sv_path or spec.hubert_dir.parent / SV_FILE
    if not path.is_file():
        raise ModelLoadError(
            f"{spec.sovits_path.name} is a {version} SoVITS model, which needs the speaker-verification "
            f"model {path} (missing): download it with `{DOWNLOAD_COMMAND} {SV_ASSET}` or copy "
            f"GPT-SoVITS's pretrained_models/{SV_FILE.as_posix()} there"
        )
    try:
        return SpeakerEncoder(path, device=device)
    except (OSError, ValueError) as exc:  # CheckpointError / UnsafePickleError name the file
        raise ModelLoadError(f"speaker-verification model: {exc}") from exc


# Flow-matching steps when a request leaves sample_steps out: upstream's web UI defaults.
DEFAULT_CFM_STEPS = {"v3": 32, "v4": 8}
# The choices upstream's web UI offers (the API takes any count in SAMPLE_STEPS_RANGE).
CFM_STEP_CHOICES = {"v3": (4, 8, 16, 32, 64, 128), "v4": (4, 8, 16, 32)}
SOVITS_RATE = 32000  # the reference clip's timbre rate (ReferenceClip.wav32)


def _load_cfm(spec: PipelineSpec, device: torch.device) -> tuple[CfmSoVITS, SoVITSFile, Vocoder]:
    """A v3/v4 SoVITS file (a LoRA merged onto its base) and its version's vocoder."""
    pretrained = spec.hubert_dir.parent
    base = lora_base(spec.sovits_path, pretrained)
    if base is not None and not base.is_file():
        version = "v3" if base.name == LORA_BASE_FILES["v3"].name else "v4"
        raise ModelLoadError(
            f"{spec.sovits_path.name} is a {version} LoRA voice, merged at load onto the {version} base "
            f"model {base} (missing): download it with `{DOWNLOAD_COMMAND} gpt-sovits-{version}` or copy "
            f"GPT-SoVITS's pretrained_models/{LORA_BASE_FILES[version].as_posix()} there"
        )
    try:
        voice = load_cfm_voice(spec.sovits_path, pretrained, device=device)
    except ValueError as exc:  # CheckpointError / UnsafePickleError name the file
        raise ModelLoadError(f"SoVITS model: {exc}") from exc
    version = voice.version
    place = pretrained / VOCODER_PATHS[version]
    if not place.exists():
        raise ModelLoadError(
            f"{spec.sovits_path.name} is a {version} SoVITS model, which needs the {version} vocoder {place} "
            f"(missing): download it with `{DOWNLOAD_COMMAND} gpt-sovits-{version}` or copy GPT-SoVITS's "
            f"pretrained_models/{VOCODER_PATHS[version].as_posix()} there"
        )
    try:
        vocoder = load_vocoder(version, pretrained, device=device)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{version} vocoder: {exc}") from exc
    return voice.model, voice.record, vocoder


def _missing_model(kind: str, folder: object, asset: str) -> ModelLoadError:
    return ModelLoadError(
        f"{kind} model missing in {folder} (no config.json): download it with "
        f"`{DOWNLOAD_COMMAND} {asset}` or copy GPT-SoVITS's pretrained_models/{asset} there"
    )


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
        # Upstream: early_stop_num = 25 * max_sec, and it stops once more tokens than that exist.
        self.max_new_tokens = TOKEN_RATE * gpt.max_sec + 1 if gpt.max_sec else MAX_NEW_TOKENS
        self.sovits = sovits
        # v2Pro*: the speaker-verification encoder whose embedding joins the timbre.
        self.speaker = speaker
        if sovits.config.is_pro and (speaker is None or speaker.dim != sovits.config.sv_dim):
            raise ModelLoadError(
                f"{sovits.config.version} SoVITS needs a {sovits.config.sv_dim}-wide speaker embedding; "
                f"got {'none' if speaker is None else f'a {speaker.dim}-wide one'}"
            )
        self.version = sovits.config.version
        # v3/v4: flow matching makes a mel, a separate vocoder the audio (its rate is the output's).
        self.is_cfm = sovits.config.is_cfm
        if self.is_cfm and vocoder is None:
            raise ModelLoadError(f"a {self.version} SoVITS model needs its vocoder")
        self.vocoder = vocoder
        self.text_version = "v1" if self.version == "v1" else "v2"
        self.sample_rate = vocoder.sample_rate if vocoder is not None else sovits.config.sampling_rate
        self.precision: PrecisionPlan = plan_for(spec.precision, self.device)
        self.gpt.set_precision(self.precision.gpt)
        freed = release_packed_weights(self.gpt)
        log.debug(
            "GPT %s kernels packed; %.0f MB of unpacked weights freed", self.precision.gpt, freed / 2**20
        )
        if isinstance(self.sovits, CfmSoVITS):
            if self.precision.decoder != torch.float32:  # the DiT and the vocoder: the decode's arithmetic
                self.sovits.cfm = CastSampler(self.sovits.cfm, self.precision.decoder)
                self.vocoder = CastVocoder(vocoder, self.precision.decoder)
        else:
            if self.precision.decoder != torch.float32:
                self.sovits.dec = CastDecoder(self.sovits.dec, self.precision.decoder)
            # Long segments decode in windows: same samples, a fraction of the activations in memory.
            self.sovits.dec = WindowedDecoder(self.sovits.dec, sovits.config)
        self._hubert: HubertEncoder | None = None
        self._bert = None
        # sha256 -> (clip, features); a clip holds <= 10 s of audio at two rates (~2 MB).
        self._references: LRUCache[str, tuple[ref.ReferenceClip, ReferenceFeatures]] = LRUCache(8)
        # sha256 -> (spectrogram, speaker embedding or None) of extra reference clips.
        self._extra_specs: LRUCache[str, tuple[torch.Tensor, torch.Tensor | None]] = LRUCache(32)
        self._prompts: LRUCache[tuple[str, str], TextInput] = LRUCache(32)
        # A plain Lock, not an RLock: a streaming generator may be resumed on another thread
        # (web servers run each step in a worker pool), and only Lock may be released there.
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------ loading
    @classmethod
    def load(cls, spec: PipelineSpec) -> TTSPipeline:
        """Load the GPT and SoVITS files of ``spec``; :class:`ModelLoadError` names what is wrong."""
        device = torch.device(spec.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ModelLoadError(
                f"device {spec.device!r} was asked for but no CUDA GPU is available; use cpu"
            )
        try:
            gpt = load_gpt(spec.gpt_path, device=device)
        except ValueError as exc:  # GPTFileError and friends: the message names the file
            raise ModelLoadError(f"GPT model: {exc}") from exc
        vocoder = None
        try:
            cfm = is_cfm_file(spec.sovits_path)
        except OSError as exc:
            raise ModelLoadError(f"SoVITS model: cannot read {spec.sovits_path} ({exc.strerror})") from exc
        if not cfm:
            try:
                sovits, record = load_sovits(spec.sovits_path, device=device)
            except FlowMatchingModel:
                cfm = True  # a v3/v4 export that starts like a v2 file
            except ValueError as exc:  # CheckpointError / UnsafePickleError
                raise ModelLoadError(f"SoVITS model: {exc}") from exc
        if cfm:
            sovits, record, vocoder = _load_cfm(spec, device)
        speaker = _load_speaker_encoder(spec, device, record.version) if record.config.is_pro else None
        if speaker is not None and speaker.dim != record.config.sv_dim:
            raise ModelLoadError(
                f"{speaker.path} gives {speaker.dim}-wide speaker embeddings but {spec.sovits_path} "
                f"expects {record.config.sv_dim}: use upstream's ERes2NetV2 file "
                f"({SV_FILE.as_posix()}) with upstream's v2Pro/v2ProPlus models"
            )
        if gpt.version == "v1" and record.version != "v1":
            raise ModelLoadError(
                f"{spec.gpt_path} is a v1 GPT (322 phone symbols) but {spec.sovits_path} is a "
                f"{record.version} SoVITS model: pick a GPT and a SoVITS model of the same version"
            )
        log.info(
            "TTS pipeline: GPT %s (%s), SoVITS %s (%s), %s, %s",
            spec.gpt_path.name,
            gpt.version,
            spec.sovits_path.name,
            record.version,
            device,
            spec.precision,
        )
        pipeline = cls(spec, gpt, sovits, speaker, vocoder)
        del gpt, sovits, record, speaker, vocoder
        release_free_memory()  # the files' state dicts and the GPT weights its kernels copied
        return pipeline

    @property
    def hubert(self) -> HubertEncoder:
        """The content encoder, loaded on first use."""
        if self._hubert is None:
            if not (self.spec.hubert_dir / "config.json").is_file():
                raise _missing_model("HuBERT", self.spec.hubert_dir, HUBERT_ASSET)
            try:
                self._hubert = HubertEncoder(
                    self.spec.hubert_dir, device=self.device, dtype=self.precision.hubert
                )
            except (FileNotFoundError, OSError, ValueError) as exc:
                raise ModelLoadError(f"HuBERT model in {self.spec.hubert_dir}: {exc}") from exc
            release_free_memory()
        return self._hubert

    @property
    def bert(self):
        """The BERT phone featurizer, loaded on first use (only Chinese text needs it)."""
        if self._bert is None:
            from app.models.encoders.bert import BertFeaturizer, BertModelMissing, BertOptions

            if not (self.spec.bert_dir / "config.json").is_file():
                raise _missing_model("BERT", self.spec.bert_dir, BERT_ASSET)
            try:
                bert = BertFeaturizer(BertOptions(self.spec.bert_dir, device=str(self.device)))
            except (BertModelMissing, OSError, ValueError) as exc:
                raise ModelLoadError(f"BERT model in {self.spec.bert_dir}: {exc}") from exc
            if bert.dim != self.gpt.config.bert_dim:
                raise ModelLoadError(
                    f"BERT in {self.spec.bert_dir} gives {bert.dim}-wide features but the GPT expects "
                    f"{self.gpt.config.bert_dim}: use chinese-roberta-wwm-ext-large"
                )
            self._bert = bert
            release_free_memory()
        return self._bert

    def languages(self) -> tuple[str, ...]:
        """Language mode ids this pipeline's models can read."""
        from app.text import modes

        return modes(self.text_version)

    # -------------------------------------------------------------------------- 1: text
    def _read(self, text: str, language: str, what: str = "text") -> TextResult:
        """Phones of ``text``; refuses text in which nothing can be read as ``language``."""
        try:
            result = text_to_phones(text, language, self.text_version)
        except (EmptyText, UnsupportedLanguage, OverrideError) as exc:
            raise TTSInputError(f"{what}: {exc}") from exc
        if not scripts.speaks(result.phones):
            foreign = scripts.unreadable_letters(text)
            why = f"its letters ({foreign[:12]}) are of a script" if foreign else "it is in a language"
            raise TTSInputError(
                f"{what} {text.strip()!r} cannot be read as {LanguageMode.parse(language).value}: {why} "
                f"the models cannot speak (they read {scripts.LANGUAGES}); choose the text's language "
                "or write it in one of those"
            )
        return result

    def text_features(self, results: Sequence[TextResult]) -> list[torch.Tensor]:
        """(bert_dim, n_phones) float32 per result; BERT runs only when a Chinese segment exists."""
        needs_bert = any(
            s.lang == BERT_LANGUAGE and s.word2ph is not None and s.phones
            for r in results
            for s in r.segments
        )
        if needs_bert:
            return self.bert.text_features_batch(results)
        return [torch.zeros(self.gpt.config.bert_dim, len(r.phones)) for r in results]

    def prompt_input(self, text: str, language: str) -> TextInput:
        """Phones and BERT of the prompt text, "。"/"." appended when it ends without punctuation."""
        text = text.strip("\n")
        if text and text[-1] not in CLAUSE_MARKS:
            text += "." if LanguageMode.parse(language) is LanguageMode.EN else "。"
        key = (text, LanguageMode.parse(language).value)
        cached = self._prompts.get(key)
        if cached is None:
            result = self._read(text, language, "prompt text")
            cached = TextInput(text, result.phone_ids, self.text_features([result])[0])
            self._prompts.put(key, cached)
        return cached

    def segment_inputs(self, text: str, language: str, split_method: str) -> list[TextInput]:
        """The target text split into segments, each with phones and BERT features."""
        try:
            pieces = split_text(text, split_method, LanguageMode.parse(language).value)
        except (ValueError, UnsupportedLanguage) as exc:
            raise TTSInputError(str(exc)) from exc
        if not pieces:
            raise TTSInputError("the text is empty (or punctuation only): enter something to read")
        results = [self._read(p, language) for p in pieces]
        feats = self.text_features(results)
        return [TextInput(p, r.phone_ids, f) for p, r, f in zip(pieces, results, feats, strict=True)]

    # --------------------------------------------------------------------- 2: reference
    def prompt_tokens(self, wav16: np.ndarray) -> torch.Tensor:
        """(T,) semantic tokens of a 16 kHz clip, 0.3 s of silence appended as upstream does."""
        ssl = self.hubert.prompt_features(torch.from_numpy(np.ascontiguousarray(wav16)))
        codes = self.sovits.extract_codes(ssl.float())[0, 0]
        release_free_memory()  # HuBERT's activations (~150 MB for 10 s) are done with
        return codes

    def spectrogram(self, wav32: np.ndarray) -> torch.Tensor:
        """(1, 1025, F) timbre spectrogram of a 32 kHz clip (upstream's level rule applied)."""
        return self.timbre_inputs(wav32)[0]

    def timbre_inputs(self, wav32: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A 32 kHz clip's spectrogram (1, 1025, F) and, for v2Pro*, its (1, sv_dim) speaker
        embedding: upstream's level rule, then the spectrogram of that wave and the embedding
        of the same wave resampled to 16 kHz (torchaudio's resampler, as upstream)."""
        wav = normalize_reference(torch.from_numpy(np.ascontiguousarray(wav32)).to(self.device)[None])
        spec = reference_spectrogram(wav)
        if self.speaker is None:
            return spec, None
        embedding = self.speaker.embed_32k(wav).to(self.device)
        release_free_memory()  # the speaker model's activations (~100 MB for 10 s)
        return spec, embedding

    def reference_mel(self, wav32: np.ndarray) -> torch.Tensor:
        """v3/v4: (1, 100, F) normalised log-mel of a 32 kHz clip at the model's mel rate (v4 32 kHz,
        v3 24 kHz), the frames the flow matching continues (no level rule, as upstream)."""
        assert isinstance(self.sovits, CfmSoVITS)
        wav = torch.from_numpy(np.ascontiguousarray(wav32))[None]
        rate = self.sovits.config.cfm_audio.sampling_rate
        if rate != SOVITS_RATE:
            wav = sinc_resample(wav, SOVITS_RATE, rate)
        return self.sovits.reference_mel(wav.to(self.device))

    def encode_reference(self, wav16: np.ndarray | None, wav32: np.ndarray) -> ReferenceFeatures:
        """Features of an already loaded clip; ``wav16`` None skips the prompt tokens."""
        tokens = None if wav16 is None else self.prompt_tokens(wav16)
        spec, embedding = self.timbre_inputs(wav32)
        mel = self.reference_mel(wav32) if self.is_cfm else None
        return ReferenceFeatures(tokens, spec, embedding, mel)

    def reference_features(
        self, source: ref.AudioSource, need_tokens: bool = True
    ) -> tuple[ref.ReferenceClip, ReferenceFeatures, bool]:
        """The checked (maybe trimmed) clip and its features; returns (clip, features, from cache).

        Keyed by the sha256 of the clip's bytes: a clip seen before is neither decoded nor encoded
        again. ``need_tokens`` False skips HuBERT (reference-free mode); they are added later if
        a request needs them.
        """
        data, name = ref.read_source(source)
        digest = ref.sha256_of(data)
        cached = self._references.get(digest)
        if cached is not None and (cached[1].prompt_tokens is not None or not need_tokens):
            return cached[0], cached[1], True
        if cached is not None:  # computed for a reference-free request; add the tokens now
            clip = cached[0]
            features = replace(cached[1], prompt_tokens=self.prompt_tokens(clip.wav16))
        else:
            clip = ref.decode_clip(data, name)
            features = self.encode_reference(clip.wav16 if need_tokens else None, clip.wav32)
        self._references.put(digest, (clip, features))
        return clip, features, False

    def timbre(
        self,
        spectrograms: Sequence[torch.Tensor],
        sv_embeddings: Sequence[torch.Tensor | None] | None = None,
    ) -> Timbre:
        """Timbre of one or more references (averaged over clips, as upstream averages them).

        v2Pro*: ``sv_embeddings`` holds one speaker embedding per spectrogram.
        """
        if isinstance(self.sovits, CfmSoVITS):
            raise TypeError("v3/v4 models take their timbre with the prompt: use cfm_prompt")
        if not self.sovits.config.is_pro:
            return self.sovits.timbre(list(spectrograms))
        embeddings = list(sv_embeddings or [])
        if len(embeddings) != len(spectrograms) or any(e is None for e in embeddings):
            raise ValueError(f"{self.version} needs one speaker embedding per reference spectrogram")
        return self.sovits.timbre(list(spectrograms), [e for e in embeddings if e is not None])

    def cfm_prompt(self, features: ReferenceFeatures, prompt: TextInput) -> CfmPrompt:
        """v3/v4: the reference as the flow matching continues it (timbre, features of its tokens
        and phones, its mel), for one reference and prompt text."""
        assert isinstance(self.sovits, CfmSoVITS)
        if features.prompt_tokens is None or features.mel is None:
            raise ValueError("the reference's prompt tokens and mel are needed for a v3/v4 prompt")
        ge = self.sovits.timbre(features.spectrogram)
        codes = features.prompt_tokens.view(1, 1, -1).to(self.device)
        phones = torch.as_tensor(prompt.phones, dtype=torch.long, device=self.device).view(1, -1)
        return self.sovits.prompt(codes, phones, ge, features.mel)

    def sample_steps(self, request: TTSRequest) -> int:
        """Flow-matching steps of ``request`` (v3/v4); other models refuse a value but api_v2's default."""
        if self.is_cfm:
            return int(request.sample_steps or DEFAULT_CFM_STEPS[self.version])
        if request.sample_steps not in (None, DEFAULT_SAMPLE_STEPS):
            raise TTSInputError(
                f"sample_steps applies to v3/v4 models (flow matching); {self.spec.sovits_path.name} is a "
                f"{self.version} model: leave sample_steps out (or at api_v2's default, {DEFAULT_SAMPLE_STEPS})",
                field="sample_steps",
            )
        return DEFAULT_SAMPLE_STEPS  # unused by the VITS decoder

    def _extra_reference(self, source: ref.AudioSource) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(spectrogram, speaker embedding or None) of an extra reference clip, cached per clip."""
        data, name = ref.read_source(source, "extra reference clip")
        digest = ref.sha256_of(data)
        found = self._extra_specs.get(digest)
        if found is None:
            found = self.timbre_inputs(ref._load(data, name, ref.SAMPLE_RATE))
            self._extra_specs.put(digest, found)
        return found

    def clear_cache(self) -> None:
        """Forget cached reference and prompt features (call between syntheses)."""
        self._references.clear()
        self._extra_specs.clear()
        self._prompts.clear()

    # ------------------------------------------------------------------------ 3: tokens
    def sampling_options(self, request: TTSRequest) -> SamplingOptions:
        return SamplingOptions(
            top_k=int(request.top_k),
            top_p=float(request.top_p),
            temperature=float(request.temperature),
            repetition_penalty=float(request.repetition_penalty),
            max_new_tokens=self.max_new_tokens,
        )

    def generate_tokens(
        self,
        phones: Sequence[Sequence[int] | torch.Tensor],
        berts: Sequence[torch.Tensor],
        prompt_tokens: torch.Tensor | None,
        options: SamplingOptions,
        chunk_tokens: int | None = None,
    ) -> Iterator[TokenChunk]:
        """Decode rows of (phones (n_i,), bert (bert_dim, n_i)) together; yields token chunks.

        Rows are right-padded; every row gets the same prompt. See :func:`app.models.gpt.generate`.
        """
        lens = [len(p) for p in phones]
        B, width = len(lens), max(lens)
        ids = torch.zeros(B, width, dtype=torch.long)
        bert = torch.zeros(B, self.gpt.config.bert_dim, width)
        for b, (p, f) in enumerate(zip(phones, berts, strict=True)):
            ids[b, : lens[b]] = torch.as_tensor(p, dtype=torch.long)
            bert[b, :, : lens[b]] = f
        prompt = None if prompt_tokens is None else prompt_tokens.view(1, -1).expand(B, -1).to(self.device)
        phone_lens = None if len(set(lens)) == 1 else torch.tensor(lens)
        return generate(
            self.gpt,
            ids.to(self.device),
            bert.to(self.device),
            prompt,
            options,
            phone_lens=phone_lens,
            chunk_tokens=chunk_tokens,
        )

    # ------------------------------------------------------------------------- 4: audio
    def decode_tokens(
        self,
        tokens: torch.Tensor,
        phones: Sequence[int] | torch.Tensor,
        timbre: Timbre | CfmPrompt,
        speed: float = 1.0,
        noise_scale: float = 0.5,
        generator: torch.Generator | None = None,
        sample_steps: int = DEFAULT_SAMPLE_STEPS,
    ) -> np.ndarray:
        """(n,) semantic tokens + the segment's phones -> float32 audio at :attr:`sample_rate`.

        VITS models (v1-v2ProPlus): n * 1280 samples at speed 1, ``noise_scale`` the prior's.
        v3/v4: flow matching (``sample_steps`` Euler steps) to a mel (v4 4, v3 3.75 frames per
        token), then the vocoder (v4 480, v3 256 samples per frame).
        """
        codes = tokens.view(1, 1, -1).to(self.device)
        ids = torch.as_tensor(phones, dtype=torch.long).view(1, -1).to(self.device)
        if isinstance(self.sovits, CfmSoVITS):
            assert isinstance(timbre, CfmPrompt) and self.vocoder is not None
            mel = self.sovits.decode_mel(codes, ids, timbre, sample_steps, speed, generator=generator)
            with torch.inference_mode():
                audio = self.vocoder(mel)
        else:
            assert isinstance(timbre, Timbre)
            audio = self.sovits.decode(codes, ids, timbre, speed, noise_scale, generator=generator)
        out = audio[0, 0].float().cpu().numpy()
        del audio
        release_free_memory()  # the decoder's activations (~100-170 MB for 10 s) are done with
        return out

    # ---------------------------------------------------------------------- whole request
    def plan(self, request: TTSRequest) -> tuple[SynthesisPlan, ReferenceInfo, tuple[str, ...], Timings]:
        """Run stages 1 and 2 for ``request``: the plan, how the reference was used, notes, timings."""
        start = time.perf_counter()
        sample_steps = self.sample_steps(request)
        if self.is_cfm and request.extra_references:
            raise TTSInputError(
                f"{self.version} models take their timbre from the one reference clip (upstream offers no "
                "extra references for v3/v4): leave the extra reference clips out",
                field="extra_references",
            )
        if self.is_cfm and not request.uses_prompt:
            raise TTSInputError(
                f"{self.version} models continue the reference clip's speech, so they need its transcript as "
                "the prompt text (reference-free mode is not available for v3/v4, as upstream)",
                field="prompt_text",
            )
        notes: list[str] = []
        segments = self.segment_inputs(request.text, request.text_language, request.split_method)
        foreign = scripts.unreadable_letters(request.text)
        if foreign:
            notes.append(f"Letters the models cannot read were skipped: {foreign[:24]}")
        t_text = time.perf_counter() - start

        t0 = time.perf_counter()
        # Decode first without HuBERT: whether the prompt is used depends on the trimming.
        clip, features, cached = self.reference_features(request.reference, need_tokens=False)
        prompt_text = request.prompt_text.strip("\n") if request.uses_prompt else ""
        if clip.trimmed:
            notes.append(
                f"The reference clip is {clip.original_seconds:.1f} s long; its best span between pauses, "
                f"{clip.start_seconds:.1f}-{clip.end_seconds:.1f} s, was used."
            )
            if prompt_text:
                matched = ref.matching_prompt(prompt_text, clip)
                if matched is None:
                    notes.append(
                        "The prompt text could not be matched to the kept part of the clip, so reference-free "
                        "mode was used; give a 3-10 s clip with its exact text for the best result."
                    )
                    prompt_text = ""
                elif matched != prompt_text:
                    notes.append(f"The prompt text was cut to the kept phrases: {matched!r}.")
                    prompt_text = matched
        if prompt_text and features.prompt_tokens is None:
            clip, features, cached = self.reference_features(request.reference, need_tokens=True)
        if self.is_cfm and not prompt_text:
            raise TTSInputError(
                "the prompt text could not be matched to the kept part of the long reference clip, and "
                f"{self.version} models need the transcript of what they continue: give a 3-10 s clip with "
                "its exact text",
                field="prompt_text",
            )
        extras = [self._extra_reference(s) for s in request.extra_references]
        specs = [features.spectrogram] + [spec for spec, _ in extras]
        embeddings = [features.sv_embedding] + [emb for _, emb in extras]
        timbre: Timbre | CfmPrompt | None = None if self.is_cfm else self.timbre(specs, embeddings)
        t_ref = time.perf_counter() - t0

        t0 = time.perf_counter()
        prompt = self.prompt_input(prompt_text, request.prompt_language) if prompt_text else None
        t_text += time.perf_counter() - t0
        if timbre is None:
            assert prompt is not None
            t0 = time.perf_counter()
            timbre = self.cfm_prompt(features, prompt)
            t_ref += time.perf_counter() - t0
        seed = random_seed() if request.seed is None else int(request.seed)
        plan = SynthesisPlan(
            segments=tuple(segments),
            prompt=prompt,
            prompt_tokens=features.prompt_tokens if prompt is not None else None,
            timbre=timbre,
            sampling=self.sampling_options(request),
            seed=seed,
            speed=float(request.speed),
            pause_seconds=float(request.pause_seconds),
            batch_size=int(request.batch_size),
            sample_steps=sample_steps,
            batches=plan_batches(
                [len(s.text) for s in segments],
                int(request.batch_size),
                request.split_bucket,
                float(request.batch_threshold),
            ),
        )
        info = ReferenceInfo(
            original_seconds=clip.original_seconds,
            start_seconds=clip.start_seconds,
            end_seconds=clip.end_seconds,
            trimmed=clip.trimmed,
            prompt_text=prompt.text if prompt is not None else "",
            reference_free=prompt is None,
            cached=cached,
            sha256=clip.sha256,
        )
        return plan, info, tuple(notes), Timings(text=t_text, reference=t_ref)

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
        from app.infer.runner import Runner  # the decoding loop, kept in its own module

        runner = Runner(self, plan, options or StreamOptions(), token_chunks)
        yield from runner.chunks(info, notes, timings, start)
