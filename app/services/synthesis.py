"""The one door to the device: every synthesis, from the web UI, the HTTP API or a job, waits its turn here.

A :class:`SynthesisService` owns the :class:`~app.services.device_queue.DeviceQueue` (one job on
the device at a time, a bounded line, prompt refusal with a suggested wait), the loaded pipelines
(:mod:`app.services.pipelines`: a model swap happens inside a job, never during one), cancellation
(a stream stops at its next chunk once its reader leaves) and the figures the API's probes report
(:class:`DeviceMetrics`). Interfaces build a :class:`~app.infer.request.TTSRequest` and a
:class:`~app.infer.request.PipelineSpec` and hand both here; they never load models or run them
themselves, so a request from the UI and one from the API queue in the same line and show in the
same metrics.

Other work on the device (an SVC conversion, a preview) goes through :meth:`SynthesisService.run`
with a callable, and so waits in the same line.

One service per process: the entry point makes it (:meth:`SynthesisService.create`) and hands it to
every interface it serves.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol, TypeVar

from app.infer.pipeline import TTSPipeline
from app.infer.request import AudioChunk, PipelineSpec, TTSRequest, TTSResult
from app.infer.streaming import StreamOptions
from app.services.device_queue import DeviceQueue
from app.services.pipelines import shared_pipelines
from app.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

# Worker thread name of the device queue (shows in logs and stack dumps).
THREAD_NAME = "tts-device"


class PipelineSource(Protocol):
    """Where jobs get loaded pipelines: :class:`~app.services.pipelines.PipelineCache` (tests wrap it)."""

    def get(self, spec: PipelineSpec) -> TTSPipeline: ...

    def loaded(self) -> tuple[PipelineSpec, ...]: ...


class ChunkSink(Protocol):
    """Where a streaming job hands its chunks; called on the device's worker thread."""

    # Set by the reader when it leaves: the job stops at its next chunk, or never starts.
    cancelled: threading.Event

    def put(self, chunk: AudioChunk) -> None: ...

    def fail(self, exc: BaseException) -> None: ...

    def finish(self) -> None: ...


@dataclass(frozen=True)
class DeviceMetrics:
    """A snapshot of the device's line (what ``/ready`` reports)."""

    # Jobs running or waiting.
    pending: int
    # Jobs allowed to wait behind the running one before new ones are refused.
    limit: int
    # A job is on the device now.
    busy: bool
    # Jobs finished since start, successfully or not.
    completed: int
    # Submissions refused because the line was full.
    refused: int
    # Pipelines in memory, least recently used first.
    loaded: tuple[PipelineSpec, ...]


@dataclass(frozen=True)
class SynthesisRecord:
    """How one finished synthesis went (what observers such as ``/metrics`` receive)."""

    # "whole" (synthesize) or "stream".
    mode: str
    # Seconds between queueing and the start on the device.
    wait_s: float
    # Seconds on the device (model loading included when this job loaded them).
    run_s: float
    # Seconds of audio made (0 when it failed before any).
    audio_s: float
    # Seconds from queueing to the first audio handed over (a whole synthesis: to its result).
    first_audio_s: float | None
    # It ended without an error (a stream cancelled by its reader counts as ok).
    ok: bool

    @property
    def real_time_factor(self) -> float | None:
        """Device seconds per second of audio (below 1: faster than real time)."""
        return self.run_s / self.audio_s if self.audio_s > 0 else None


# Called on the device's worker thread after each synthesis; must be quick and must not raise.
SynthesisObserver = Callable[[SynthesisRecord], None]


_END = object()


class ChunkQueue:
    """A :class:`ChunkSink` read by a thread (the web UI's handler, a job): iterate it for the chunks.

    Iteration blocks while the job waits for the device; an error in the job is raised here.
    :meth:`cancel` stops the job (at its next chunk, or before it starts).
    """

    def __init__(self) -> None:
        self._items: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.cancelled = threading.Event()
        self.future: Future[None] | None = None

    def put(self, chunk: AudioChunk) -> None:
        self._items.put(chunk)

    def fail(self, exc: BaseException) -> None:
        self._items.put(exc)

    def finish(self) -> None:
        self._items.put(_END)

    def __iter__(self) -> Iterator[AudioChunk]:
        while True:
            item = self._items.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, AudioChunk)
            yield item

    def cancel(self) -> None:
        self.cancelled.set()
        if self.future is not None:
            self.future.cancel()  # frees the queue slot when the job has not started yet


