"""api_v2-compatible endpoints: ``GET|POST /tts``, ``/set_gpt_weights``, ``/set_sovits_weights``.

Differences from upstream, all on the safe side: reference and model paths resolve only inside
the data folder; a missing parameter is a 400 naming it (upstream's GET answers 500); models are
read with the restricted readers; ``/control`` and ``/set_refer_audio`` refuse (a stop/restart
over HTTP is a denial-of-service switch; references travel with each request instead).
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from app.api.engine import ApiState
from app.api.errors import REQUEST_FIELD_PARAMS, ApiError, as_api_error, fields_named
from app.api.responses import AUDIO_RESPONSES, audio_response, stream_options
from app.api.schemas import FieldText, TTSParams
from app.api.security import require_key
from app.infer.request import AudioSource, PipelineSpec, TTSRequest
from app.paths import PathOutsideRoot
from app.services.model_choice import inspect_weight, relative_name, resolve_weight
from app.services.presets import PresetError, VoicePreset

router = APIRouter(tags=["api_v2 compatible"], dependencies=[Depends(require_key)])
open_router = APIRouter(tags=["api_v2 compatible"])

# api_v2 parameter -> TTSRequest field, for the parameters a preset may preset.
PARAM_TO_FIELD = {
    "top_k": "top_k",
    "top_p": "top_p",
    "temperature": "temperature",
    "repetition_penalty": "repetition_penalty",
    "speed_factor": "speed",
    "fragment_interval": "pause_seconds",
    "text_split_method": "split_method",
    "seed": "seed",
    "batch_size": "batch_size",
}


def state(request: Request) -> ApiState:
    return request.app.state.api


def load_preset(api: ApiState, name: str, param: str) -> VoicePreset:
    """The preset ``name``; 404 when there is none, 400 for a name no preset can have (``param`` named)."""
    try:
        return api.presets.get(name)
    except PresetError as exc:
        error = as_api_error(exc, param)
        assert error is not None
        raise error from None


def build_request(
    api: ApiState,
    params: TTSParams,
    explicit: set[str],
    ref_upload: bytes | None = None,
    aux_uploads: tuple[bytes, ...] = (),
) -> tuple[TTSRequest, VoicePreset | None]:
    """The :class:`TTSRequest` of a /tts call: its own values, else its preset's, else api_v2's defaults."""
    preset = load_preset(api, params.preset, "preset") if params.preset else None
    reference: AudioSource
    if ref_upload is not None:
        reference = ref_upload
    elif params.ref_audio_path:
        reference = api.data_file(params.ref_audio_path, "ref_audio_path")
    elif preset is not None:
        reference = api.presets.reference_path(preset)
    else:
        raise ApiError(
            400,
            "ref_audio_path is required: name a clip under the data folder, upload it as ref_audio "
            "(multipart POST), or name a saved voice with preset",
            param="ref_audio_path",
            code="missing_reference",
        )
    extra: tuple[AudioSource, ...]
    if aux_uploads:
        extra = aux_uploads
    elif params.aux_ref_audio_paths:
        extra = tuple(
            api.data_file(p, "aux_ref_audio_paths") for p in params.aux_ref_audio_paths if p.strip()
        )
    elif preset is not None and ref_upload is None and not params.ref_audio_path:
        extra = api.presets.extra_paths(preset)
    else:
        extra = ()
    text_lang = params.text_lang or (preset.text_language if preset else None)
    if text_lang is None:
        raise ApiError(400, "text_lang is required (zh, en, ja, ko, yue, auto, ...)", param="text_lang")
    if preset is None and params.prompt_text.strip() and params.prompt_lang is None:
        # api_v2 answers 400 too: the prompt's language decides how it is read.
        raise ApiError(
            400,
            "prompt_lang is required with a prompt_text (zh, en, ja, ko, yue, auto, ...)",
            param="prompt_lang",
        )
    defaults = preset.defaults() if preset else {}
    sampling: dict[str, Any] = {}
    for param, field in PARAM_TO_FIELD.items():
        use_own = param in explicit or field not in defaults
        sampling[field] = getattr(params, param) if use_own else defaults[field]
    if not params.parallel_infer:
        sampling["batch_size"] = 1  # api_v2's sequential mode: one segment at a time
    own_prompt = "prompt_text" in explicit or preset is None
    request = TTSRequest(
        text=params.text,
        reference=reference,
        text_language=text_lang,
        prompt_text=params.prompt_text if own_prompt else preset.prompt_text,
        prompt_language=params.prompt_lang or (preset.prompt_language if preset else "auto"),
        extra_references=extra,
        # Upstream turns bucketing off while streaming: a bucket's segments finish out of order.
        split_bucket=params.split_bucket and params.stream_mode == 0,
        batch_threshold=params.batch_threshold,
        sample_steps=params.sample_steps,
        **sampling,
    )
    return request, preset


async def respond(
    api: ApiState,
    params: TTSParams,
    explicit: set[str],
    ref_upload: bytes | None = None,
    aux_uploads: tuple[bytes, ...] = (),
) -> Response:
    def prepare() -> tuple[TTSRequest, PipelineSpec]:
        # File system work (paths, presets, the weights listing) stays off the event loop: the
        # data root may be a network volume.
        request, preset = build_request(api, params, explicit, ref_upload, aux_uploads)
        return request, api.spec_for(params.gpt_weights, params.sovits_weights, preset)

    # Where this request's clips came from: errors about them name that parameter.
    reference = "ref_audio" if ref_upload is not None else "ref_audio_path"
    if ref_upload is None and not params.ref_audio_path and params.preset:
        reference = "preset"
    extra = "aux_ref_audio" if aux_uploads else "aux_ref_audio_paths"
    if not aux_uploads and not params.aux_ref_audio_paths and reference == "preset":
        extra = "preset"
    with fields_named({**REQUEST_FIELD_PARAMS, "reference": reference, "extra_references": extra}):
        request, spec = await asyncio.to_thread(prepare)
        return await audio_response(
            api,
            spec,
            request,
            params.media_type,
            params.stream_mode,
            stream_options(params.stream_mode, params.min_chunk_length, params.overlap_length),
        )


@router.get(
    "/tts",
    summary="Synthesise speech (api_v2 query string)",
    response_class=Response,
    responses=AUDIO_RESPONSES,
)
async def tts_get(request: Request, params: Annotated[TTSParams, Query()]) -> Response:
    """api_v2's GET form: every parameter in the query string; the reference is a path or a preset."""
    return await respond(state(request), params, set(request.query_params.keys()))


