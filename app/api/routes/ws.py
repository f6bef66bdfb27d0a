"""``/ws/tts``: speech for text that is still being written (an LLM's reply), over one WebSocket.

The client sends text as it arrives, in fragments of any size; the server cuts it into sentences
as soon as each one is complete (:class:`app.text.sentences.SentenceCutter`: CJK and ASCII
sentence marks, a run-on clause cut by length) and speaks them in order while more text keeps
coming. Each sentence is one synthesis queued on the device like every ``/tts`` request (the one
:class:`~app.services.synthesis.SynthesisService`), with the same parameters, validation and
data-folder path rules.

Authentication: with a server key, send it as ``Authorization: Bearer <key>``, ``X-API-Key:
<key>`` or the query parameter ``?api_key=<key>`` (browsers cannot set WebSocket headers).

Client -> server (JSON text frames):

- ``{"type": "start", ...}`` first, once: the parameters of ``/tts`` except ``text``
  (``ref_audio_path`` or ``preset``, ``prompt_text``, ``prompt_lang``, ``text_lang``, sampling,
  ``gpt_weights``/``sovits_weights``, ``streaming_mode``: 2, the default, sends pieces of a
  sentence while it is decoded, 3 a smaller first piece, 0/1 each sentence whole),
  plus ``media_type`` ``raw``/``pcm`` (s16le, the default) or ``wav`` (one open-ended WAV header
  as the first binary frame, then PCM) and an optional output ``sample_rate`` (8000-48000);
  unknown fields are refused. An optional ``text`` is the first fragment.
- ``{"type": "text", "text": "..."}``: the next fragment (a character, a token, a paragraph).
- ``{"type": "flush"}``: speak what is buffered now, even without a sentence end.
- ``{"type": "cancel"}``: drop the buffered and queued text and stop the sentence being spoken
  (at its next audio piece); the session goes on with the text sent after it.
- ``{"type": "end"}``: no more text; the rest is spoken, then ``done`` and the server closes.

Server -> client:

- ``{"type": "ready"}``: the start was accepted (reference, models and parameters checked).
- ``{"type": "audio_start", "sample_rate", "channels": 1, "media_type"}`` before the first audio.
- ``{"type": "sentence", "index", "text"}`` before each sentence's audio, then binary frames of
  its audio (s16le mono), then ``{"type": "sentence_end", "index", "samples", "seconds",
  "seed"}`` (``samples``: what was sent for it; ``seconds``: the pipeline's length of it).
- ``{"type": "notes", "index", "notes": [...]}``: what the pipeline noted (a clipped or trimmed
  reference, skipped letters), each note once per session.
- ``{"type": "busy", "retry_after"}``: the device's line is full; the sentence waits and retries.
- ``{"type": "cancelled", "dropped"}``: the answer to ``cancel``; no audio or frame of the text
  before it follows.
- ``{"type": "error", "message", "param", "code", "status", "fatal", "index"?, "notes"?}``: the
  HTTP API's error (``status`` as ``/tts`` would answer it, ``param`` the field at fault). Not
  fatal: a bad frame or a sentence that cannot be read (it is skipped). Fatal: a bad start, a
  missing key, a reference or model that fails; the server then closes (1008, or 1011 for an
  internal error).
- ``{"type": "done", "sentences", "samples", "seconds"}`` after ``end``; then close code 1000.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Literal

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ConfigDict, Field, ValidationError, field_validator

from app.api.encoding import check_format
from app.api.engine import ApiState
from app.api.errors import REQUEST_FIELD_PARAMS, ApiError
from app.api.responses import stream_options
from app.api.routes.tts import build_request
from app.api.schemas import MAX_TEXT_CHARS, TTSParams, check_text
from app.api.security import key_matches
from app.api.session import Prepared, SpeechSession, close_code, error_frame, receive_json

router = APIRouter()

WS_MEDIA_TYPES = ("raw", "pcm", "wav")


class StartMessage(TTSParams):
    """The ``start`` frame: ``/tts``'s parameters without ``text``, the format of the audio frames."""

    model_config = ConfigDict(extra="forbid")  # a misspelt parameter is refused, not ignored

    type: Literal["start"]
    text: str = Field("", description="optional first fragment")
    media_type: str = Field("raw", description="raw / pcm (s16le) or wav (a header, then s16le)")
    sample_rate: int | None = Field(None, ge=8000, le=48000, description="resample the audio to this rate")
    # Pieces of a sentence while it is decoded: first audio ~0.5 s after the sentence's end on the
    # CPU workload (bench.ws_first_audio), against ~5 s for a whole 10 s sentence (0/1).
    streaming_mode: bool | int = Field(
        2, description="0/1: each sentence's audio whole; 2: token chunks (default); 3: smaller first chunk"
    )

    @field_validator("text")
    @classmethod
    def _text(cls, v: str) -> str:
        return check_text(v, MAX_TEXT_CHARS)

    @field_validator("media_type")
    @classmethod
    def _media(cls, v: str) -> str:
        check_format(v.lower(), "media_type", WS_MEDIA_TYPES)
        return v.lower()


