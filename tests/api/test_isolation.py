"""No cross-talk: each request synthesises with its own reference and models, also under concurrency
and while the current model is swapped (in-flight requests finish on the models they started on)."""

from __future__ import annotations

import threading

import httpx
import numpy as np
import pytest

from app.api.app import create_app
from app.settings import Settings
from tests.api.conftest import read_wav, tts_query
from tests.api.harness import Gate, serve


def _samples(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return read_wav(response.content)[0]


@pytest.fixture
def server(api_home):
    gate = Gate()
    gate.release.set()  # streams pass freely unless a test closes the gate
    app = create_app(Settings(home=api_home, queue_limit=4), pipelines=gate)  # type: ignore[arg-type]
    with serve(app) as url:
        yield gate, url
    (api_home / "output" / "api" / "models.json").unlink(missing_ok=True)


def test_concurrent_requests_with_different_references_do_not_mix(server):
    _, url = server
    queries = {
        "low": tts_query(seed=5),
        "high": tts_query(seed=5, ref_audio_path="refs/high.wav", prompt_text=""),
    }
    solo = {name: _samples(httpx.get(f"{url}/tts", params=q, timeout=120)) for name, q in queries.items()}
    assert not np.array_equal(solo["low"], solo["high"])  # the reference matters
    results: dict[int, np.ndarray] = {}
    order = ["low", "high", "low", "high"]

    def fetch(i: int) -> None:
        results[i] = _samples(httpx.get(f"{url}/tts", params=queries[order[i]], timeout=120))

    threads = [threading.Thread(target=fetch, args=(i,)) for i in range(len(order))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    for i, name in enumerate(order):
        assert np.array_equal(results[i], solo[name]), f"request {i} ({name}) differs from its solo run"


def test_in_flight_request_finishes_on_its_models_while_the_model_is_swapped(server):
    gate, url = server
    base = tts_query(seed=9)
    start = httpx.get(f"{url}/set_gpt_weights", params={"weights_path": "GPT_weights/tiny-e2.ckpt"})
    assert start.status_code == 200, start.text
    solo_tiny = _samples(httpx.get(f"{url}/tts", params=base, timeout=120))
    solo_other = _samples(
        httpx.get(f"{url}/tts", params={**base, "gpt_weights": "other-e5.ckpt"}, timeout=120)
    )
    assert not np.array_equal(solo_tiny, solo_other)
    gate.release.clear()
    gate.held.clear()
    later: list[httpx.Response] = []
    with httpx.Client(timeout=120) as http:
        with http.stream("GET", f"{url}/tts", params={**base, "streaming_mode": "1"}) as first:
            assert first.status_code == 200
            assert gate.held.wait(30)  # synthesising on the current (tiny) GPT, held mid-way
            swap = http.get(f"{url}/set_gpt_weights", params={"weights_path": "GPT_weights/other-e5.ckpt"})
            assert swap.status_code == 200, swap.text
            waiter = threading.Thread(
                target=lambda: later.append(httpx.get(f"{url}/tts", params=base, timeout=120))
            )
            waiter.start()
            gate.release.set()
            streamed = read_wav(first.read())[0]
        waiter.join(180)
    assert np.array_equal(streamed, solo_tiny)  # finished on the model it started with
    assert np.array_equal(_samples(later[0]), solo_other)  # the next one uses the new current model
