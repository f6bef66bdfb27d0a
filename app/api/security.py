"""API key check and request body cap.

- The key (``STUDIO_API_KEY`` / ``--api-key``) is sent as ``Authorization: Bearer <key>`` (what
  OpenAI SDKs send) or ``X-API-Key: <key>``; compared in constant time. Without a configured key
  every request passes (the server then only listens on loopback: see ``app.api.server``).
- :class:`BodyLimit` answers 413 for a body over the upload cap, from ``Content-Length`` before
  reading anything, or as soon as a chunked body passes the cap.
"""

from __future__ import annotations

import hmac

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import error_response

# Security schemes shown in the OpenAPI docs ("Authorize" button); checked by require_key.
bearer_scheme = HTTPBearer(auto_error=False, description="the API key as a bearer token")
header_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="the API key")
# Multipart framing and form fields on top of the file bytes themselves.
FORM_OVERHEAD_BYTES = 1 << 20


def key_matches(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


async def require_key(
    request: Request,
    _bearer: HTTPAuthorizationCredentials | None = Depends(bearer_scheme),
    _header: str | None = Depends(header_scheme),
) -> None:
    """FastAPI dependency: 401 unless the request carries the configured key (or none is set).

    The two scheme dependencies only put the schemes in the OpenAPI docs; the headers are read here.
    """
    expected = request.app.state.api.settings.api_key
    if not expected:
        return
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    given = token.strip() if scheme.lower() == "bearer" else None
    if key_matches(expected, given) or key_matches(expected, request.headers.get("x-api-key")):
        return
    reason = "missing API key" if not auth and "x-api-key" not in request.headers else "wrong API key"
    raise HTTPException(
        status_code=401,
        detail=f"{reason}: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
        headers={"WWW-Authenticate": "Bearer"},
    )


class BodyLimit:
    """ASGI middleware: 413 for request bodies larger than ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> str:
        return f"request body is larger than the {self.max_bytes // (1 << 20)} MB upload limit (STUDIO_MAX_UPLOAD_MB)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await error_response(413, self._too_large(), None, "payload_too_large")(scope, receive, send)
            return
        received = 0
        started = False

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(status_code=413, detail=self._too_large())
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited, tracked)
        except HTTPException as exc:
            if exc.status_code != 413 or started:
                raise
            await error_response(413, self._too_large(), None, "payload_too_large")(scope, receive, send)