def _schema_without_title() -> dict[str, Any]:
    schema = TTSParams.model_json_schema()
    schema.pop("title", None)
    return schema


def _multipart_schema() -> dict[str, Any]:
    schema = _schema_without_title()
    schema["properties"] = {
        **schema["properties"],
        "ref_audio": {"type": "string", "format": "binary", "description": "reference clip (upload)"},
        "aux_ref_audio": {"type": "array", "items": {"type": "string", "format": "binary"}},
    }
    return schema


async def _read_form(request: Request) -> tuple[dict[str, Any], bytes | None, tuple[bytes, ...]]:
    form = await request.form()
    fields: dict[str, Any] = {}
    ref: bytes | None = None
    aux: list[bytes] = []
    for key, value in form.multi_items():
        if isinstance(value, UploadFile) or hasattr(value, "read"):
            data = await value.read()
            if key == "ref_audio":
                ref = data
            elif key == "aux_ref_audio":
                aux.append(data)
            else:
                raise ApiError(
                    400, f"{key}: unexpected file; upload ref_audio and aux_ref_audio only", param=key
                )
        elif key == "aux_ref_audio_paths":
            fields.setdefault(key, []).append(value)
        else:
            fields[key] = value
    return fields, ref, tuple(aux)


@router.post(
    "/tts",
    summary="Synthesise speech (api_v2 JSON body, or multipart with an uploaded reference)",
    response_class=Response,
    responses=AUDIO_RESPONSES,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": _schema_without_title()},
                "multipart/form-data": {"schema": _multipart_schema()},
            },
        }
    },
)
async def tts_post(request: Request) -> Response:
    """api_v2's POST form (JSON), or multipart form fields with the clip uploaded as ``ref_audio``."""
    api = state(request)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    ref: bytes | None = None
    aux: tuple[bytes, ...] = ()
    if content_type == "multipart/form-data" or content_type == "application/x-www-form-urlencoded":
        data, ref, aux = await _read_form(request)
    elif content_type in ("application/json", ""):
        try:
            data = json.loads(await request.body() or b"{}")
        except ValueError:
            raise ApiError(400, "the body is not valid JSON", code="invalid_json") from None
        if not isinstance(data, dict):
            raise ApiError(400, "the JSON body must be an object of parameters", code="invalid_json")
    else:
        raise ApiError(
            415,
            f"unsupported Content-Type {content_type!r}: send JSON or multipart/form-data",
            code="media_type",
        )
    try:
        params = TTSParams.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None
    return await respond(api, params, set(data), ref, aux)


