"""Audio responses: a whole file, a stream that starts before synthesis ends, or server-sent events.

Streams go through :mod:`app.api.stream_encoding` (each chunk encoded and sent as it is made, in
every format but ogg Vorbis). OpenAI's ``stream_format: "sse"`` sends the same encoded bytes as
``data: {"type": "speech.audio.delta", "audio": "<base64>"}`` events, then one
``{"type": "speech.audio.done", "usage": {...}}`` (an ``{"type": "error", ...}`` event when the
synthesis fails after the first audio).

All carry what the pipeline noted (a trimmed, clipped or over-range reference, skipped letters)
in the ``X-Studio-Notes`` header: a JSON list of sentences, ASCII-escaped.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import Response, StreamingResponse

from app.api.encoding import FORMATS, OPUS_RATE, encode
from app.api.engine import ApiState, ChunkStream
from app.api.errors import notes_header
from app.api.stream_encoding import StreamEncoder, stream_encoder
from app.infer.request import PipelineSpec, TTSRequest
from app.infer.streaming import StreamOptions

log = logging.getLogger(__name__)

# streaming_mode 3 ("fixed-length chunks, fastest"): the first audio after this many tokens.
FAST_FIRST_CHUNK = 8
# The OpenAPI description of an audio answer (routes returning audio_response).
AUDIO_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the audio, whole or streamed",
        "content": {
            mime: {"schema": {"type": "string", "format": "binary"}}
            for mime in sorted({fmt.mime for fmt in FORMATS.values()})
        },
        "headers": {
            "X-Studio-Notes": {
                "description": "what the pipeline noted (trimmed, clipped or over-range reference, skipped "
                "letters): a JSON list of sentences, ASCII with \\u escapes",
                "schema": {"type": "string"},
            },
            "X-Sample-Rate": {"description": "samples per second", "schema": {"type": "string"}},
            "X-Seed": {"description": "the seed used (whole files)", "schema": {"type": "string"}},
        },
    }
}


def stream_options(mode: int, min_chunk_length: int, overlap_length: int = 2) -> StreamOptions | None:
    """api_v2's streaming modes -> chunking (mode 1 streams whole segments, no token chunks).

    Mode 2 decodes chunks of at least ``min_chunk_length`` tokens that grow as the segment goes
    on (less context overhead); mode 3 starts with a smaller first chunk and keeps
    ``min_chunk_length``-token chunks. ``overlap_length`` tokens (two 50 Hz frames each) are held
    back at each chunk's end and cross-faded with the next.
    """
    hold = 2 * overlap_length
    if mode == 3:
        return StreamOptions(
            first_chunk=min(FAST_FIRST_CHUNK, min_chunk_length),
            chunk=min_chunk_length,
            max_chunk=min_chunk_length,
            hold=hold,
        )
    if mode == 2:
        base = StreamOptions()
        chunk = max(base.chunk, min_chunk_length)
        return StreamOptions(
            first_chunk=min_chunk_length, chunk=chunk, max_chunk=max(base.max_chunk, chunk), hold=hold
        )
    return None


async def _stream_body(stream: ChunkStream, encoder: StreamEncoder) -> AsyncIterator[bytes]:
    try:
        async for chunk in stream.chunks():
            data = await asyncio.to_thread(encoder.encode, chunk.audio, chunk.result is not None)
            if data:
                yield data
    except Exception:
        # The status line went out with the first bytes; all that is left is to end the audio.
        log.exception("synthesis failed while streaming; the audio ends here")
    finally:
        stream.cancel()
        encoder.close()


def sse_event(event: dict[str, Any]) -> bytes:
    """One server-sent event carrying ``event`` as JSON (OpenAI's framing: a ``data:`` line each)."""
    return b"data: " + json.dumps(event, separators=(",", ":")).encode("ascii") + b"\n\n"


async def _sse_body(stream: ChunkStream, encoder: StreamEncoder, input_tokens: int) -> AsyncIterator[bytes]:
    output_tokens = 0
    try:
        async for chunk in stream.chunks():
            data = await asyncio.to_thread(encoder.encode, chunk.audio, chunk.result is not None)
            if data:
                audio = base64.b64encode(data).decode("ascii")
                yield sse_event({"type": "speech.audio.delta", "audio": audio})
            if chunk.result is not None:
                output_tokens = sum(int(t.numel()) for t in chunk.result.tokens)
        usage = {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
        }
        yield sse_event({"type": "speech.audio.done", "usage": usage})
    except Exception:
        log.exception("synthesis failed while streaming events")
        message = "synthesis failed after the first audio; the server log has the details"
        yield sse_event({"type": "error", "error": {"message": message, "type": "server_error"}})
    finally:
        stream.cancel()
        encoder.close()


async def audio_response(
    api: ApiState,
    spec: PipelineSpec,
    request: TTSRequest,
    media: str,
    streaming_mode: int = 0,
    options: StreamOptions | None = None,
    pcm_rate: int | None = None,
    *,
    notes: tuple[str, ...] = (),
    sse: bool = False,
) -> Response:
    """Synthesise ``request`` on ``spec``'s models and answer with format ``media``.

    ``streaming_mode`` 1 sends each segment as it is done, 2 and 3 pieces of segments while the
    GPT still runs (ogg Vorbis, which has no incremental encoder here, is sent whole when done).
    ``pcm_rate`` resamples raw PCM (OpenAI clients expect 24 kHz). ``notes``: the route's own
    notes, sent before the pipeline's. ``sse``: OpenAI's server-sent events (implies streaming).
    """
    fmt = FORMATS[media]
    if sse or (streaming_mode and fmt.streamable):
        stream = await api.open_stream(
            spec, request, token_chunks=sse or streaming_mode >= 2, options=options
        )
        try:
            encoder = stream_encoder(media, stream.sample_rate, pcm_rate)
        except BaseException:
            stream.cancel()
            raise
        headers = {
            "X-Sample-Rate": str(encoder.sample_rate),
            "Cache-Control": "no-store",
            **notes_header((*notes, *stream.notes)),
        }
        if sse:
            body = _sse_body(stream, encoder, len(request.text))
            return StreamingResponse(body, media_type="text/event-stream", headers=headers)
        return StreamingResponse(_stream_body(stream, encoder), media_type=fmt.mime, headers=headers)
    if streaming_mode:
        log.debug("%s is not a streaming format; sending the whole file", media)
    result = await api.synthesize(spec, request)
    data = await asyncio.to_thread(encode, result.audio, result.sample_rate, media, pcm_rate)
    if fmt.via == "pcm" and pcm_rate:
        rate = pcm_rate
    else:
        rate = OPUS_RATE if media == "opus" else result.sample_rate
    headers = {
        "X-Seed": str(result.seed),
        "X-Sample-Rate": str(rate),
        "X-Audio-Seconds": f"{result.duration:.3f}",
        **notes_header((*notes, *result.notes)),
    }
    return Response(data, media_type=fmt.mime, headers=headers)
