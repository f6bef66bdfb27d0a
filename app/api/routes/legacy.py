"""Upstream's legacy ``api.py`` protocol: ``GET|POST /``, ``/change_refer``, ``/set_model``; and the
voice listings community clients probe for (``/speakers``, ``/character_list``), over presets.

``GET /?text=...&text_language=zh`` (or the same as a JSON POST) speaks ``text`` with the
request's reference (``refer_wav_path`` + ``prompt_text`` + ``prompt_language``), else a saved
voice (``character``, also spelt ``cha_name``, ``target_voice``, ``voice``, ``speaker``, ``preset``),
else the server's default reference (``/change_refer``, or ``-dr/-dt/-dl`` at start). The answer
is the audio (WAV unless ``media_type`` says otherwise), or a 400 JSON body whose ``message``
says what to change, as upstream answers. ``cut_punc`` cuts the text after each of its marks;
without it the text is cut only at its line breaks, as upstream does by default.

A bare ``GET /`` (no query string) is a browser: it is redirected to the web UI or ``/docs``
(upstream answered it with a 400 or a 500). Differences from upstream, all on the safe side:
paths resolve only inside the data folder, models only from the weights listing, the API key is
required when the server has one, bad values are 400s naming the parameter (upstream: 500s),
and a ``refer_wav_path`` without ``prompt_text`` is used as a timbre-only reference instead of
being swapped silently for the default one.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any, ClassVar

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from app.api.encoding import check_format
from app.api.engine import ApiState
from app.api.errors import REQUEST_FIELD_PARAMS, ApiError, fields_named
from app.api.languages import language_mode
from app.api.responses import AUDIO_RESPONSES, audio_response, stream_options
from app.api.routes.tts import load_preset, state
from app.api.schemas import (
    MAX_TEXT_CHARS,
    TTS_MEDIA_TYPES,
    Penalty,
    RequestModel,
    Seed,
    Speed,
    Temperature,
    TopK,
    TopP,
)
from app.api.security import require_key
from app.infer.request import DEFAULT_SAMPLE_STEPS, SAMPLE_STEPS_RANGE, AudioSource, PipelineSpec, TTSRequest
from app.paths import PathOutsideRoot
from app.services.default_reference import DefaultReference, DefaultReferenceStore
from app.services.model_choice import inspect_weight, relative_name, resolve_weight
from app.services.presets import VoicePreset
from app.text.marks import cut_at_marks, is_punctuation
from app.text.split import SplitMethod

TAG = "legacy api.py compatible"
router = APIRouter(tags=[TAG], dependencies=[Depends(require_key)])
# GET / checks the key itself: a bare GET / (a browser) is redirected without one.
open_router = APIRouter(tags=[TAG])

# TTSRequest field -> the legacy parameter an error names.
LEGACY_FIELD_PARAMS = {
    **REQUEST_FIELD_PARAMS,
    "text_language": "text_language",
    "reference": "refer_wav_path",
    "extra_references": "inp_refs",
    "prompt_language": "prompt_language",
    "speed": "speed",
    "split_method": "text_split_method",
}
# Legacy parameter -> TTSRequest field, for the values a preset may preset.
PRESET_PARAMS = {
    "top_k": "top_k",
    "top_p": "top_p",
    "temperature": "temperature",
    "repetition_penalty": "repetition_penalty",
    "speed": "speed",
    "seed": "seed",
}
# Upstream's answer of a successful /change_refer or /set_model.
SUCCESS = {"code": 0, "message": "Success"}
STREAMING = {"true": 1, "false": 0, "": 0, "0": 0, "1": 1, "2": 2, "3": 3}


class LegacyParams(RequestModel):
    """``GET|POST /``: upstream api.py's parameters and defaults (api_v2 spellings accepted too)."""

    model_config = ConfigDict(extra="ignore")  # upstream ignores unknown fields
    long_fields: ClassVar[dict[str, int]] = {"text": MAX_TEXT_CHARS, "prompt_text": MAX_TEXT_CHARS}

    text: str | None = Field(None, description="text to speak (required)")
    text_language: str | None = Field(
        None,
        validation_alias=AliasChoices("text_language", "text_lang"),
        description="中文, 英文, 日文, 韩文, 粤语, 中英混合, 日英混合, 粤英混合, 韩英混合, 多语种混合, "
        "or zh, en, ja, ko, yue, all_zh, all_ja, all_ko, all_yue, auto, auto_yue (also text_lang)",
    )
    refer_wav_path: str | None = Field(
        None,
        validation_alias=AliasChoices("refer_wav_path", "ref_audio_path"),
        description="reference clip under the data folder (default: the server's default reference)",
    )
    prompt_text: str | None = Field(None, description="what the reference clip says")
    prompt_language: str | None = Field(
        None, validation_alias=AliasChoices("prompt_language", "prompt_lang"), description="its language"
    )
    cut_punc: str | None = Field(None, description="cut the text after each of these marks, e.g. ，。")
    top_k: TopK = 15
    top_p: TopP = 1.0
    temperature: Temperature = 1.0
    speed: Speed = Field(1.0, validation_alias=AliasChoices("speed", "speed_factor"))
    inp_refs: list[str] = Field(
        default_factory=list,
        validation_alias=AliasChoices("inp_refs", "aux_ref_audio_paths"),
        description="more clips of the voice, under the data folder (timbre averaged)",
    )
    sample_steps: int = Field(
        DEFAULT_SAMPLE_STEPS, ge=SAMPLE_STEPS_RANGE[0], le=SAMPLE_STEPS_RANGE[1], description="v3/v4 models"
    )
    if_sr: bool = Field(False, description="v3 super-resolution: not available, true is refused")
    # Extensions (community clients and api_v2 spellings).
    character: str | None = Field(
        None,
        validation_alias=AliasChoices("character", "cha_name", "target_voice", "voice", "speaker", "preset"),
        description="a saved voice (GET /speakers): its clip, prompt, models and defaults",
    )
    text_split_method: str | None = Field(None, description="cut0..cut5 instead of cut_punc")
    media_type: str = Field("wav", description="wav, raw, ogg, flac, aac, mp3")
    streaming_mode: int = Field(0, description="0/false: whole file; 1/true: per segment; 2, 3: chunks")
    repetition_penalty: Penalty = 1.35
    seed: Seed = -1

    @field_validator("text")
    @classmethod
    def _text(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("is empty: give the text to speak")
        return v

    @field_validator("text_language", "prompt_language")
    @classmethod
    def _lang(cls, v: str | None) -> str | None:
        return language_mode(v) if v and v.strip() else None

    @field_validator("cut_punc")
    @classmethod
    def _cut(cls, v: str | None) -> str | None:
        bad = [ch for ch in v or "" if not is_punctuation(ch)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a punctuation mark; give marks only, e.g. ，。?!")
        return v

    @field_validator("inp_refs", mode="before")
    @classmethod
    def _refs(cls, v: Any) -> Any:
        # Upstream's own example quotes the names (inp_refs="456.wav"); a lone string is one clip.
        items = [v] if isinstance(v, str) else v
        if not isinstance(items, list):
            return v
        return [i.strip().removeprefix('"').removesuffix('"') if isinstance(i, str) else i for i in items]

    @field_validator("if_sr")
    @classmethod
    def _sr(cls, v: bool) -> bool:
        if v:
            raise ValueError("is not available here (upstream's v3 24 -> 48 kHz upsampler); leave it false")
        return v

    @field_validator("text_split_method")
    @classmethod
    def _split(cls, v: str | None) -> str | None:
        return SplitMethod.parse(v).value if v else None

    @field_validator("media_type")
    @classmethod
    def _media(cls, v: str) -> str:
        v = "wav" if v.strip().lower() == "auto" else v.strip().lower()
        check_format(v, "media_type", TTS_MEDIA_TYPES)
        return v

    @field_validator("streaming_mode", mode="before")
    @classmethod
    def _streaming(cls, v: Any) -> int:
        if isinstance(v, bool):
            return int(v)
        key = str(v).strip().lower()
        if key not in STREAMING:
            raise ValueError("must be 0, 1, 2, 3, true or false")
        return STREAMING[key]


class LegacyAnswer(BaseModel):
    """Upstream api.py's answer: ``code`` 0 and ``message`` "Success"."""

    code: int
    message: str


class ChangeRefer(RequestModel):
    """``/change_refer``: the server's default reference (all three required, as upstream)."""

    model_config = ConfigDict(extra="ignore")
    long_fields: ClassVar[dict[str, int]] = {"prompt_text": MAX_TEXT_CHARS}

    refer_wav_path: str | None = Field(None, description="clip under the data folder")
    prompt_text: str | None = Field(None, description="what it says")
    prompt_language: str | None = Field(None, description="its language (中文, zh, en, ...)")


class SetModel(RequestModel):
    """``/set_model``: the current GPT and/or SoVITS model (files of ``GET /weights``)."""

    model_config = ConfigDict(extra="ignore")

    gpt_model_path: str | None = Field(None, description="GPT .ckpt, relative to the data folder")
    sovits_model_path: str | None = Field(None, description="SoVITS .pth, relative to the data folder")


def _validate(model: type[RequestModel], data: Any) -> Any:
    if not isinstance(data, dict):
        raise ApiError(400, "the JSON body must be an object of parameters", code="invalid_json")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None


async def _body(request: Request) -> Any:
    """A POST's parameters: form fields, else JSON whatever the Content-Type (as upstream reads it)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = await request.form()
        data: dict[str, Any] = {}
        for key, value in form.multi_items():
            if not isinstance(value, str):
                raise ApiError(400, f"{key}: files are not accepted here; name clips by path", param=key)
            if key in ("inp_refs", "aux_ref_audio_paths"):
                data.setdefault(key, []).append(value)
            else:
                data[key] = value
        return data
    try:
        return json.loads(await request.body() or b"{}")
    except ValueError:
        raise ApiError(400, "the body is not valid JSON", code="invalid_json") from None


def _query(request: Request) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in request.query_params.multi_items():
        if key in ("inp_refs", "aux_ref_audio_paths"):
            data.setdefault(key, []).append(value)
        else:
            data[key] = value
    return data


def _reference(
    api: ApiState, params: LegacyParams, preset: VoicePreset | None
) -> tuple[AudioSource, str, str]:
    """(clip, prompt text, prompt language): the request's, else the preset's, else the default."""
    prompt = params.prompt_text or ""
    if params.refer_wav_path and params.refer_wav_path.strip():
        if prompt.strip() and params.prompt_language is None:
            raise ApiError(
                400,
                "prompt_language is required with a prompt_text (中文, zh, en, ...)",
                param="prompt_language",
            )
        clip = api.data_file(params.refer_wav_path, "refer_wav_path")
        return clip, prompt, params.prompt_language or "auto"
    if preset is not None:
        return api.presets.reference_path(preset), preset.prompt_text, preset.prompt_language
    default = DefaultReferenceStore(api.layout).read()
    if not default.ready:
        raise ApiError(
            400,
            "refer_wav_path is required: the server has no default reference (未指定参考音频且接口无预设); "
            "name a clip under the data folder with prompt_text and prompt_language, name a saved "
            "voice with character, or set a default with /change_refer",
            param="refer_wav_path",
            code="missing_reference",
        )
    return api.data_file(default.path, "refer_wav_path"), default.text, default.language


def _split(params: LegacyParams, text: str, preset: VoicePreset | None) -> tuple[str, str]:
    """(text, split method): cut_punc's cuts as lines read one by one (cut0), else a method."""
    if params.cut_punc is None and params.text_split_method:
        return text, params.text_split_method
    if params.cut_punc is None and preset is not None and preset.split_method:
        return text, preset.split_method
    return cut_at_marks(text, params.cut_punc or ""), SplitMethod.NONE.value


def build_request(api: ApiState, params: LegacyParams) -> tuple[TTSRequest, PipelineSpec]:
    """The :class:`TTSRequest` and models of a legacy call (file system work: off the event loop)."""
    if params.text is None:
        raise ApiError(400, "text is required: the text to speak", param="text")
    preset = load_preset(api, params.character, "character") if params.character else None
    text_language = params.text_language or (preset.text_language if preset else None)
    if text_language is None:
        raise ApiError(
            400, "text_language is required (中文, 英文, 日文, zh, en, ja, ...)", param="text_language"
        )
    reference, prompt_text, prompt_language = _reference(api, params, preset)
    extra: tuple[AudioSource, ...] = tuple(api.data_file(p, "inp_refs") for p in params.inp_refs if p.strip())
    if not extra and preset is not None and not params.refer_wav_path:
        extra = api.presets.extra_paths(preset)
    defaults = preset.defaults() if preset else {}
    explicit = params.model_fields_set
    sampling = {
        field: getattr(params, param) if param in explicit or field not in defaults else defaults[field]
        for param, field in PRESET_PARAMS.items()
    }
    text, method = _split(params, params.text, preset)
    request = TTSRequest(
        text=text,
        reference=reference,
        text_language=text_language,
        prompt_text=prompt_text,
        prompt_language=prompt_language,
        extra_references=extra,
        split_method=method,
        sample_steps=params.sample_steps,
        pause_seconds=0.3,  # upstream api.py's silence after each segment
        **sampling,
    )
    return request, api.spec_for(None, None, preset)


async def synthesize(api: ApiState, params: LegacyParams) -> Response:
    reference = "character" if params.character and not params.refer_wav_path else "refer_wav_path"
    with fields_named({**LEGACY_FIELD_PARAMS, "reference": reference}):
        request, spec = await asyncio.to_thread(build_request, api, params)
        mode = params.streaming_mode
        return await audio_response(api, spec, request, params.media_type, mode, stream_options(mode, 16))


def _legacy_schema(required: tuple[str, ...] = ()) -> dict[str, Any]:
    schema = LegacyParams.model_json_schema()
    schema.pop("title", None)
    schema["required"] = list(required)
    return schema


def _query_parameters() -> list[dict[str, Any]]:
    props = _legacy_schema()["properties"]
    return [
        {"name": name, "in": "query", "required": name == "text", "schema": schema}
        for name, schema in props.items()
    ]


@open_router.get(
    "/",
    summary="Synthesise speech (legacy api.py query string); without one: redirect to the UI or /docs",
    response_class=Response,
    responses={**AUDIO_RESPONSES, 307: {"description": "no query string: to /ui/ or /docs"}},
    openapi_extra={"parameters": _query_parameters()},
)
async def legacy_get(request: Request) -> Response:
    """upstream api.py's ``GET /``: every parameter in the query string (``inp_refs`` repeated)."""
    if not request.query_params:
        return RedirectResponse("/ui/" if getattr(request.app.state, "ui", False) else "/docs")
    await require_key(request, None, None)
    return await synthesize(state(request), _validate(LegacyParams, _query(request)))


@router.post(
    "/",
    summary="Synthesise speech (legacy api.py JSON body)",
    response_class=Response,
    responses=AUDIO_RESPONSES,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _legacy_schema(("text",))}},
        }
    },
)
async def legacy_post(request: Request) -> Response:
    """upstream api.py's ``POST /``: the same parameters as a JSON object."""
    return await synthesize(state(request), _validate(LegacyParams, await _body(request)))


