"""One ``/ws/tts`` conversation after its start: text in, sentences out, spoken in order.

Two tasks share the socket: the reader takes the client's frames (text, flush, cancel, end) and
cuts sentences as text arrives; the speaker takes sentences one by one, queues each as a
streaming synthesis on the :class:`~app.services.synthesis.SynthesisService` (the device's one
line, as ``/tts`` does) and sends its audio while the reader goes on accepting text. Sends go
through one lock, and a ``cancel`` bumps a generation number under it: audio of the text before
a cancel is never sent after the ``cancelled`` answer.

The protocol is described in :mod:`app.api.routes.ws`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect

from app.api.encoding import PcmStream, wav_stream_header
from app.api.engine import ApiState, ChunkStream
from app.api.errors import ApiError, as_api_error, fields_named, relative_to_data
from app.api.schemas import MAX_TEXT_CHARS, check_text
from app.infer.request import PipelineSpec, TTSRequest, TTSResult
from app.infer.streaming import StreamOptions
from app.services.device_queue import QueueFull
from app.text.sentences import SentenceCutter

log = logging.getLogger(__name__)

# Close codes (RFC 6455): a policy refusal (bad start, no key) and a server fault.
CLOSE_REFUSED = 1008
CLOSE_INTERNAL = 1011
# Waits between tries while the device's line is full, in seconds.
BUSY_WAIT_RANGE = (0.2, 5.0)


@dataclass(frozen=True)
class Prepared:
    """What a session's start settled: checked once, copied for every sentence."""

    # The request of every sentence, its text replaced (reference, languages, sampling).
    template: TTSRequest
    # The models.
    spec: PipelineSpec
    # TTSRequest field -> the start frame's parameter (what an error names).
    names: dict[str, str]
    # False: each sentence's audio comes whole (per segment); True: pieces while the GPT runs.
    token_chunks: bool = False
    # Chunking of token pieces (streaming_mode 2/3).
    options: StreamOptions | None = None
    # "raw"/"pcm" or "wav".
    media_type: str = "raw"
    # Output samples per second (None: the model's).
    sample_rate: int | None = None


def error_frame(api: ApiState, exc: BaseException, fatal: bool, index: int | None = None) -> dict[str, Any]:
    """The ``error`` frame of ``exc``: the HTTP API's message and field, files named relative to
    the data folder; an unexpected error gets an id that points to the logged traceback."""
    if isinstance(exc, QueueFull):
        error: ApiError | None = ApiError(503, str(exc), code="server_busy")
    else:
        error = as_api_error(exc) if isinstance(exc, Exception) else None
    if error is None:
        incident = uuid.uuid4().hex[:12]
        log.error("internal error %s on /ws/tts", incident, exc_info=exc)
        message = f"internal error (id {incident}); the server log has the details"
        error = ApiError(500, message, code="internal_error")
    frame: dict[str, Any] = {
        "type": "error",
        "message": relative_to_data(error.message, api.layout),
        "param": error.param,
        "code": error.code,
        "status": error.status,
        "fatal": fatal,
    }
    if index is not None:
        frame["index"] = index  # the sentence it concerns
    if error.notes:
        frame["notes"] = [relative_to_data(note, api.layout) for note in error.notes]
    return frame


def close_code(frame: dict[str, Any]) -> int:
    """The close code after a fatal error frame."""
    return CLOSE_INTERNAL if frame["status"] >= 500 else CLOSE_REFUSED


