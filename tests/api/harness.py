"""Test harness: a uvicorn server in this process, and a gate that holds streams after their first chunk."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from app.services.pipelines import shared_pipelines
from bench.api_load import free_port


class Gate:
    """Wraps the pipeline cache: each stream pauses after its first chunk until ``release``."""

    def __init__(self) -> None:
        self.inner = shared_pipelines()
        self.release = threading.Event()
        self.held = threading.Event()
        self.timed_out = False
        self.chunks = 0
        self.closed_early = False
        self.finished = False

    def get(self, spec):
        pipeline = self.inner.get(spec)
        gate = self

        class Held:
            def stream(self, request, token_chunks=True, options=None):
                complete = False
                try:
                    for i, chunk in enumerate(
                        pipeline.stream(request, token_chunks=token_chunks, options=options)
                    ):
                        gate.chunks += 1
                        if i == 0:
                            # Set before the chunk leaves: a client that decodes it at once must
                            # find the synthesis held (set after the yield, it raced the server's
                            # next pull).
                            gate.held.set()
                        yield chunk
                        if i == 0:
                            gate.timed_out = not gate.release.wait(30)
                    complete = True
                    gate.finished = True
                finally:
                    gate.closed_early = not complete

            def synthesize(self, request):
                return pipeline.synthesize(request)

        return Held()

    def loaded(self):
        return self.inner.loaded()


@contextmanager
def serve(app) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
