"""Error responses: one JSON shape that upstream api_v2 clients and OpenAI clients both read.

    {"message": "text_lang: ...", "error": {"message": "...", "type": "invalid_request_error",
                                             "param": "text_lang", "code": "invalid_value"}}

api_v2 clients print ``message``; OpenAI SDKs read ``error``. Bad input is 4xx with the field
named; a busy server 503 with ``Retry-After``; anything unexpected 500 with an id that points to
the logged traceback, never the exception text (it may hold paths and internals).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.audio.io import AudioError
from app.infer.request import ModelLoadError, TTSInputError
from app.paths import PathOutsideRoot
from app.services.device_queue import QueueFull
from app.services.presets import PresetError, PresetExists, PresetNotFound

log = logging.getLogger(__name__)

# TTSRequest fields whose errors name an api_v2 parameter (fields of other names map here).
REQUEST_FIELD_PARAMS = {
    "sample_steps": "sample_steps",
    "prompt_text": "prompt_text",
    "extra_references": "aux_ref_audio_paths",
}


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
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}


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
) -> JSONResponse:
    body: dict[str, Any] = {
        "message": message,
        "error": {"message": message, "type": _type_for(status), "param": param, "code": code},
    }
    return JSONResponse(body, status_code=status, headers=headers)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "form", "header")]
    return ".".join(parts) or "request"


def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
    problems = []
    first = None
    for err in exc.errors():
        name = _field(tuple(err.get("loc", ())))
        first = first or name
        text = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        problems.append(f"{name}: {text}")
    return error_response(400, "; ".join(problems) or "invalid request", first, "invalid_value")


def _api_error(_: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc.status, exc.message, exc.param, exc.code, exc.headers)


def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    message = exc.detail if isinstance(exc.detail, str) else "request refused"
    return error_response(exc.status_code, message, None, f"http_{exc.status_code}", exc.headers)


def _busy(_: Request, exc: QueueFull) -> JSONResponse:
    return error_response(503, str(exc), None, "server_busy", {"Retry-After": str(exc.retry_after_s)})


def _internal(request: Request, exc: Exception) -> JSONResponse:
    incident = uuid.uuid4().hex[:12]
    log.error("internal error %s on %s %s", incident, request.method, request.url.path, exc_info=exc)
    return error_response(
        500, f"internal error (id {incident}); the server log has the details", None, "internal_error"
    )


def as_api_error(exc: Exception, param: str | None = None) -> ApiError | None:
    """The :class:`ApiError` for a known library error, or None for anything unexpected."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, PathOutsideRoot):
        return ApiError(403, str(exc), param=param, code="path_not_allowed")
    if isinstance(exc, PresetNotFound):
        return ApiError(404, str(exc), param=param, code="preset_not_found")
    if isinstance(exc, PresetExists):
        return ApiError(409, str(exc), param=param, code="preset_exists")
    if isinstance(exc, TTSInputError) and param is None and exc.field in REQUEST_FIELD_PARAMS:
        param = REQUEST_FIELD_PARAMS[exc.field]
        message = str(exc)
        if not message.startswith(param):
            message = f"{param}: {message}"  # the client's name for the field, not the library's
        return ApiError(400, message, param=param, code="invalid_value")
    if isinstance(exc, (PresetError, TTSInputError, AudioError)):
        return ApiError(400, str(exc), param=param, code="invalid_value")
    if isinstance(exc, ModelLoadError):
        return ApiError(400, str(exc), param=param, code="model_unavailable")
    return None


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
