"""The real entry point: ``python -m app.api`` in a subprocess on a free loopback port.

Covers the UI mounted on the same server, an upstream client's query string with streaming (chunk
arrival times against the whole response), and the load test: 4x the queue limit of concurrent
requests, each answered with valid audio or a prompt 503 with Retry-After.
"""

from __future__ import annotations

import json
import time
import urllib.parse

import httpx
import pytest

from bench.api_load import run_load, start_api_server, tts_url
from tests.api.conftest import PROMPT, assert_speech, read_wav

QUEUE_LIMIT = 2
THREE_SEGMENTS = "你好，欢迎。今天天气很不错！这是一个测试。"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(api_home):
    env = {"STUDIO_QUEUE_LIMIT": str(QUEUE_LIMIT), "OMP_NUM_THREADS": "1", "STUDIO_API_KEY": ""}
    with start_api_server(api_home, env, args=()) as running:  # with the UI
        yield running
        assert running.process.poll() is None, running.log()


def test_api_and_ui_on_one_server(server):
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
    assert httpx.get(f"{server.url}/ready").json()["ready"] is True
    page = httpx.get(f"{server.url}/ui/", timeout=30)
    assert page.status_code == 200 and "SoVITS Studio" in page.text
    assert "/tts" in httpx.get(f"{server.url}/openapi.json").json()["paths"]


def test_upstream_streaming_query_sends_audio_before_the_end(server):
    query = (
        f"/tts?text={urllib.parse.quote(THREE_SEGMENTS)}&text_lang=zh&ref_audio_path=ref.wav&prompt_lang=zh"
        f"&prompt_text={urllib.parse.quote(PROMPT)}&text_split_method=cut5&batch_size=1&media_type=wav"
        "&streaming_mode=true"
    )
    httpx.get(server.url + query.replace("true", "false"), timeout=120)  # load the models first
    arrivals: list[tuple[float, int]] = []
    start = time.perf_counter()
    with httpx.stream("GET", server.url + query, timeout=120) as response:
        assert response.status_code == 200
        body = b""
        for part in response.iter_raw():
            arrivals.append((time.perf_counter() - start, len(part)))
            body += part
    total = arrivals[-1][0]
    first_audio = next(t for t, _ in arrivals if t and sum(n for tt, n in arrivals if tt <= t) > 44)
    print(
        json.dumps(
            {"first_audio_s": round(first_audio, 3), "total_s": round(total, 3), "parts": len(arrivals)}
        )
    )
    # Three segments are synthesised one after the other; the first went out long before the last.
    assert first_audio < 0.75 * total, arrivals
    audio, rate = read_wav(body)
    assert_speech(audio, rate, max_seconds=3 * 2.4)


def test_load_at_four_times_the_queue_limit(server):
    url = tts_url(server.url, "ref.wav", PROMPT)
    concurrency = 4 * QUEUE_LIMIT
    result = run_load(url, concurrency, rounds=2, timeout=300)
    summary = result.summary()
    print(json.dumps({"concurrency": concurrency, "queue_limit": QUEUE_LIMIT, **summary}))
    assert summary["failures"] == 0, summary["problems"]
    assert summary["requests"] == 2 * concurrency
    assert summary["ok_200"] >= QUEUE_LIMIT + 1 and summary["busy_503"] >= 1
    assert summary["latency_503_s"]["max"] < 2.0  # refused at once, not after waiting
    assert server.process.poll() is None
    assert httpx.get(f"{server.url}/ready").json()["queue"]["pending"] == 0
