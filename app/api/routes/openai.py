"""OpenAI-compatible speech: ``POST /v1/audio/speech``, ``GET /v1/models[/{id}]``,
``GET /v1/audio/voices``, ``GET|PUT /v1/audio/voice_map``.

``voice`` names a saved preset (reference clip + what it says + models + defaults) or one of
OpenAI's built-in voices, which the voice table maps to presets
(:mod:`app.services.openai_voices`); ``model`` is a known id, dated or not
(:mod:`app.api.openai_models`; they all run the same engine). ``pcm`` is 16-bit little-endian
mono at 24 kHz, as OpenAI sends it. ``stream``/``stream_format: "audio"`` stream every format as
it is made; ``stream_format: "sse"`` sends OpenAI's ``speech.audio.delta``/``done`` events.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import ConfigDict, Field

from app.api.engine import ApiState
from app.api.errors import REQUEST_FIELD_PARAMS, ApiError, as_api_error, fields_named
from app.api.openai_models import MODEL_IDS, model_base, model_object
from app.api.responses import AUDIO_RESPONSES, audio_response
from app.api.routes.tts import load_preset, state
from app.api.schemas import FieldText, RequestModel, SpeechRequest
from app.api.security import require_key
from app.infer.request import PipelineSpec, TTSRequest
from app.services.openai_voices import OPENAI_VOICES, VoiceTable, VoiceTableStore
from app.services.presets import PresetError

router = APIRouter(tags=["OpenAI compatible"], dependencies=[Depends(require_key)])

OPENAI_PCM_RATE = 24_000
# TTSRequest field -> the field of /v1/audio/speech of that value: the preset (voice) gives the rest.
SPEECH_FIELDS = {
    **dict.fromkeys(REQUEST_FIELD_PARAMS, "voice"),
    "text": "input",
    "text_language": "language",
    "speed": "speed",
    "seed": "seed",
}
INSTRUCTIONS_NOTE = (
    "instructions: not applied; this engine speaks in the voice's reference style and cannot "
    "follow spoken instructions (choose or save a preset whose reference clip has the style)"
)


def voice_table(api: ApiState) -> VoiceTableStore:
    return VoiceTableStore(api.presets)


def _library_error(exc: Exception, param: str) -> ApiError:
    error = as_api_error(exc, param)
    assert error is not None
    return error


def _prepare(api: ApiState, body: SpeechRequest) -> tuple[TTSRequest, PipelineSpec, tuple[str, ...]]:
    """The request, its models and the notes of this route (which preset, instructions)."""
    name = body.voice_name
    try:
        chosen = voice_table(api).resolve(name, api.settings.openai_voice)
    except PresetError as exc:
        raise _library_error(exc, "voice") from None
    preset = load_preset(api, chosen.preset, "voice")
    notes = [n for n in (chosen.note(name),) if n]
    if body.instructions and body.instructions.strip():
        notes.append(INSTRUCTIONS_NOTE)
    settings = preset.defaults()
    if "speed" in body.model_fields_set or "speed" not in settings:
        settings["speed"] = body.speed
    if body.seed is not None:
        settings["seed"] = body.seed
    tts_request = TTSRequest(
        text=body.input,
        reference=api.presets.reference_path(preset),
        text_language=body.language or preset.text_language,
        prompt_text=preset.prompt_text,
        prompt_language=preset.prompt_language,
        extra_references=api.presets.extra_paths(preset),
        **settings,
    )
    return tts_request, api.spec_for(preset=preset), tuple(notes)


@router.post(
    "/v1/audio/speech",
    summary="Synthesise speech with a saved voice (OpenAI)",
    response_class=Response,
    responses={
        **AUDIO_RESPONSES,
        200: {
            **AUDIO_RESPONSES[200],
            "content": {
                **AUDIO_RESPONSES[200]["content"],
                "text/event-stream": {"schema": {"type": "string"}},
            },
        },
    },
)
async def speech(body: SpeechRequest, request: Request) -> Response:
    """Returns the audio bytes; with ``stream`` (or ``stream_format: "audio"``) every format is
    sent while it is synthesised; ``stream_format: "sse"`` sends server-sent events."""
    api = state(request)
    sse = body.stream_format == "sse"
    streaming = 2 if body.stream or body.stream_format is not None else 0
    pcm_rate = OPENAI_PCM_RATE if body.response_format == "pcm" else None
    with fields_named(SPEECH_FIELDS):
        tts_request, spec, notes = await asyncio.to_thread(_prepare, api, body)
        return await audio_response(
            api, spec, tts_request, body.response_format, streaming, None, pcm_rate, notes=notes, sse=sse
        )


@router.get("/v1/models", summary="Model ids accepted by /v1/audio/speech")
async def models() -> dict:
    return {"object": "list", "data": [model_object(m) for m in MODEL_IDS]}


@router.get("/v1/models/{model}", summary="One model id (OpenAI's model object; dated ids too)")
async def model(model: FieldText) -> dict:
    if model_base(model) is None:
        raise ApiError(
            404,
            f"model: the model {model!r} does not exist; GET /v1/models lists the ids "
            "(a snapshot date may follow one: -YYYY-MM-DD or -MMDD)",
            param="model",
            code="model_not_found",
        )
    return model_object(model)


@router.get("/v1/audio/voices", summary="Saved voices and built-in names usable as `voice`")
async def voices(request: Request) -> dict:
    api = state(request)
    presets = api.presets.list()
    effective = await asyncio.to_thread(voice_table(api).effective, api.settings.openai_voice)
    builtin = [name for name, preset in effective.items() if preset and name not in {p.name for p in presets}]
    return {
        "voices": [p.name for p in presets] + builtin,
        "data": [
            {"id": p.name, "name": p.name, "language": p.text_language, "description": p.description}
            for p in presets
        ]
        + [{"id": name, "name": name, "preset": effective[name]} for name in builtin],
    }


class VoiceMapBody(RequestModel):
    """``PUT /v1/audio/voice_map``: the whole table (names -> presets, and the default)."""

    model_config = ConfigDict(extra="forbid")

    voices: dict[str, str] = Field(
        default_factory=dict, description="voice name (alloy, nova, ... or any alias) -> preset name"
    )
    default: str = Field("", description="preset for built-in names not listed ('' = none)")


def _voice_map(api: ApiState) -> dict:
    store = voice_table(api)
    table = store.load()
    return {
        "voices": table.voices,
        "default": table.default,
        "setting": api.settings.openai_voice,
        "builtin": list(OPENAI_VOICES),
        "effective": store.effective(api.settings.openai_voice),
    }


@router.get("/v1/audio/voice_map", summary="Which preset each OpenAI voice name speaks with")
async def get_voice_map(request: Request) -> dict:
    """``voices`` and ``default`` as saved (presets/openai_voices.json), ``setting``
    (STUDIO_OPENAI_VOICE), and ``effective``: each name -> its preset now (null: refused)."""
    api = state(request)
    try:
        return await asyncio.to_thread(_voice_map, api)
    except PresetError as exc:
        raise _library_error(exc, "voice_map") from None


@router.put("/v1/audio/voice_map", summary="Replace the voice table (names -> presets, default)")
async def put_voice_map(body: VoiceMapBody, request: Request) -> dict:
    """Every preset named must be saved; a saved preset of a voice's own name still wins."""
    api = state(request)
    table = VoiceTable(voices=dict(body.voices), default=body.default.strip())
    try:
        await asyncio.to_thread(voice_table(api).save, table)
        return await asyncio.to_thread(_voice_map, api)
    except PresetError as exc:
        raise _library_error(
            exc, "voices" if exc.field and exc.field.startswith("voices") else "default"
        ) from None