def save_default_reference(api: ApiState, path: str, text: str, language: str) -> DefaultReference:
    """Check and store the default reference (``/change_refer``, or the server's ``-dr/-dt/-dl``)."""
    clip = api.data_file(path, "refer_wav_path")
    try:
        mode = language_mode(language)
    except ValueError as exc:
        raise ApiError(400, f"prompt_language: {exc}", param="prompt_language") from None
    reference = DefaultReference(relative_name(clip, api.layout), text.strip(), mode)
    return DefaultReferenceStore(api.layout).save(reference)


async def _change_refer(request: Request, params: ChangeRefer) -> JSONResponse:
    for name in ("refer_wav_path", "prompt_text", "prompt_language"):
        value = getattr(params, name)
        if value is None or not value.strip():
            raise ApiError(
                400,
                f'{name} is required: /change_refer takes "refer_wav_path", "prompt_text" and "prompt_language"',
                param=name,
            )
    api = state(request)
    args = (api, params.refer_wav_path or "", params.prompt_text or "", params.prompt_language or "")
    await asyncio.to_thread(save_default_reference, *args)
    return JSONResponse(SUCCESS)


@router.get("/change_refer", summary="Set the default reference (legacy api.py)", response_model=LegacyAnswer)
async def change_refer_get(request: Request, params: Annotated[ChangeRefer, Query()]) -> JSONResponse:
    """Used by ``GET|POST /`` when a request names no reference; stored under the data folder."""
    return await _change_refer(request, params)