async def receive_json(websocket: WebSocket) -> dict[str, Any]:
    """The next client frame as a JSON object with a ``type``; ApiError for anything else."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    raw = message.get("text")
    if raw is None:
        raise ApiError(400, "binary frames are not accepted: send JSON text frames", code="invalid_frame")
    try:
        data = json.loads(raw)
    except ValueError:
        raise ApiError(400, "the frame is not valid JSON", code="invalid_json") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ApiError(400, 'a frame is a JSON object with a "type"', param="type", code="invalid_json")
    return data


class SpeechSession:
    """The reader and the speaker of one connection (see the module docstring)."""

    def __init__(self, websocket: WebSocket, api: ApiState, prepared: Prepared) -> None:
        self.ws = websocket
        self.api = api
        self.prepared = prepared
        self.cutter = SentenceCutter()
        # (generation, sentence); a None sentence is the end of the text.
        self.sentences: asyncio.Queue[tuple[int, str | None]] = asyncio.Queue()
        # Characters queued and not yet spoken (bounded like /tts's text).
        self.queued_chars = 0
        # Bumped by every cancel: sentences and audio of an older generation are dropped.
        self.generation = 0
        self.ended = False
        self.lock = asyncio.Lock()
        self.stream: ChunkStream | None = None
        self.notes_sent: set[str] = set()
        self.audio_started = False
        self.spoken = 0
        self.samples = 0
        self.seconds = 0.0

    # ------------------------------------------------------------------ sending
    async def send(self, frame: dict[str, Any]) -> None:
        async with self.lock:
            await self.ws.send_text(json.dumps(frame, ensure_ascii=False))

    async def send_audio(self, generation: int, data: bytes) -> bool:
        """Send ``data`` unless a cancel came since ``generation``; False when dropped."""
        async with self.lock:
            if generation != self.generation:
                return False
            if data:
                await self.ws.send_bytes(data)
            return True

    # ------------------------------------------------------------------ the two tasks
    async def run(self, first_text: str = "") -> int | None:
        """Serve the connection until ``done`` (returns the close code) or the client leaves (None)."""
        await self.send({"type": "ready"})
        if first_text:
            await self.add_text(first_text)
        speaker = asyncio.create_task(self.speak())
        reader = asyncio.create_task(self.read())
        done, _ = await asyncio.wait({speaker, reader}, return_when=asyncio.FIRST_COMPLETED)
        for task in (speaker, reader):
            task.cancel()
        if self.stream is not None:
            self.stream.cancel()
        await asyncio.gather(speaker, reader, return_exceptions=True)
        if speaker in done and not speaker.cancelled() and speaker.exception() is None:
            return speaker.result()
        return None

    async def read(self) -> None:
        """Take the client's frames until it leaves; a bad frame gets a (not fatal) error frame."""
        while True:
            try:
                data = await receive_json(self.ws)
                await self.handle(data)
            except WebSocketDisconnect:
                return
            except ApiError as exc:
                await self.send(error_frame(self.api, exc, fatal=False))

    async def handle(self, data: dict[str, Any]) -> None:
        kind = data["type"]
        if kind == "cancel":
            await self.cancel()
            return
        if kind not in ("text", "flush", "end"):
            raise ApiError(400, f"unknown frame type {kind!r}: text, flush, cancel or end", param="type")
        if self.ended:
            raise ApiError(400, f"{kind!r} after end: the text has ended", param="type", code="ended")
        if kind == "text":
            text = data.get("text")
            if not isinstance(text, str):
                raise ApiError(400, "text: a string is required", param="text")
            await self.add_text(text)
        elif kind == "flush":
            self.enqueue(self.cutter.flush())
        else:
            self.ended = True
            self.enqueue(self.cutter.flush())
            self.sentences.put_nowait((self.generation, None))

    async def add_text(self, text: str) -> None:
        try:
            check_text(text, MAX_TEXT_CHARS)
        except ValueError as exc:
            raise ApiError(400, f"text: {exc}", param="text") from None
        if self.queued_chars + len(self.cutter.pending) + len(text) > MAX_TEXT_CHARS:
            raise ApiError(
                400,
                f"text: more than {MAX_TEXT_CHARS} characters wait to be spoken; this fragment is "
                "dropped (send more after some audio came back)",
                param="text",
                code="too_much_text",
            )
        self.enqueue(self.cutter.feed(text))

    def enqueue(self, sentences: list[str]) -> None:
        for sentence in sentences:
            self.queued_chars += len(sentence)
            self.sentences.put_nowait((self.generation, sentence))

    async def cancel(self) -> None:
        async with self.lock:
            self.generation += 1
            dropped = self.cutter.clear()
            while not self.sentences.empty():
                _, sentence = self.sentences.get_nowait()
                if sentence is None:
                    self.sentences.put_nowait((self.generation, None))  # the end still ends
                    break
                self.queued_chars -= len(sentence)
                dropped = sentence + " " + dropped
            if self.stream is not None:
                self.stream.cancel()
            frame = {"type": "cancelled", "dropped": dropped.strip()}
            await self.ws.send_text(json.dumps(frame, ensure_ascii=False))

    async def speak(self) -> int:
        """Speak sentences in order until the end of the text; the close code."""
        index = 0
        while True:
            generation, sentence = await self.sentences.get()
            if sentence is None:
                await self.send(
                    {
                        "type": "done",
                        "sentences": self.spoken,
                        "samples": self.samples,
                        "seconds": round(self.seconds, 3),
                    }
                )
                return 1000
            self.queued_chars -= len(sentence)
            if generation != self.generation:
                continue
            fatal = await self.speak_one(generation, index, sentence)
            index += 1
            if fatal is not None:
                return fatal

    # ------------------------------------------------------------------ one sentence
    async def speak_one(self, generation: int, index: int, sentence: str) -> int | None:
        """Synthesise and send one sentence; a close code when its error ends the session."""
        try:
            with fields_named(self.prepared.names):
                request = dataclasses.replace(self.prepared.template, text=sentence)
                stream = await self.open(generation, request)
                if stream is None:
                    return None  # cancelled while waiting
                result = await self.send_sentence(generation, index, sentence, stream)
        except WebSocketDisconnect:
            raise  # the client left: nothing to tell it
        except Exception as exc:
            frame = error_frame(
                self.api, exc, fatal=not _sentence_fault(exc, self.prepared.names), index=index
            )
            await self.send(frame)
            return close_code(frame) if frame["fatal"] else None
        finally:
            if self.stream is not None:
                self.stream.cancel()
                self.stream = None
        if result is not None:
            self.spoken += 1
        return None

    async def open(self, generation: int, request: TTSRequest) -> ChunkStream | None:
        """Queue the sentence's streaming synthesis and wait for its first chunk; retry while the
        line is full. None when a cancel came meanwhile."""
        told_busy = False
        while generation == self.generation:
            stream = ChunkStream(asyncio.get_running_loop())
            try:
                stream.future = self.api.synthesis.stream(
                    self.prepared.spec,
                    request,
                    stream,
                    token_chunks=self.prepared.token_chunks,
                    options=self.prepared.options,
                )
            except QueueFull as exc:
                if not told_busy:
                    await self.send({"type": "busy", "retry_after": exc.retry_after_s})
                    told_busy = True
                await asyncio.sleep(
                    min(max(float(exc.retry_after_s), BUSY_WAIT_RANGE[0]), BUSY_WAIT_RANGE[1])
                )
                continue
            self.stream = stream
            await stream.prime()
            return stream if generation == self.generation else None
        return None

    async def send_sentence(
        self, generation: int, index: int, sentence: str, stream: ChunkStream
    ) -> TTSResult | None:
        """The sentence's frames and audio; its result, or None when a cancel cut it short."""
        rate = stream.sample_rate
        out_rate = self.prepared.sample_rate or rate
        await self.send_notes(index, stream.notes)
        if not self.audio_started:
            self.audio_started = True
            await self.send(
                {
                    "type": "audio_start",
                    "sample_rate": out_rate,
                    "channels": 1,
                    "media_type": self.prepared.media_type,
                }
            )
            if self.prepared.media_type == "wav":
                await self.send_audio(generation, wav_stream_header(out_rate))
        await self.send({"type": "sentence", "index": index, "text": sentence})
        pcm = PcmStream(rate, out_rate)
        samples, result = 0, None
        async for chunk in stream.chunks():
            data = pcm.encode(chunk.audio, final=chunk.result is not None)
            if not await self.send_audio(generation, data):
                return None
            samples += len(data) // 2
            result = chunk.result or result
        if result is None:
            return None
        self.samples += samples
        self.seconds += result.duration
        end = {
            "type": "sentence_end",
            "index": index,
            "samples": samples,
            "seconds": round(result.duration, 4),
        }
        async with self.lock:
            if generation == self.generation:
                await self.ws.send_text(json.dumps({**end, "seed": result.seed}))
        return result

    async def send_notes(self, index: int, notes: tuple[str, ...]) -> None:
        new = [n for n in notes if n not in self.notes_sent]
        if new:
            self.notes_sent.update(new)
            shown = [relative_to_data(n, self.api.layout) for n in new]
            await self.send({"type": "notes", "index": index, "notes": shown})


def _sentence_fault(exc: BaseException, names: dict[str, str]) -> bool:
    """True when ``exc`` is about the sentence's text (skip it), not the voice or the models (stop)."""
    error = as_api_error(exc, fields=names) if isinstance(exc, Exception) else None
    return error is not None and error.param == "text"