class SynthesisService:
    """The device's one line, the pipelines loaded for it, and its figures.

    Args:
        queue: the bounded line in front of the device.
        pipelines: loaded pipelines by spec (the process-wide cache unless a test wraps it).
    """

    def __init__(self, queue: DeviceQueue, pipelines: PipelineSource) -> None:
        self.queue = queue
        self.pipelines = pipelines
        self._observers: list[SynthesisObserver] = []

    def observe(self, observer: SynthesisObserver) -> None:
        """Call ``observer`` with a :class:`SynthesisRecord` after every synthesis (``/metrics``)."""
        self._observers.append(observer)

    def _record(self, record: SynthesisRecord) -> None:
        for observer in tuple(self._observers):
            try:
                observer(record)
            except Exception:  # a broken observer must not fail a synthesis
                log.exception("synthesis observer failed")

    @classmethod
    def create(
        cls, queue_limit: int = Settings.queue_limit, pipelines: PipelineSource | None = None
    ) -> SynthesisService:
        """A service of ``queue_limit`` waiting jobs over ``pipelines`` (default: the process-wide cache)."""
        return cls(DeviceQueue(queue_limit, name=THREAD_NAME), pipelines or shared_pipelines())

    def run(self, job: Callable[[], T]) -> Future[T]:
        """Queue any work on the device (an SVC conversion, a preview).

        Raises :class:`~app.services.device_queue.QueueFull` at once when the line is full.
        """
        return self.queue.submit(job)

    def synthesize(self, spec: PipelineSpec, request: TTSRequest) -> Future[TTSResult]:
        """Queue the whole synthesis of ``request`` on the models of ``spec``."""
        queued = time.perf_counter()

        def job() -> TTSResult:
            started = time.perf_counter()
            ok, audio_s = False, 0.0
            try:
                result = self.pipelines.get(spec).synthesize(request)
                ok, audio_s = True, result.duration
                return result
            finally:
                ended = time.perf_counter()
                first = ended - queued if ok else None
                self._record(SynthesisRecord("whole", started - queued, ended - started, audio_s, first, ok))

        return self.queue.submit(job)

    def stream(
        self,
        spec: PipelineSpec,
        request: TTSRequest,
        sink: ChunkSink,
        *,
        token_chunks: bool = True,
        options: StreamOptions | None = None,
    ) -> Future[None]:
        """Queue a streaming synthesis whose chunks go to ``sink`` as they are made.

        Cancelling the returned future before the job starts frees its slot; setting
        ``sink.cancelled`` stops a running job at its next chunk.
        """

        queued = time.perf_counter()

        def job() -> None:
            if sink.cancelled.is_set():
                return
            started = time.perf_counter()
            first: float | None = None
            audio_s = 0.0
            try:
                chunks = self.pipelines.get(spec).stream(request, token_chunks=token_chunks, options=options)
                try:
                    for chunk in chunks:
                        if first is None:
                            first = time.perf_counter() - queued
                        audio_s += len(chunk.audio) / chunk.sample_rate
                        sink.put(chunk)
                        if sink.cancelled.is_set():
                            log.info("stream cancelled by its reader; stopping synthesis")
                            break
                finally:
                    chunks.close()
            except Exception as exc:
                self._record(self._stream_record(queued, started, audio_s, first, ok=False))
                sink.fail(exc)
                return
            self._record(self._stream_record(queued, started, audio_s, first, ok=True))
            sink.finish()

        future = self.queue.submit(job)
        # A job cancelled before it ran (its reader left, or the queue shut down) still ends the
        # stream, so no reader waits for chunks that never come.
        future.add_done_callback(lambda done: sink.finish() if done.cancelled() else None)
        return future

    @staticmethod
    def _stream_record(
        queued: float, started: float, audio_s: float, first: float | None, *, ok: bool
    ) -> SynthesisRecord:
        ended = time.perf_counter()
        return SynthesisRecord("stream", started - queued, ended - started, audio_s, first, ok)

    def open_stream(
        self,
        spec: PipelineSpec,
        request: TTSRequest,
        *,
        token_chunks: bool = True,
        options: StreamOptions | None = None,
    ) -> ChunkQueue:
        """:meth:`stream` for a reader on a thread: iterate the returned queue, ``cancel()`` to stop."""
        chunks = ChunkQueue()
        chunks.future = self.stream(spec, request, chunks, token_chunks=token_chunks, options=options)
        return chunks

    def metrics(self) -> DeviceMetrics:
        """The line and the loaded models now (waits while a model loads: the cache holds its lock)."""
        return DeviceMetrics(
            pending=self.queue.pending,
            limit=self.queue.limit,
            busy=self.queue.busy,
            completed=self.queue.completed,
            refused=self.queue.refused,
            loaded=self.pipelines.loaded(),
        )

    def shutdown(self, wait: bool = True) -> None:
        """Stop taking jobs; waiting jobs are cancelled, the running one finishes."""
        self.queue.shutdown(wait=wait)
