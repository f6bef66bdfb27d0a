"""Request bodies and query parameters of the HTTP API (pydantic), with api_v2's names and defaults.

Ranges mirror :class:`app.infer.TTSRequest` so a bad value is refused here, with the API's field
name in the message, before anything is queued. Every string a client sends (each field of the
request models, through :class:`RequestModel`; query and path parameters outside them, through
:data:`FieldText`) is checked by :func:`check_text`: no control characters, no lone surrogates,
at most :data:`MAX_FIELD_CHARS` characters (the text to speak has its own, longer limit).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from app.api.encoding import check_format
from app.api.openai_models import check_model
from app.infer.request import (
    DEFAULT_SAMPLE_STEPS,
    MAX_BATCH_SIZE,
    MAX_PAUSE_SECONDS,
    MAX_SEED,
    SAMPLE_STEPS_RANGE,
    SPEED_RANGE,
)
from app.text import LanguageMode, SplitMethod, UnsupportedLanguage

MAX_TEXT_CHARS = 20_000  # /tts (the text is split into segments and synthesised one by one)
OPENAI_MAX_INPUT_CHARS = 4096  # OpenAI's limit on `input`
TTS_MEDIA_TYPES = ("wav", "raw", "ogg", "flac", "aac", "mp3")
SPEECH_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
STREAMING_MODES = (0, 1, 2, 3)
MAX_OVERLAP_TOKENS = 20  # streaming cross-fade (upstream default 2 tokens = 80 ms)
# Longest path, name, language or other short field: far beyond any real one (a file name is at
# most 255 bytes on common file systems); a longer one is a mistake or an attack.
MAX_FIELD_CHARS = 1024
# Never part of text, a name or a path: C0/C1 control characters other than tab and line breaks
# (NUL cuts C strings and file names short), and lone UTF-16 surrogates (not encodable as UTF-8).
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")

TopK = Annotated[int, Field(ge=1, le=1000, description="GPT sampling: keep the k most likely tokens")]
TopP = Annotated[float, Field(gt=0.0, le=1.0, description="GPT sampling: nucleus filter (1 = off)")]
Temperature = Annotated[float, Field(ge=0.0, le=5.0, description="GPT sampling temperature")]
Penalty = Annotated[float, Field(ge=0.01, le=5.0, description="penalty on repeated tokens (1 = off)")]
Speed = Annotated[
    float, Field(ge=SPEED_RANGE[0], le=SPEED_RANGE[1], description="speaking rate (> 1 faster)")
]
Pause = Annotated[float, Field(ge=0.0, le=MAX_PAUSE_SECONDS, description="silence after each segment (s)")]
Seed = Annotated[int, Field(ge=-1, le=MAX_SEED, description="random seed (-1: draw one)")]


def check_text(value: str, limit: int = MAX_FIELD_CHARS) -> str:
    """``value`` unchanged, or ValueError saying which character or how long (the field is named
    by the caller's error handler)."""
    bad = _FORBIDDEN.search(value)
    if bad is not None:
        char = bad.group()
        what = "a NUL byte" if char == "\x00" else f"the control character U+{ord(char):04X}"
        if "\ud800" <= char <= "\udfff":
            what = f"a lone surrogate U+{ord(char):04X}"
        raise ValueError(f"contains {what} at position {bad.start()}; remove it")
    if len(value) > limit:
        raise ValueError(f"is {len(value)} characters long; the limit is {limit}")
    return value


# A string query or path parameter outside the request models (same checks as their fields).
FieldText = Annotated[str, AfterValidator(check_text)]


class RequestModel(BaseModel):
    """Base of the request models: every string field (and every string in a list field) passes
    :func:`check_text`, with the limit of :attr:`long_fields` or :data:`MAX_FIELD_CHARS`."""

    # field -> its own length limit, for fields longer than MAX_FIELD_CHARS (the text to speak).
    long_fields: ClassVar[dict[str, int]] = {}

    @field_validator("*", mode="after")
    @classmethod
    def _strings(cls, value: Any, info: ValidationInfo) -> Any:
        limit = cls.long_fields.get(info.field_name or "", MAX_FIELD_CHARS)
        for item in value if isinstance(value, list) else (value,):
            if isinstance(item, str):
                check_text(item, limit)
        return value


def language_id(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return LanguageMode.parse(value).value
    except UnsupportedLanguage as exc:
        raise ValueError(str(exc)) from None


def split_id(value: str | None) -> str | None:
    return None if value is None else SplitMethod.parse(value).value


def _speakable(value: str, limit: int) -> str:
    if not value.strip():
        raise ValueError("is empty: give the text to speak")
    if len(value) > limit:
        raise ValueError(f"is {len(value)} characters long; the limit is {limit}")
    return value


class ErrorDetail(BaseModel):
    """The OpenAI-style part of an error body."""

    message: str
    type: str = Field(
        description="invalid_request_error, authentication_error, not_found_error, server_error"
    )
    param: str | None = Field(description="the request field at fault, when one is")
    code: str = Field(description="a stable id of the error, e.g. invalid_value, path_not_allowed")


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer (``app.api.errors``): api_v2 clients print ``message``, OpenAI SDKs read ``error``."""

    model_config = ConfigDict(extra="forbid")

    message: str
    error: ErrorDetail
    notes: list[str] | None = Field(
        None, description="what the pipeline noted before it refused (also in the X-Studio-Notes header)"
    )


# The error answers of every route, in the OpenAPI document (instead of FastAPI's 422: bad input
# is a 400 here, as api_v2 answers it).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorBody, "description": "refused: the message names the field and what to change"},
    "5XX": {
        "model": ErrorBody,
        "description": "busy (503, Retry-After) or an internal error (500, an id to look up)",
    },
}


class TTSParams(RequestModel):
    """``GET|POST /tts``: api_v2's parameters and defaults, plus ``preset`` and per-request models."""

    model_config = ConfigDict(extra="ignore")  # api_v2 ignores unknown fields too
    long_fields: ClassVar[dict[str, int]] = {"text": MAX_TEXT_CHARS, "prompt_text": MAX_TEXT_CHARS}

    text: str = Field(description="text to speak (required)")
    text_lang: str | None = Field(
        None, description="language mode of text: zh, en, ja, ko, yue, auto, all_zh, ..."
    )
    ref_audio_path: str | None = Field(
        None,
        description="reference clip, a path under the data folder (or upload ref_audio, or name a preset)",
    )
    aux_ref_audio_paths: list[str] | None = Field(None, description="more clips of the voice (paths)")
    prompt_text: str = Field("", description="what the reference clip says ('' = timbre only)")
    prompt_lang: str | None = Field(None, description="language mode of prompt_text (default auto)")
    top_k: TopK = 15
    top_p: TopP = 1.0
    temperature: Temperature = 1.0
    text_split_method: str = Field("cut5", description="cut0 (none) .. cut5 (every punctuation mark)")
    batch_size: int = Field(1, ge=1, le=MAX_BATCH_SIZE, description="segments decoded together")
    speed_factor: Speed = 1.0
    fragment_interval: Pause = 0.3
    seed: Seed = -1
    media_type: str = Field("wav", description="wav, raw (s16le), ogg, flac, aac, mp3")
    streaming_mode: bool | int = Field(
        False,
        description="0/false: whole file; 1/true: per segment; 2: token chunks; 3: smaller token chunks",
    )
    repetition_penalty: Penalty = 1.35
    # Extensions of this server.
    preset: str | None = Field(None, description="saved voice: its clip, prompt, models and defaults")
    gpt_weights: str | None = Field(None, description="GPT model for this request (default: the current one)")
    sovits_weights: str | None = Field(None, description="SoVITS model for this request")
    # api_v2's batching, streaming and v3/v4 knobs: each is honoured or refused, none ignored.
    batch_threshold: float = Field(
        0.75, ge=0.0, le=1.0, description="split_bucket: least middle/mean length ratio in a batch"
    )
    split_bucket: bool = Field(
        True, description="batch_size > 1: batch segments of similar length (off while streaming)"
    )
    parallel_infer: bool = Field(True, description="false: decode the segments one at a time (batch_size 1)")
    sample_steps: int = Field(
        DEFAULT_SAMPLE_STEPS,
        ge=SAMPLE_STEPS_RANGE[0],
        le=SAMPLE_STEPS_RANGE[1],
        description="flow-matching steps of v3/v4 models; other models accept only the default 32",
    )
    super_sampling: bool = Field(False, description="not available: true is refused (v4 models give 48 kHz)")
    overlap_length: int = Field(
        2, ge=0, le=MAX_OVERLAP_TOKENS, description="streaming_mode 2/3: tokens cross-faded between chunks"
    )
    min_chunk_length: int = Field(16, ge=1, le=500, description="streaming_mode 2/3: tokens per chunk")
    return_fragment: bool = Field(False, description="true: per-segment streaming (= streaming_mode 1)")

    @property
    def stream_mode(self) -> int:
        """streaming_mode as an int; return_fragment (older api_v2) asks for mode 1."""
        mode = int(self.streaming_mode)
        return 1 if mode == 0 and self.return_fragment else mode

    @field_validator("super_sampling")
    @classmethod
    def _super_sampling(cls, v: bool) -> bool:
        if v:
            raise ValueError(
                "is not available here (upstream's AP-BWE 24 -> 48 kHz upsampler of v3 models); "
                "leave it false, or use a v4 model, which gives 48 kHz audio directly"
            )
        return v

    @field_validator("text")
    @classmethod
    def _text(cls, v: str) -> str:
        return _speakable(v, MAX_TEXT_CHARS)

    @field_validator("text_lang", "prompt_lang")
    @classmethod
    def _lang(cls, v: str | None) -> str | None:
        return language_id(v)

    @field_validator("text_split_method")
    @classmethod
    def _split(cls, v: str) -> str:
        return SplitMethod.parse(v).value

    @field_validator("media_type")
    @classmethod
    def _media(cls, v: str) -> str:
        check_format(v.lower(), "media_type", TTS_MEDIA_TYPES)
        return v.lower()

    @field_validator("streaming_mode", mode="before")
    @classmethod
    def _streaming(cls, v: Any) -> int:
        text = str(v).strip().lower()
        mapping = {"true": 1, "false": 0, "": 0, **{str(m): m for m in STREAMING_MODES}}
        if isinstance(v, bool):
            return int(v)
        if text not in mapping:
            raise ValueError("must be 0, 1, 2, 3, true or false")
        return mapping[text]


class VoiceObject(RequestModel):
    """OpenAI's custom-voice form of ``voice``: ``{"id": "..."}``."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(description="a saved preset, or a name of the voice table (GET /v1/audio/voice_map)")


class SpeechRequest(RequestModel):
    """``POST /v1/audio/speech``: OpenAI's fields; ``voice`` names a saved preset or a built-in voice."""

    model_config = ConfigDict(extra="ignore")
    long_fields: ClassVar[dict[str, int]] = {"input": OPENAI_MAX_INPUT_CHARS, "instructions": MAX_TEXT_CHARS}

    model: str = Field(
        description="tts-1, tts-1-hd, gpt-4o-mini-tts or gpt-sovits, optionally dated "
        "(gpt-4o-mini-tts-2025-03-20, tts-1-hd-1106); all the same engine"
    )
    input: str = Field(description=f"text to speak (at most {OPENAI_MAX_INPUT_CHARS} characters)")
    voice: str | VoiceObject = Field(
        description="a saved preset (GET /v1/audio/voices), one of OpenAI's built-in voice names "
        '(mapped to presets by GET|PUT /v1/audio/voice_map), or {"id": <either>}'
    )
    response_format: str = Field("mp3", description="mp3, opus, aac, flac, wav or pcm (s16le, 24 kHz)")
    speed: Speed = 1.0
    instructions: str | None = Field(
        None, description="not followed by this engine: accepted, and the X-Studio-Notes header says so"
    )
    stream_format: Literal["audio", "sse"] | None = Field(
        None, description="audio: the file streamed as it is made; sse: base64 speech.audio.delta events"
    )
    stream: bool = Field(False, description="send the audio while it is synthesised (every format)")
    # Extensions.
    language: str | None = Field(None, description="language mode of input (default: the preset's)")
    seed: Seed | None = None

    @property
    def voice_name(self) -> str:
        """The voice asked for, whether sent as a name or as an object."""
        return self.voice.id if isinstance(self.voice, VoiceObject) else self.voice

    @field_validator("voice", mode="before")
    @classmethod
    def _voice(cls, v: Any) -> Any:
        # One error naming `voice` (not one per member of the union); the object becomes its id.
        if isinstance(v, dict):
            if not isinstance(v.get("id"), str):
                raise ValueError('as an object must be {"id": "<voice name>"}')
            return check_text(v["id"])
        if not isinstance(v, str):
            raise ValueError('must be a voice name or an object {"id": "<voice name>"}')
        return v

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        return check_model(v)

    @field_validator("input")
    @classmethod
    def _input(cls, v: str) -> str:
        return _speakable(v, OPENAI_MAX_INPUT_CHARS)

    @field_validator("response_format")
    @classmethod
    def _format(cls, v: str) -> str:
        check_format(v.lower(), "response_format", SPEECH_FORMATS)
        return v.lower()

    @field_validator("language")
    @classmethod
    def _lang(cls, v: str | None) -> str | None:
        return language_id(v)


class PresetFields(RequestModel):
    """Form fields of ``POST /presets`` (the clip is the ``ref_audio`` file)."""

    model_config = ConfigDict(extra="forbid")
    long_fields: ClassVar[dict[str, int]] = {"prompt_text": MAX_TEXT_CHARS}

    name: str = Field(description="preset name: letters, digits, spaces, '-', '_' or '.'")
    prompt_text: str = ""
    prompt_lang: str = "auto"
    text_lang: str = "auto"
    gpt_weights: str | None = None
    sovits_weights: str | None = None
    top_k: TopK | None = None
    top_p: TopP | None = None
    temperature: Temperature | None = None
    repetition_penalty: Penalty | None = None
    speed_factor: Speed | None = None
    fragment_interval: Pause | None = None
    text_split_method: str | None = None
    seed: Seed | None = None
    description: str = Field("", max_length=500)
    overwrite: bool = False

    @field_validator("prompt_lang", "text_lang")
    @classmethod
    def _lang(cls, v: str) -> str:
        return LanguageMode.parse(v).value if v else "auto"

    @field_validator("text_split_method")
    @classmethod
    def _split(cls, v: str | None) -> str | None:
        return split_id(v or None)