@router.post(
    "/change_refer", summary="Set the default reference (legacy api.py, JSON)", response_model=LegacyAnswer
)
async def change_refer_post(request: Request) -> JSONResponse:
    return await _change_refer(request, _validate(ChangeRefer, await _body(request)))


def _set_models(api: ApiState, params: SetModel) -> None:
    chosen = []
    for kind, param in (("gpt", "gpt_model_path"), ("sovits", "sovits_model_path")):
        value = getattr(params, param)
        if value is None or not value.strip():
            continue
        try:
            path = resolve_weight(api.layout, kind, value)
            inspect_weight(path, kind)
        except PathOutsideRoot as exc:
            raise ApiError(403, f"{param}: {exc}", param=param, code="path_not_allowed") from None
        except ValueError as exc:
            raise ApiError(400, f"{param}: {exc}", param=param, code="model_unavailable") from None
        chosen.append((kind, path))
    if not chosen:
        raise ApiError(400, "gpt_model_path or sovits_model_path is required", param="gpt_model_path")
    for kind, path in chosen:  # both checked before either changes
        api.models.set(kind, path)


async def _set_model(request: Request, params: SetModel) -> JSONResponse:
    await asyncio.to_thread(_set_models, state(request), params)
    return JSONResponse(SUCCESS)


