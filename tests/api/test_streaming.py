"""Streaming on a real uvicorn server (in this process, on a free loopback port).

A gate around the pipeline holds the synthesis after its first chunk until the client says it
has received audio: bytes that arrive while the synthesis is held prove that the first bytes go
out before synthesis ends.
"""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np
import pytest

from app.api.app import create_app
from app.settings import Settings
from tests.api.conftest import assert_error, assert_speech, read_wav, tts_query
from tests.api.harness import Gate, serve

LONG_TEXT = "你好，欢迎。今天天气很不错！这是一个测试。"  # three segments


@pytest.fixture
def gated(api_home):
    gate = Gate()
    app = create_app(Settings(home=api_home, queue_limit=2), pipelines=gate)  # type: ignore[arg-type]
    with serve(app) as url:
        yield gate, url, app.state.api


@pytest.mark.parametrize(("mode", "media"), [("true", "wav"), ("2", "wav"), ("3", "raw")])
def test_first_bytes_leave_before_synthesis_ends(gated, mode, media):
    gate, url, _ = gated
    query = tts_query(text=LONG_TEXT, streaming_mode=mode, media_type=media)
    with httpx.Client(timeout=60) as http, http.stream("GET", f"{url}/tts", params=query) as response:
        assert response.status_code == 200
        parts = response.iter_raw()
        first = next(parts)
        while len(first) <= 44:  # the header may come alone
            first += next(parts)
        assert gate.held.wait(30) and not gate.release.is_set()
        assert not gate.finished  # audio arrived while the synthesis was still held
        gate.release.set()
        body = first + b"".join(parts)
    assert not gate.timed_out and gate.finished
    if media == "wav":
        assert body[:4] == b"RIFF" and body.count(b"RIFF") == 1
        audio, rate = read_wav(body)
    else:
        assert response.headers["content-type"] == "audio/pcm"
        audio, rate = np.frombuffer(body, dtype="<i2"), 32000
    assert_speech(audio, rate, max_seconds=3 * 2.4)


def test_a_client_that_leaves_stops_the_synthesis_and_frees_the_queue(gated):
    gate, url, api = gated
    query = tts_query(text=LONG_TEXT, streaming_mode="2")
    with httpx.Client(timeout=60) as http, http.stream("GET", f"{url}/tts", params=query) as response:
        assert response.status_code == 200
        parts = response.iter_raw()  # kept: dropping the iterator would close the response now
        next(parts)
        assert gate.held.wait(30)
        parts.close()
    # The connection is closed while the synthesis is held; then let it go on.
    time.sleep(1.0)
    gate.release.set()
    deadline = time.monotonic() + 20
    while api.queue.pending and time.monotonic() < deadline:
        time.sleep(0.05)
    assert api.queue.pending == 0
    assert gate.closed_early and not gate.finished  # stopped at its next chunk, not run to the end


def test_streamed_errors_before_audio_are_4xx(gated):
    _, url, _ = gated
    gate_query = tts_query(ref_audio_path="silent.wav", streaming_mode="2")
    response = httpx.get(f"{url}/tts", params=gate_query, timeout=60)
    assert "silent" in assert_error(response, 400)


def test_concurrent_streams_queue_and_overflow_gets_503(gated):
    gate, url, api = gated
    query = tts_query(streaming_mode="1")
    results: list[httpx.Response] = []

    def fetch() -> None:
        results.append(httpx.get(f"{url}/tts", params=query, timeout=120))

    with httpx.Client(timeout=60) as http, http.stream("GET", f"{url}/tts", params=query) as first:
        assert first.status_code == 200
        assert gate.held.wait(30)  # the device is busy with the first request
        waiting = [threading.Thread(target=fetch) for _ in range(2)]  # queue_limit = 2
        for t in waiting:
            t.start()
        deadline = time.monotonic() + 10
        while api.queue.pending < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        t0 = time.perf_counter()
        busy = httpx.get(f"{url}/tts", params=query, timeout=30)
        assert time.perf_counter() - t0 < 2.0
        assert_error(busy, 503)
        assert int(busy.headers["retry-after"]) >= 1
        gate.release.set()
        body = first.read()
    for t in waiting:
        t.join(120)
    assert_speech(*read_wav(body))
    assert [r.status_code for r in results] == [200, 200]
    for r in results:
        assert_speech(*read_wav(r.content))
