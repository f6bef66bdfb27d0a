"""SynthesisService: one line for every kind of device work, streams that stop when their reader
leaves, and figures that count every job whoever sent it."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from app.infer.request import AudioChunk, PipelineSpec, TTSInputError, TTSRequest
from app.services.device_queue import DeviceQueue, QueueFull
from app.services.synthesis import SynthesisService

SPEC = PipelineSpec(Path("g.ckpt"), Path("s.pth"), Path("hubert"), Path("bert"))
REQUEST = TTSRequest(text="你好。", reference=b"")


class FakePipeline:
    """Streams ``segments`` one-sample chunks; waits on ``gate`` after the first when one is given."""

    def __init__(self, segments: int = 3, gate: threading.Event | None = None) -> None:
        self.segments = segments
        self.gate = gate
        self.made = 0
        self.closed = False
        self.held = threading.Event()

    def stream(self, request, token_chunks=True, options=None):
        try:
            for i in range(self.segments):
                self.made += 1
                yield AudioChunk(np.full(1, i, np.int16), 32000, i, self.segments, True)
                if i == 0 and self.gate is not None:
                    self.held.set()
                    assert self.gate.wait(10), "test gate never opened"
        finally:
            self.closed = True

    def synthesize(self, request):
        return FakeResult(request.text, 1.5)


@dataclass(frozen=True)
class FakeResult:
    """What the service reads of a TTSResult: the audio's length, for its records."""

    text: str
    duration: float


class FakeSource:
    def __init__(self, pipeline: FakePipeline | Exception) -> None:
        self.pipeline = pipeline
        self.asked: list[PipelineSpec] = []

    def get(self, spec: PipelineSpec):
        self.asked.append(spec)
        if isinstance(self.pipeline, Exception):
            raise self.pipeline
        return self.pipeline

    def loaded(self) -> tuple[PipelineSpec, ...]:
        return tuple(self.asked[-1:])


def _service(pipeline: FakePipeline | Exception, limit: int = 2) -> SynthesisService:
    return SynthesisService(DeviceQueue(limit), FakeSource(pipeline))


def _wait_until(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_any_device_work_waits_in_the_same_line_and_is_counted():
    service = _service(FakePipeline())
    gate, started = threading.Event(), threading.Event()
    blocker = service.run(lambda: (started.set(), gate.wait(10)))
    assert started.wait(10)
    synthesis = service.synthesize(SPEC, REQUEST)
    figures = service.metrics()
    assert (figures.pending, figures.limit, figures.busy) == (2, 2, True)
    assert not synthesis.done()  # behind the running job
    service.run(lambda: None)
    with pytest.raises(QueueFull):
        service.run(lambda: None)  # two waiting behind the running one: the line is full
    gate.set()
    assert synthesis.result(10) == FakeResult(REQUEST.text, 1.5)
    assert blocker.result(10)
    _wait_until(lambda: service.metrics().pending == 0)
    figures = service.metrics()
    assert (figures.busy, figures.completed, figures.refused, figures.loaded) == (False, 3, 1, (SPEC,))
    service.shutdown()


def test_a_stream_hands_every_chunk_to_a_thread_reader_in_order():
    pipeline = FakePipeline(segments=3)
    service = _service(pipeline)
    chunks = service.open_stream(SPEC, REQUEST)
    assert [int(c.audio[0]) for c in chunks] == [0, 1, 2]
    assert pipeline.closed
    service.shutdown()


def test_an_error_in_the_job_reaches_the_reader():
    service = _service(TTSInputError("bad reference"))
    with pytest.raises(TTSInputError, match="bad reference"):
        list(service.open_stream(SPEC, REQUEST))
    service.shutdown()


def test_a_reader_that_leaves_stops_the_job_at_its_next_chunk():
    gate = threading.Event()
    pipeline = FakePipeline(segments=5, gate=gate)
    service = _service(pipeline)
    chunks = service.open_stream(SPEC, REQUEST)
    first = next(iter(chunks))
    assert first.segment == 0 and pipeline.held.wait(10)
    chunks.cancel()
    gate.set()
    _wait_until(lambda: service.metrics().pending == 0)
    assert pipeline.closed and pipeline.made == 2  # one more chunk made, then stopped
    service.shutdown()


def test_a_stream_cancelled_while_waiting_frees_its_slot_and_ends():
    service = _service(FakePipeline(), limit=1)
    gate, started = threading.Event(), threading.Event()
    service.run(lambda: (started.set(), gate.wait(10)))
    assert started.wait(10)
    chunks = service.open_stream(SPEC, REQUEST)
    assert service.metrics().pending == 2
    chunks.cancel()
    assert service.metrics().pending == 1  # the slot is free before the device is
    assert list(chunks) == []  # the reader is not left waiting for chunks that never come
    gate.set()
    service.shutdown()
    assert service.pipelines.asked == []  # never ran


def test_create_shares_the_process_wide_pipelines():
    from app.services.pipelines import shared_pipelines

    one, two = SynthesisService.create(1), SynthesisService.create(3)
    assert one.pipelines is two.pipelines is shared_pipelines()
    assert (one.metrics().limit, two.metrics().limit) == (1, 3)
    one.shutdown()
    two.shutdown()