@router.get("/set_model", summary="Change the current models (legacy api.py)", response_model=LegacyAnswer)
async def set_model_get(request: Request, params: Annotated[SetModel, Query()]) -> JSONResponse:
    """Listed files only (``GET /weights``), read with the restricted readers; loaded by the next synthesis."""
    return await _set_model(request, params)


@router.post(
    "/set_model", summary="Change the current models (legacy api.py, JSON)", response_model=LegacyAnswer
)
async def set_model_post(request: Request) -> JSONResponse:
    return await _set_model(request, _validate(SetModel, await _body(request)))


@router.get("/speakers", summary="Saved voices as speakers (SillyTavern's GPT-SoVITS providers)")
async def speakers(request: Request) -> list[dict[str, Any]]:
    """``[{"name", "voice_id", "lang", "description"}]``; pass the name as ``character`` (or ``target_voice``)."""
    presets = await asyncio.to_thread(state(request).presets.list)
    return [
        {"name": p.name, "voice_id": p.name, "lang": p.text_language, "description": p.description}
        for p in presets
    ]


@router.get("/character_list", summary="Saved voices as characters (GSVI-style clients)")
async def character_list(request: Request) -> dict[str, list[str]]:
    """``{name: ["default"]}``: each saved voice with its one style."""
    presets = await asyncio.to_thread(state(request).presets.list)
    return {p.name: ["default"] for p in presets}