async def _set_weights(request: Request, kind: str, weights_path: str | None) -> JSONResponse:
    api = state(request)
    if not weights_path or not weights_path.strip():
        raise ApiError(400, "weights_path is required", param="weights_path")
    try:
        path = resolve_weight(api.layout, kind, weights_path)
    except PathOutsideRoot as exc:
        raise ApiError(403, f"weights_path: {exc}", param="weights_path", code="path_not_allowed") from None
    except ValueError as exc:
        raise ApiError(400, f"weights_path: {exc}", param="weights_path", code="model_unavailable") from None
    try:
        info = await asyncio.to_thread(inspect_weight, path, kind)
    except ValueError as exc:
        raise ApiError(400, f"weights_path: {exc}", param="weights_path", code="model_unavailable") from None
    api.models.set(kind, path)
    return JSONResponse(
        {"message": "success", f"{kind}_weights": relative_name(path, api.layout), "version": info.version}
    )


@router.get("/set_gpt_weights", summary="Make a GPT model the current one")
async def set_gpt_weights(request: Request, weights_path: FieldText | None = None) -> JSONResponse:
    """``weights_path``: a listed GPT file (``GET /weights``), relative to the data folder.

    The file is checked with the restricted reader; it is loaded by the next synthesis, after
    the running ones finish. The choice is stored under the data folder (shared by replicas).
    """
    return await _set_weights(request, "gpt", weights_path)


@router.get("/set_sovits_weights", summary="Make a SoVITS model the current one")
async def set_sovits_weights(request: Request, weights_path: FieldText | None = None) -> JSONResponse:
    """``weights_path``: a listed SoVITS generator file (``GET /weights``), relative to the data folder."""
    return await _set_weights(request, "sovits", weights_path)


@open_router.get("/control", summary="Refused: no stop/restart over HTTP", status_code=403)
async def control(command: FieldText | None = None) -> JSONResponse:
    """api_v2's ``/control?command=exit|restart`` lets anyone stop the server; this one refuses."""
    raise ApiError(
        403,
        "this server cannot be stopped or restarted over HTTP; stop the process itself (Ctrl+C, SIGTERM)",
        param="command",
        code="not_supported",
    )


@router.get("/set_refer_audio", summary="Refused: references travel with each request")
async def set_refer_audio(refer_audio_path: FieldText | None = None) -> JSONResponse:
    """A server-wide reference would mix voices between clients; pass it with each request instead."""
    raise ApiError(
        400,
        "there is no server-wide reference: pass ref_audio_path (or upload ref_audio, or name a preset) "
        "with each /tts request",
        param="refer_audio_path",
        code="not_supported",
    )
