"""Saved voices: ``GET /presets``, ``GET /presets/{name}``, ``POST /presets`` (upload), ``DELETE /presets/{name}``."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from app.api.errors import ApiError
from app.api.routes.tts import load_preset, state
from app.api.schemas import FieldText, PresetFields
from app.api.security import require_key
from app.config_io import to_dict
from app.paths import PathOutsideRoot
from app.services.model_choice import relative_name, resolve_weight
from app.services.presets import ClipUpload, VoicePreset

router = APIRouter(tags=["voice presets"], dependencies=[Depends(require_key)])


def _public(preset: VoicePreset) -> dict[str, Any]:
    return to_dict(preset)


@router.get("/presets", summary="List saved voices")
async def list_presets(request: Request) -> dict:
    return {"presets": [_public(p) for p in state(request).presets.list()]}


@router.get("/presets/{name}", summary="One saved voice")
async def get_preset(name: FieldText, request: Request) -> dict:
    return _public(load_preset(state(request), name, "name"))


def _weights(request: Request, kind: str, value: str | None) -> str:
    if not value:
        return ""
    api = state(request)
    param = f"{kind}_weights"
    try:
        return relative_name(resolve_weight(api.layout, kind, value), api.layout)
    except PathOutsideRoot as exc:
        raise ApiError(403, f"{param}: {exc}", param=param, code="path_not_allowed") from None
    except ValueError as exc:
        raise ApiError(400, f"{param}: {exc}", param=param, code="model_unavailable") from None


_FORM_SCHEMA = {
    "type": "object",
    "required": ["name", "ref_audio"],
    "properties": {
        **PresetFields.model_json_schema()["properties"],
        "ref_audio": {"type": "string", "format": "binary", "description": "the reference clip (3-10 s)"},
        "aux_ref_audio": {"type": "array", "items": {"type": "string", "format": "binary"}},
    },
}


@router.post(
    "/presets",
    status_code=201,
    summary="Save a voice (multipart: fields + ref_audio file)",
    openapi_extra={
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": _FORM_SCHEMA}}}
    },
)
async def create_preset(request: Request) -> JSONResponse:
    """Saved atomically under ``presets/<name>/``; 409 when the name exists (unless ``overwrite``)."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise ApiError(
            415, "send the preset as multipart/form-data with the clip as ref_audio", code="media_type"
        )
    form = await request.form()
    fields: dict[str, Any] = {}
    reference: ClipUpload | None = None
    extra: list[ClipUpload] = []
    for key, value in form.multi_items():
        if hasattr(value, "read"):
            clip = ClipUpload(await value.read(), value.filename or "")
            if key == "ref_audio":
                reference = clip
            elif key == "aux_ref_audio":
                extra.append(clip)
            else:
                raise ApiError(
                    400, f"{key}: unexpected file; upload ref_audio and aux_ref_audio only", param=key
                )
        else:
            fields[key] = value
    try:
        form_fields = PresetFields.model_validate(fields)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None
    if reference is None:
        raise ApiError(400, "ref_audio is required: upload the reference clip", param="ref_audio")
    preset = VoicePreset(
        name=form_fields.name,
        reference="",
        prompt_text=form_fields.prompt_text,
        prompt_language=form_fields.prompt_lang,
        text_language=form_fields.text_lang,
        gpt_weights=_weights(request, "gpt", form_fields.gpt_weights),
        sovits_weights=_weights(request, "sovits", form_fields.sovits_weights),
        top_k=form_fields.top_k,
        top_p=form_fields.top_p,
        temperature=form_fields.temperature,
        repetition_penalty=form_fields.repetition_penalty,
        speed=form_fields.speed_factor,
        pause_seconds=form_fields.fragment_interval,
        split_method=form_fields.text_split_method,
        seed=None if form_fields.seed in (None, -1) else form_fields.seed,
        description=form_fields.description,
    )
    saved = await asyncio.to_thread(
        state(request).presets.create, preset, reference, tuple(extra), form_fields.overwrite
    )
    return JSONResponse(_public(saved), status_code=201)


@router.delete("/presets/{name}", status_code=204, summary="Delete a saved voice")
async def delete_preset(name: FieldText, request: Request) -> Response:
    await asyncio.to_thread(state(request).presets.delete, name)
    return Response(status_code=204)
