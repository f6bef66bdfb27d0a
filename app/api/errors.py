"""Error responses: one JSON shape that upstream api_v2 clients and OpenAI clients both read.

    {"message": "text_lang: ...", "error": {"message": "...", "type": "invalid_request_error",
                                             "param": "text_lang", "code": "invalid_value"}}

api_v2 clients print ``message``; OpenAI SDKs read ``error``. Bad input is 4xx with the field
named; a busy server 503 with ``Retry-After``; anything unexpected 500 with an id that points to
the logged traceback, never the exception text (it may hold paths and internals).

Every handler answers through :func:`_answer`, which names files relative to the data folder
(the server's absolute paths never leave it) and adds what the pipeline noted before it refused
(``"notes": [...]`` and the :data:`NOTES_HEADER` header, as on audio responses).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.audio.io import AudioError
from app.infer.request import ModelLoadError, TTSInputError
from app.paths import Layout, PathOutsideRoot
from app.services.device_queue import QueueFull
from app.services.presets import PresetError, PresetExists, PresetNotFound

log = logging.getLogger(__name__)

# TTSRequest field -> the api_v2 parameter of that value (what an error names).
REQUEST_FIELD_PARAMS = {
    "text": "text",
    "text_language": "text_lang",
    "reference": "ref_audio_path",
    "extra_references": "aux_ref_audio_paths",
    "prompt_text": "prompt_text",
    "prompt_language": "prompt_lang",
    "split_method": "text_split_method",
    "top_k": "top_k",
    "top_p": "top_p",
    "temperature": "temperature",
    "repetition_penalty": "repetition_penalty",
    "speed": "speed_factor",
    "pause_seconds": "fragment_interval",
    "seed": "seed",
    "batch_size": "batch_size",
    "batch_threshold": "batch_threshold",
    "sample_steps": "sample_steps",
}
# VoicePreset fields -> the POST /presets form field of that value.
PRESET_FIELD_PARAMS = {
    "name": "name",
    "reference": "ref_audio",
    "extra_references": "aux_ref_audio",
    "prompt_language": "prompt_lang",
    "text_language": "text_lang",
    "split_method": "text_split_method",
}
# What the pipeline noted (trimmed, clipped or over-range reference, skipped letters): a JSON list
# of strings, ASCII-only (non-ASCII as \uXXXX escapes, so it survives any HTTP stack).
NOTES_HEADER = "X-Studio-Notes"


def notes_header(notes: Sequence[str]) -> dict[str, str]:
    """The :data:`NOTES_HEADER` header carrying ``notes`` (an empty list when there are none)."""
    return {NOTES_HEADER: json.dumps(list(notes), ensure_ascii=True)}


class ApiError(Exception):
    """An error the client can act on: an HTTP status and a message naming the field."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str = "invalid_value",
        headers: dict[str, str] | None = None,
        notes: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}
        # What the pipeline noted before it refused.
        self.notes = tuple(notes)


def _type_for(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 404:
        return "not_found_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def error_response(
    status: int,
    message: str,
    param: str | None = None,
    code: str = "invalid_value",
    headers: dict[str, str] | None = None,
    notes: Sequence[str] = (),
) -> JSONResponse:
    body: dict[str, Any] = {
        "message": message,
        "error": {"message": message, "type": _type_for(status), "param": param, "code": code},
    }
    if notes:
        body["notes"] = list(notes)
        headers = {**(headers or {}), **notes_header(notes)}
    return JSONResponse(body, status_code=status, headers=headers)


def relative_paths(text: str, roots: Sequence[tuple[Path, str]]) -> str:
    """``text`` with each ``(root, shown)`` root's absolute path replaced by ``shown``
    (files under the data folder named relative to it; "." for the folder itself).

    Only whole paths match: ``/data`` is not cut out of ``/mnt/data`` or ``/database``.
    """
    pairs = {}
    for root, shown in roots:
        for form in (str(root), str(root.resolve())):
            pairs[form] = shown
    for form in sorted(pairs, key=len, reverse=True):  # /data/pretrained before /data
        shown = pairs[form]
        pattern = re.compile(r"(?<![\w.~/-])" + re.escape(form) + r"(/|(?![\w.~-]))")
        text = pattern.sub(lambda m, s=shown: (s + "/" if s else "") if m.group(1) else (s or "."), text)
    return text