def key_refusal(websocket: WebSocket, expected: str | None) -> str | None:
    """Why the connection is refused (no key, wrong key), or None (the key matches, or none is set)."""
    if not expected:
        return None
    auth = websocket.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    given = [token.strip() if scheme.lower() == "bearer" else None]
    given += [websocket.headers.get("x-api-key"), websocket.query_params.get("api_key")]
    if any(key_matches(expected, key) for key in given):
        return None
    if not auth and all(key is None for key in given[1:]):
        return "missing API key: send 'Authorization: Bearer <key>', 'X-API-Key: <key>' or ?api_key=<key>"
    return "wrong API key"


def validation_error(exc: ValidationError) -> ApiError:
    """A start frame's problems as one 400, the first field named (as the HTTP API answers)."""
    problems, first = [], None
    for err in exc.errors():
        name = ".".join(str(p) for p in err.get("loc", ())) or "start"
        first = first or name
        text = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        problems.append(f"{name}: {text}")
    return ApiError(400, "; ".join(problems), param=first)


def prepare(api: ApiState, start: StartMessage, explicit: set[str]) -> Prepared:
    """The request every sentence copies (its text replaced) and the models: checked once, at start."""
    probe = start.model_copy(update={"text": "."})
    template, preset = build_request(api, probe, explicit)
    spec = api.spec_for(start.gpt_weights, start.sovits_weights, preset)
    reference = "preset" if start.preset and not start.ref_audio_path else "ref_audio_path"
    extra = "preset" if reference == "preset" and not start.aux_ref_audio_paths else "aux_ref_audio_paths"
    names = {**REQUEST_FIELD_PARAMS, "reference": reference, "extra_references": extra}
    mode = start.stream_mode
    return Prepared(
        template=template,
        spec=spec,
        names=names,
        token_chunks=mode >= 2,
        options=stream_options(mode, start.min_chunk_length, start.overlap_length),
        media_type=start.media_type,
        sample_rate=start.sample_rate,
    )


async def open_session(websocket: WebSocket, api: ApiState) -> tuple[Prepared, str] | None:
    """Check the key and the start frame; None (after an error frame and the close) when refused."""
    refusal = key_refusal(websocket, api.settings.api_key)
    failure: BaseException | None = None
    if refusal is not None:
        failure = ApiError(401, refusal, code="unauthorized")
    else:
        try:
            data = await receive_json(websocket)
            if data["type"] != "start":
                raise ApiError(
                    400,
                    f'the first frame must be {{"type": "start", ...}}, not {data["type"]!r}',
                    param="type",
                )
            try:
                start = StartMessage.model_validate(data)
            except ValidationError as exc:
                raise validation_error(exc) from None
            explicit = set(data) - {"type", "media_type", "sample_rate"}
            return await asyncio.to_thread(prepare, api, start, explicit), start.text
        except WebSocketDisconnect:
            return None
        except Exception as exc:
            failure = exc
    frame = error_frame(api, failure, fatal=True)
    await websocket.send_text(json.dumps(frame, ensure_ascii=False))
    await websocket.close(close_code(frame))
    return None


@router.websocket("/ws/tts")
async def ws_tts(websocket: WebSocket) -> None:
    """Incremental text in, sentence audio out (protocol: this module's docstring)."""
    api: ApiState = websocket.app.state.api
    await websocket.accept()
    opened = await open_session(websocket, api)
    if opened is None:
        return
    prepared, first_text = opened
    code = await SpeechSession(websocket, api, prepared).run(first_text)
    if code is not None:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):  # the client closed first
            await websocket.close(code)
