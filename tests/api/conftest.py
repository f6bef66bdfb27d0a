"""A data root of tiny random models shared by the API tests, and clients for it."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from fastapi.testclient import TestClient

from app.api.app import create_app
from app.settings import Settings
from tests.infer.tiny import build_home, voice, write_gpt_file

TEXT = "你好，欢迎。"  # one segment: the cheapest synthesis
PROMPT = "你好欢迎"


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread; on a loaded 2-core machine two threads spin-wait."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def api_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny HuBERT/BERT/GPT/SoVITS, a second GPT, two reference voices and a silent clip."""
    home = build_home(tmp_path_factory.mktemp("api_home"))
    write_gpt_file(home / "GPT_weights" / "other-e5.ckpt", seed=5)
    voice(home / "ref.wav", 4.0, pauses=(2.0,))
    (home / "refs").mkdir()
    voice(home / "refs" / "high.wav", 3.5, sr=44100)
    sf.write(home / "silent.wav", np.zeros(32000 * 4, np.float32), 32000)
    return home


@pytest.fixture
def make_client(api_home: Path) -> Iterator[Callable[..., TestClient]]:
    """``make_client(api_key=..., queue_limit=..., max_upload_mb=...)`` -> a TestClient on a fresh app."""
    clients: list[TestClient] = []

    def make(**overrides: object) -> TestClient:
        settings = Settings(home=api_home, **overrides)  # type: ignore[arg-type]
        client = TestClient(create_app(settings), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)
    (api_home / "output" / "api" / "models.json").unlink(missing_ok=True)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


def tts_query(**overrides: object) -> dict[str, object]:
    """A /tts query for the tiny models (upstream parameter names)."""
    query: dict[str, object] = {
        "text": TEXT,
        "text_lang": "zh",
        "ref_audio_path": "ref.wav",
        "prompt_lang": "zh",
        "prompt_text": PROMPT,
        "seed": 7,
    }
    query.update(overrides)
    return {k: v for k, v in query.items() if v is not None}


def read_wav(body: bytes) -> tuple[np.ndarray, int]:
    """Samples (int16) and rate of a WAV body; a streamed one (sizes 0xFFFFFFFF) is patched first."""
    if body[4:8] == b"\xff\xff\xff\xff":
        assert body[36:40] == b"data" and body[40:44] == b"\xff\xff\xff\xff", "open-ended header expected"
        size = len(body) - 44
        body = body[:4] + struct.pack("<I", size + 36) + body[8:40] + struct.pack("<I", size) + body[44:]
    audio, rate = sf.read(io.BytesIO(body), dtype="int16")
    return audio, rate


def assert_speech(audio: np.ndarray, rate: int, max_seconds: float = 3.0) -> None:
    """Plausible output of the tiny models: 32 kHz mono, not silent, at most ``max_seconds``."""
    assert rate == 32000
    assert audio.ndim == 1
    assert 0.1 < len(audio) / rate <= max_seconds, len(audio) / rate
    assert np.abs(audio).max() > 0


def assert_error(response, status: int, param: str | None = None) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["message"] == body["error"]["message"]
    if param is not None:
        assert body["error"]["param"] == param, body
        assert param in body["message"]
    return body["message"]
