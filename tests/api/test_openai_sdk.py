"""The real OpenAI Python SDK against a real server (uvicorn in this process, tiny models).

Streaming runs through :class:`~tests.api.harness.Gate`: the synthesis pauses after its first
chunk until the test has decoded audio from the bytes received so far, so an encoder that held the
file back until the end fails here (nothing would arrive while the synthesis is held).
"""

from __future__ import annotations

import base64
import io
import json

import av
import httpx
import numpy as np
import openai
import pytest

from app.api.app import create_app
from app.services.openai_voices import TABLE_FILE
from app.settings import Settings
from tests.api.conftest import PROMPT
from tests.api.harness import Gate, serve

TEXT = "你好，欢迎。"
LONG_TEXT = "你好，欢迎。今天天气很不错！这是一个测试。"  # three segments
RATES = {"mp3": 32000, "opus": 48000, "aac": 32000, "flac": 32000, "wav": 32000, "pcm": 24000}


def decode(data: bytes, fmt: str) -> tuple[np.ndarray, int]:
    """Samples (float32 mono) and rate; [] for bytes that hold no whole frame yet."""
    if fmt == "pcm":
        return np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2") / 32768.0, 24000
    if fmt == "wav" and data[4:8] == b"\xff\xff\xff\xff":
        return np.frombuffer(data[44 : 44 + (len(data) - 44) // 2 * 2], dtype="<i2") / 32768.0, 32000
    frames = []
    try:
        with av.open(io.BytesIO(data), "r") as container:
            stream = container.streams.audio[0]
            rate = stream.codec_context.sample_rate
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray().reshape(-1).astype(np.float32))
    except (av.error.FFmpegError, IndexError, EOFError):
        if not frames:
            return np.zeros(0, np.float32), 0
    return np.concatenate(frames), rate


@pytest.fixture
def server(api_home):
    """A served app whose streams pause after their first chunk, one saved voice "anna"."""
    gate = Gate()
    app = create_app(Settings(home=api_home, queue_limit=2), pipelines=gate)  # type: ignore[arg-type]
    with serve(app) as url:
        fields = {"name": "anna", "prompt_text": PROMPT, "prompt_lang": "zh", "text_lang": "zh", "seed": "5"}
        files = {"ref_audio": ("r.wav", (api_home / "ref.wav").read_bytes(), "audio/wav")}
        assert httpx.post(f"{url}/presets", data=fields, files=files, timeout=60).status_code == 201
        sdk = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)
        yield gate, sdk
        gate.release.set()
        httpx.delete(f"{url}/presets/anna", timeout=60)
    (api_home / "presets" / TABLE_FILE).unlink(missing_ok=True)


@pytest.mark.parametrize("fmt", sorted(RATES))
def test_speech_in_every_format(server, fmt):
    _, sdk = server
    reply = sdk.audio.speech.create(model="tts-1", voice="alloy", input=TEXT, response_format=fmt)
    seconds = float(reply.response.headers["x-audio-seconds"])
    audio, rate = decode(reply.content, fmt)
    assert rate == RATES[fmt]
    assert abs(len(audio) / rate - seconds) < 0.1, (len(audio) / rate, seconds)
    assert np.abs(audio).max() > 0.001


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav", "pcm"])
def test_streamed_audio_arrives_before_synthesis_ends(server, fmt):
    gate, sdk = server
    whole = sdk.audio.speech.create(
        model="gpt-4o-mini-tts", voice="anna", input=LONG_TEXT, response_format=fmt
    )
    with sdk.audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts-2025-03-20",
        voice="anna",
        input=LONG_TEXT,
        response_format=fmt,
        stream_format="audio",
    ) as response:
        parts = response.iter_bytes()
        received = b""
        while not len(decode(received, fmt)[0]):
            received += next(parts)
        # Audio decoded while the synthesis is held after its first chunk (later ones not made).
        assert gate.held.is_set() and not gate.finished and gate.chunks == 1
        gate.release.set()
        body = received + b"".join(parts)
    assert not gate.timed_out and gate.finished and gate.chunks > 1
    audio, rate = decode(body, fmt)
    expected, _ = decode(whole.content, fmt)
    assert rate == RATES[fmt]
    assert abs(len(audio) - len(expected)) / rate < 0.1  # same voice, text and seed


def test_sse_events_through_the_sdk(server):
    gate, sdk = server
    gate.release.set()
    with sdk.audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts", voice={"id": "anna"}, input=TEXT, response_format="mp3", stream_format="sse"
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    assert [e["type"] for e in events[:-1]] == ["speech.audio.delta"] * (len(events) - 1)
    assert events[-1]["type"] == "speech.audio.done" and events[-1]["usage"]["output_tokens"] > 0
    audio, rate = decode(b"".join(base64.b64decode(e["audio"]) for e in events[:-1]), "mp3")
    assert rate == 32000 and len(audio) > 0.1 * rate


def test_voice_object_instructions_and_built_in_names(server):
    _, sdk = server
    reply = sdk.audio.speech.create(
        model="gpt-4o-mini-tts",
        voice={"id": "nova"},
        input=TEXT,
        response_format="wav",
        instructions="Cheerful, please.",
    )
    notes = json.loads(reply.response.headers["x-studio-notes"])
    assert any("'anna'" in n for n in notes) and any(n.startswith("instructions: not applied") for n in notes)


def test_models_list_retrieve_and_errors(server):
    _, sdk = server
    assert {m.id for m in sdk.models.list()} >= {"tts-1", "tts-1-hd", "gpt-4o-mini-tts"}
    model = sdk.models.retrieve("tts-1-hd-1106")
    assert (model.id, model.object, model.owned_by) == ("tts-1-hd-1106", "model", "sovits-studio")
    with pytest.raises(openai.NotFoundError) as missing:
        sdk.models.retrieve("dall-e-3")
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        sdk.audio.speech.create(model="tts-2", voice="alloy", input=TEXT)
    assert bad.value.param == "model"
    with pytest.raises(openai.NotFoundError) as unknown:
        sdk.audio.speech.create(model="tts-1", voice="nobody", input=TEXT)
    assert unknown.value.param == "voice"
