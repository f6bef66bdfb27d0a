"""OpenAI-compatible speech: ``POST /v1/audio/speech``, ``GET /v1/models``, ``GET /v1/audio/voices``.

``voice`` names a saved preset (reference clip + what it says + models + defaults); ``model`` is
one of :data:`MODEL_IDS` (they all run the same engine: OpenAI SDKs insist on sending one).
``pcm`` is 16-bit little-endian mono at 24 kHz, as OpenAI sends it.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from app.api.errors import REQUEST_FIELD_PARAMS, ApiError, fields_named
from app.api.responses import AUDIO_RESPONSES, audio_response
from app.api.routes.tts import load_preset, state
from app.api.schemas import SpeechRequest
from app.api.security import require_key
from app.infer.request import PipelineSpec, TTSRequest

router = APIRouter(tags=["OpenAI compatible"], dependencies=[Depends(require_key)])

MODEL_IDS = ("gpt-sovits", "tts-1", "tts-1-hd", "gpt-4o-mini-tts")
OWNER = "sovits-studio"
OPENAI_PCM_RATE = 24_000
# TTSRequest field -> the field of /v1/audio/speech of that value: the preset (voice) gives the rest.
SPEECH_FIELDS = {
    **dict.fromkeys(REQUEST_FIELD_PARAMS, "voice"),
    "text": "input",
    "text_language": "language",
    "speed": "speed",
    "seed": "seed",
}


@router.post(
    "/v1/audio/speech",
    summary="Synthesise speech with a saved voice (OpenAI)",
    response_class=Response,
    responses=AUDIO_RESPONSES,
)
async def speech(body: SpeechRequest, request: Request) -> Response:
    """Returns the audio bytes; with ``stream`` (or ``stream_format: "audio"``) wav and pcm are
    sent while they are synthesised."""
    api = state(request)
    if body.model not in MODEL_IDS:
        raise ApiError(
            400, f"model: {body.model!r} is unknown; use one of {', '.join(MODEL_IDS)}", param="model"
        )

    def prepare() -> tuple[TTSRequest, PipelineSpec]:
        preset = load_preset(api, body.voice, "voice")
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
        return tts_request, api.spec_for(preset=preset)

    streaming = 2 if body.stream or body.stream_format == "audio" else 0
    pcm_rate = OPENAI_PCM_RATE if body.response_format == "pcm" else None
    with fields_named(SPEECH_FIELDS):
        tts_request, spec = await asyncio.to_thread(prepare)
        return await audio_response(api, spec, tts_request, body.response_format, streaming, None, pcm_rate)


@router.get("/v1/models", summary="Model ids accepted by /v1/audio/speech")
async def models() -> dict:
    return {
        "object": "list",
        "data": [{"id": m, "object": "model", "created": 0, "owned_by": OWNER} for m in MODEL_IDS],
    }


@router.get("/v1/audio/voices", summary="Saved voices usable as `voice`")
async def voices(request: Request) -> dict:
    presets = state(request).presets.list()
    return {
        "voices": [p.name for p in presets],
        "data": [
            {"id": p.name, "name": p.name, "language": p.text_language, "description": p.description}
            for p in presets
        ],
    }