def _answer(
    request: Request,
    status: int,
    message: str,
    param: str | None = None,
    code: str = "invalid_value",
    headers: dict[str, str] | None = None,
    notes: Sequence[str] = (),
) -> JSONResponse:
    """:func:`error_response` with the server's paths cut to data-folder-relative ones."""
    layout = getattr(getattr(request.app.state, "api", None), "layout", None)
    if layout is not None:
        message = relative_to_data(message, layout)
        notes = [relative_to_data(note, layout) for note in notes]
    return error_response(status, message, param, code, headers, notes)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "form", "header")]
    return ".".join(parts) or "request"


def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = []
    first = None
    for err in exc.errors():
        name = _field(tuple(err.get("loc", ())))
        first = first or name
        text = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        problems.append(f"{name}: {text}")
    return _answer(request, 400, "; ".join(problems) or "invalid request", first, "invalid_value")


def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return _answer(request, exc.status, exc.message, exc.param, exc.code, exc.headers, exc.notes)


def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    message = exc.detail if isinstance(exc.detail, str) else "request refused"
    return _answer(request, exc.status_code, message, None, f"http_{exc.status_code}", exc.headers)


def _busy(request: Request, exc: QueueFull) -> JSONResponse:
    return _answer(request, 503, str(exc), None, "server_busy", {"Retry-After": str(exc.retry_after_s)})


def _internal(request: Request, exc: Exception) -> JSONResponse:
    incident = uuid.uuid4().hex[:12]
    log.error("internal error %s on %s %s", incident, request.method, request.url.path, exc_info=exc)
    return _answer(
        request,
        500,
        f"internal error (id {incident}); the server log has the details",
        None,
        "internal_error",
    )


def as_api_error(
    exc: Exception, param: str | None = None, fields: Mapping[str, str] = REQUEST_FIELD_PARAMS
) -> ApiError | None:
    """The :class:`ApiError` for a known library error, or None for anything unexpected.

    ``param`` names the client's parameter at fault; without it, the field a
    :class:`TTSInputError` names is looked up in ``fields`` (TTSRequest field -> parameter of
    this endpoint), a :class:`PresetError`'s in :data:`PRESET_FIELD_PARAMS`. The message starts
    with the parameter (the client's name for the field, not the library's).
    """
    if isinstance(exc, ApiError):
        return exc
    if param is None and isinstance(exc, TTSInputError) and exc.field is not None:
        param = fields.get(exc.field)
    if param is None and isinstance(exc, PresetError) and exc.field is not None:
        param = PRESET_FIELD_PARAMS.get(exc.field, exc.field)
    message = str(exc)
    if param is not None and not message.startswith(param):
        message = f"{param}: {message}"
    if isinstance(exc, PathOutsideRoot):
        return ApiError(403, message, param=param, code="path_not_allowed")
    if isinstance(exc, PresetNotFound):
        return ApiError(404, message, param=param, code="preset_not_found")
    if isinstance(exc, PresetExists):
        return ApiError(409, message, param=param, code="preset_exists")
    if isinstance(exc, TTSInputError):
        return ApiError(400, message, param=param, code="invalid_value", notes=exc.notes)
    if isinstance(exc, (PresetError, AudioError)):
        return ApiError(400, message, param=param, code="invalid_value")
    if isinstance(exc, ModelLoadError):
        return ApiError(400, message, param=param, code="model_unavailable")
    return None


def relative_to_data(text: str, layout: Layout) -> str:
    """``text`` naming files relative to ``layout``'s data folder (and its pretrained_models/)."""
    return relative_paths(text, [(layout.pretrained, "pretrained_models"), (layout.home, "")])


@contextlib.contextmanager
def fields_named(fields: Mapping[str, str]) -> Iterator[None]:
    """A :class:`TTSInputError` raised inside becomes an :class:`ApiError` naming the endpoint's
    parameter (``fields``: TTSRequest field -> parameter; the reference may be an upload, a
    path or a preset)."""
    try:
        yield
    except TTSInputError as exc:
        error = as_api_error(exc, fields=fields)
        assert error is not None
        raise error from None


def _library(request: Request, exc: Exception) -> JSONResponse:
    known = as_api_error(exc)
    if known is None:
        return _internal(request, exc)
    return _api_error(request, known)


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(QueueFull, _busy)
    for kind in (PathOutsideRoot, PresetError, TTSInputError, AudioError, ModelLoadError):
        app.add_exception_handler(kind, _library)
    app.add_exception_handler(Exception, _internal)
