"""What the routes share: settings, the synthesis service, presets, the model choice.

Every synthesis goes through :class:`ApiState`: the route builds a :class:`~app.infer.TTSRequest`
(the same object the UI and the CLI build) and a :class:`~app.infer.PipelineSpec` (the models
this request uses), then :meth:`ApiState.synthesize` or :meth:`ApiState.open_stream` hand both to
the :class:`~app.services.synthesis.SynthesisService`, the one door to the device that the web UI
goes through too. Each request carries its own reference and models, so nothing leaks from one to
the next; a model swap happens inside a job, after the previous job finished on its own models.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

from app.api.errors import ApiError
from app.infer.request import AudioChunk, PipelineSpec, TTSRequest, TTSResult
from app.infer.streaming import StreamOptions
from app.paths import Layout, PathOutsideRoot, resolve_inside
from app.services.device_queue import DeviceQueue
from app.services.model_choice import ModelChoiceStore, resolve_weight
from app.services.presets import PresetStore, VoicePreset
from app.services.synthesis import PipelineSource, SynthesisService
from app.services.weights import list_weights, pipeline_spec
from app.settings import Settings


@dataclass
class ApiState:
    """The server's shared parts (one per process; ``app.state.api``)."""

    # Process settings (data root, key, queue limit, upload cap, device).
    settings: Settings
    # Data folders under settings.home.
    layout: Layout
    # The one door to the device (queue, loaded pipelines, metrics), shared with the web UI
    # when both run in one server.
    synthesis: SynthesisService
    # Saved voices (presets/ under the data root).
    presets: PresetStore
    # The current models (/set_*_weights), a file under the data root.
    models: ModelChoiceStore
    # Pipeline precision: "fp32" or "fast".
    precision: str = "fp32"

    @property
    def queue(self) -> DeviceQueue:
        """The line in front of the device (probes read its length)."""
        return self.synthesis.queue

    @property
    def pipelines(self) -> PipelineSource:
        """The loaded pipelines behind the service."""
        return self.synthesis.pipelines

    # ------------------------------------------------------------------ paths and models
    def data_file(self, value: str, param: str) -> Path:
        """A file under the data root named by a client (relative paths start at the root).

        ``..`` components, absolute paths elsewhere and links leading out are refused with 403.
        """
        text = str(value).strip()
        if not text:
            raise ApiError(400, f"{param} is empty: name a file under the data folder", param=param)
        if ".." in PureWindowsPath(text).parts:
            raise ApiError(
                403, f"{param}: '..' is not allowed; name a file under the data folder", param=param
            )
        try:
            path = resolve_inside(text, self.layout.home)
        except PathOutsideRoot:
            raise ApiError(
                403,
                f"{param}: {text} is outside the data folder; name a file under it (relative paths "
                "start there), upload the clip, or use a preset",
                param=param,
                code="path_not_allowed",
            ) from None
        try:
            found = path.is_file()
        except OSError:  # a name too long for the file system, say
            found = False
        if not found:
            raise ApiError(400, f"{param}: {text} not found in the data folder", param=param)
        return path

    def spec_for(
        self, gpt: str | None = None, sovits: str | None = None, preset: VoicePreset | None = None
    ) -> PipelineSpec:
        """The models of one request: its own, else the preset's, else the current ones."""
        listing = list_weights(self.layout)
        current: tuple[Path, Path] | None = None
        chosen = []
        for kind, explicit, from_preset in (
            ("gpt", gpt, preset.gpt_weights if preset else ""),
            ("sovits", sovits, preset.sovits_weights if preset else ""),
        ):
            param = f"{kind}_weights"
            value = explicit or from_preset
            if value:
                try:
                    chosen.append(resolve_weight(self.layout, kind, value, listing))
                except PathOutsideRoot as exc:
                    raise ApiError(403, f"{param}: {exc}", param=param, code="path_not_allowed") from None
                except ValueError as exc:
                    raise ApiError(400, f"{param}: {exc}", param=param, code="model_unavailable") from None
            else:
                if current is None:
                    try:
                        current = self.models.current(listing)
                    except ValueError as exc:
                        raise ApiError(503, str(exc), param=param, code="no_model") from None
                chosen.append(current[0 if kind == "gpt" else 1])
        return pipeline_spec(self.layout, chosen[0], chosen[1], self.settings.device, self.precision)

    # ------------------------------------------------------------------ synthesis
    async def synthesize(self, spec: PipelineSpec, request: TTSRequest) -> TTSResult:
        """The whole audio of ``request`` (queued; 503 at once when the queue is full)."""
        return await asyncio.wrap_future(self.synthesis.synthesize(spec, request))

    async def open_stream(
        self, spec: PipelineSpec, request: TTSRequest, token_chunks: bool, options: StreamOptions | None
    ) -> ChunkStream:
        """Queue a streaming synthesis and wait for its first chunk.

        Errors before the first chunk (bad reference, unloadable models) raise here, so the
        client gets a 4xx instead of a 200 with an empty stream.
        """
        stream = ChunkStream(asyncio.get_running_loop())
        stream.future = self.synthesis.stream(
            spec, request, stream, token_chunks=token_chunks, options=options
        )
        try:
            await stream.prime()
        except BaseException:
            stream.cancel()
            raise
        return stream


_END = object()


class ChunkStream:
    """Audio chunks handed from the worker thread to the event loop, in order (a
    :class:`~app.services.synthesis.ChunkSink` read by a coroutine).

    :meth:`prime` waits for the first chunk; iterating yields it and the rest. :meth:`cancel`
    (the client went away) stops the job at its next chunk, or before it starts.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: asyncio.Queue[object] = asyncio.Queue()
        self._first: object = None
        self.cancelled = threading.Event()
        self.future: Future[None] | None = None

    # worker side
    def _post(self, item: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed (server shutting down)
            self._loop.call_soon_threadsafe(self._items.put_nowait, item)

    def put(self, chunk: AudioChunk) -> None:
        self._post(chunk)

    def fail(self, exc: BaseException) -> None:
        self._post(exc)

    def finish(self) -> None:
        self._post(_END)

    # event-loop side
    async def _next(self) -> object:
        item = await self._items.get()
        if isinstance(item, BaseException):
            raise item
        return item

    async def prime(self) -> None:
        self._first = await self._next()

    @property
    def sample_rate(self) -> int:
        """Samples per second of the stream (known once primed)."""
        if not isinstance(self._first, AudioChunk):
            raise RuntimeError("the stream has no audio yet; call prime() first")
        return self._first.sample_rate

    @property
    def notes(self) -> tuple[str, ...]:
        """What the pipeline noted planning the request (known once primed)."""
        return self._first.notes if isinstance(self._first, AudioChunk) else ()

    async def chunks(self) -> AsyncIterator[AudioChunk]:
        item = self._first
        self._first = None
        while item is not _END and item is not None:
            assert isinstance(item, AudioChunk)
            yield item
            item = await self._next()

    def cancel(self) -> None:
        self.cancelled.set()
        if self.future is not None:
            self.future.cancel()  # frees the queue slot when the job has not started yet
