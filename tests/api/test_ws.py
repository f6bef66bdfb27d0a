"""``/ws/tts`` on a real uvicorn server with a real WebSocket client (``websockets``).

Text is sent the way an LLM writes it (a character at a time); the server answers with one
``sentence`` ... ``sentence_end`` group per sentence, in order, binary s16le frames between.
"""

from __future__ import annotations

import json
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from app.api.app import create_app
from app.settings import Settings
from tests.api.conftest import PROMPT
from tests.api.harness import Gate, serve

START: dict[str, Any] = {
    "type": "start",
    "ref_audio_path": "ref.wav",
    "prompt_text": PROMPT,
    "prompt_lang": "zh",
    "text_lang": "zh",
    "seed": 7,
}
THREE = "你好，欢迎。今天天气很不错！这是一个测试。"  # three sentences


@dataclass
class Reply:
    """What the server sent after the start: frames in order, audio bytes per sentence."""

    frames: list[dict[str, Any]] = field(default_factory=list)
    audio: dict[int, bytearray] = field(default_factory=dict)
    # Every binary frame in order, whichever sentence it belongs to.
    stream: bytearray = field(default_factory=bytearray)
    close_code: int | None = None

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == kind]


def read_until(ws: ClientConnection, reply: Reply, kind: str = "done", timeout: float = 120) -> Reply:
    """Collect frames until one of ``kind`` (or the close)."""
    current: int | None = None
    deadline = time.monotonic() + timeout
    while True:
        try:
            message = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
        except ConnectionClosed as exc:
            reply.close_code = exc.rcvd.code if exc.rcvd else None
            return reply
        if isinstance(message, bytes):
            reply.stream += message
            if current is not None:
                reply.audio.setdefault(current, bytearray()).extend(message)
            continue
        frame = json.loads(message)
        reply.frames.append(frame)
        if frame["type"] == "sentence":
            current = frame["index"]
        if frame["type"] == kind:
            return reply


@pytest.fixture(scope="module")
def server(api_home):
    app = create_app(Settings(home=api_home))
    with serve(app) as url:
        yield url.replace("http://", "ws://") + "/ws/tts"


@pytest.fixture
def keyed(api_home):
    app = create_app(Settings(home=api_home, api_key="s3cret"))
    with serve(app) as url:
        yield url.replace("http://", "ws://") + "/ws/tts"


def start(ws: ClientConnection, **overrides: Any) -> dict[str, Any]:
    ws.send(json.dumps({**START, **overrides}))
    return json.loads(ws.recv(timeout=60))


def test_fragments_char_by_char_give_one_segment_per_sentence_in_order(server):
    with connect(server, max_size=None) as ws:
        assert start(ws) == {"type": "ready"}
        for ch in THREE:
            ws.send(json.dumps({"type": "text", "text": ch}))
        ws.send(json.dumps({"type": "end"}))
        reply = read_until(ws, Reply())
        reply = read_until(ws, reply, kind="never")  # the server closes after done
    assert reply.close_code == 1000
    assert [f["text"] for f in reply.of("sentence")] == ["你好，欢迎。", "今天天气很不错！", "这是一个测试。"]
    ends = reply.of("sentence_end")
    assert [e["index"] for e in ends] == [0, 1, 2]
    (begin,) = reply.of("audio_start")
    assert begin == {"type": "audio_start", "sample_rate": 32000, "channels": 1, "media_type": "raw"}
    kinds = [f["type"] for f in reply.frames]
    assert kinds.index("audio_start") < kinds.index("sentence") and kinds[-1] == "done"
    for end in ends:
        data = bytes(reply.audio[end["index"]])
        samples = np.frombuffer(data, dtype="<i2")
        assert len(data) == 2 * end["samples"]
        assert end["samples"] == round(end["seconds"] * 32000)  # what the pipeline reports
        assert 0.1 < end["seconds"] < 4 and np.abs(samples).max() > 0
    done = reply.of("done")[0]
    assert done["sentences"] == 3
    assert done["samples"] == sum(e["samples"] for e in ends) == len(reply.stream) // 2


def test_flush_speaks_text_without_a_sentence_end_and_wav_has_one_header(server):
    with connect(server, max_size=None) as ws:
        start(ws, media_type="wav", text="你好欢迎")
        ws.send(json.dumps({"type": "flush"}))
        reply = read_until(ws, Reply(), kind="sentence_end")
        assert [f["text"] for f in reply.of("sentence")] == ["你好欢迎"]
        ws.send(json.dumps({"type": "text", "text": "今天天气很不错"}))
        ws.send(json.dumps({"type": "end"}))
        reply = read_until(ws, reply)
    assert [f["text"] for f in reply.of("sentence")] == ["你好欢迎", "今天天气很不错"]
    body = bytes(reply.stream)
    assert body[:4] == b"RIFF" and body.count(b"RIFF") == 1
    assert struct.unpack("<I", body[24:28])[0] == 32000
    assert len(body) - 44 == 2 * reply.of("done")[0]["samples"]


def test_sample_rate_resamples_the_pcm(server):
    with connect(server, max_size=None) as ws:
        start(ws, sample_rate=24000, text="你好，欢迎。")
        ws.send(json.dumps({"type": "end"}))
        reply = read_until(ws, Reply())
    assert reply.of("audio_start")[0]["sample_rate"] == 24000
    (end,) = reply.of("sentence_end")
    assert len(reply.audio[0]) == 2 * end["samples"]
    assert abs(end["samples"] - end["seconds"] * 24000) < 0.01 * 24000


def test_cancel_drops_queued_text_and_stops_the_sentence(api_home):
    gate = Gate()
    app = create_app(Settings(home=api_home), pipelines=gate)  # type: ignore[arg-type]
    with serve(app) as url, connect(url.replace("http://", "ws://") + "/ws/tts", max_size=None) as ws:
        start(ws, streaming_mode=2, text=THREE + "还有没说完的")
        reply = read_until(ws, Reply(), kind="sentence")
        assert gate.held.wait(30)  # sentence 0 is held after its first chunk
        ws.send(json.dumps({"type": "cancel"}))
        reply = read_until(ws, reply, kind="cancelled")
        gate.release.set()
        deadline = time.monotonic() + 30
        while not gate.closed_early and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gate.closed_early and not gate.finished  # stopped at its next chunk
        cancelled = reply.of("cancelled")[0]
        assert "今天天气很不错" in cancelled["dropped"] and "还有没说完的" in cancelled["dropped"]
        before = len(reply.frames)
        ws.send(json.dumps({"type": "text", "text": "欢迎来到节目。"}))
        ws.send(json.dumps({"type": "end"}))
        reply = read_until(ws, reply)
    after = reply.frames[before:]
    assert [f["text"] for f in after if f["type"] == "sentence"] == ["欢迎来到节目。"]
    assert [f["index"] for f in reply.of("sentence_end")] == [1]  # sentence 0 was cut short


def test_bad_frames_get_error_frames_and_the_session_goes_on(server):
    with connect(server, max_size=None) as ws:
        start(ws)
        ws.send("not json")
        ws.send(json.dumps({"type": "shout"}))
        ws.send(json.dumps({"type": "text", "text": "a\x00b"}))
        ws.send(json.dumps({"type": "text", "text": 5}))
        ws.send(b"\x00\x01")
        errors = [json.loads(ws.recv(timeout=30)) for _ in range(5)]
        assert [e["type"] for e in errors] == ["error"] * 5
        assert [e["code"] for e in errors][:2] == ["invalid_json", "invalid_value"]
        assert [e["param"] for e in errors[1:4]] == ["type", "text", "text"]
        assert "NUL" in errors[2]["message"] and not any(e["fatal"] for e in errors)
        ws.send(json.dumps({"type": "text", "text": "Привет мир. 你好，欢迎。"}))  # nothing readable first
        ws.send(json.dumps({"type": "end"}))
        reply = read_until(ws, Reply())
    (error,) = reply.of("error")
    assert error["param"] == "text" and error["index"] == 0 and not error["fatal"]
    assert [f["text"] for f in reply.of("sentence")] == ["你好，欢迎。"]
    assert reply.of("done")[0]["sentences"] == 1


@pytest.mark.parametrize(
    ("overrides", "param", "status"),
    [
        ({"ref_audio_path": "../etc/passwd"}, "ref_audio_path", 403),
        ({"ref_audio_path": "missing.wav"}, "ref_audio_path", 400),
        ({"text_lang": "xx"}, "text_lang", 400),
        ({"media_type": "mp3"}, "media_type", 400),
        ({"top_k": 0}, "top_k", 400),
        ({"refaudio": "ref.wav"}, "refaudio", 400),
        ({"preset": "nobody"}, "preset", 404),
        ({"type": "text"}, "type", 400),
    ],
)
def test_a_bad_start_is_a_fatal_error_naming_the_field(server, overrides, param, status):
    with connect(server) as ws:
        error = start(ws, **overrides)
        reply = read_until(ws, Reply(), kind="never")
    assert error["type"] == "error" and error["fatal"], error
    assert error["param"] == param and error["status"] == status, error
    assert reply.close_code == 1008


def test_a_reference_without_speech_ends_the_session(server, api_home):
    with connect(server) as ws:
        start(ws, ref_audio_path="silent.wav", text="你好，欢迎。")
        ws.send(json.dumps({"type": "end"}))
        reply = read_until(ws, Reply(), kind="never")
    (error,) = reply.of("error")
    assert error["param"] == "ref_audio_path" and error["fatal"] and str(api_home) not in error["message"]
    assert reply.close_code == 1008 and not reply.of("done")


def test_pipeline_notes_arrive_as_a_frame_once(server, api_home):
    import soundfile as sf

    clean, sr = sf.read(api_home / "ref.wav", dtype="float32")
    (api_home / "ws").mkdir(exist_ok=True)
    sf.write(api_home / "ws" / "clipped.wav", np.clip(clean * 8, -1, 1), sr)
    with connect(server, max_size=None) as ws:
        start(ws, ref_audio_path="ws/clipped.wav", text="你好，欢迎。今天天气很不错！")
        ws.send(json.dumps({"type": "end"}))
        reply = read_until(ws, Reply())
    notes = reply.of("notes")
    assert len(notes) == 1 and notes[0]["index"] == 0, notes
    assert any("is clipped" in n for n in notes[0]["notes"])
    assert all(str(api_home) not in n for n in notes[0]["notes"])
    assert reply.of("done")[0]["sentences"] == 2


@pytest.mark.parametrize("how", ["none", "wrong", "header", "bearer", "query"])
def test_the_api_key(keyed, how):
    headers = {"header": {"X-API-Key": "s3cret"}, "bearer": {"Authorization": "Bearer s3cret"}}.get(how)
    url = keyed + ("?api_key=s3cret" if how == "query" else "?api_key=nope" if how == "wrong" else "")
    with connect(url, additional_headers=headers) as ws:
        if how in ("none", "wrong"):  # refused before the start frame
            reply = read_until(ws, Reply(), kind="never")
            (answer,) = reply.frames
            assert answer["type"] == "error" and answer["status"] == 401 and answer["code"] == "unauthorized"
            assert ("missing" if how == "none" else "wrong") in answer["message"]
            assert reply.close_code == 1008
        else:
            assert start(ws) == {"type": "ready"}


def test_text_keeps_being_accepted_while_a_sentence_is_synthesised(api_home):
    gate = Gate()
    app = create_app(Settings(home=api_home), pipelines=gate)  # type: ignore[arg-type]
    with serve(app) as url, connect(url.replace("http://", "ws://") + "/ws/tts", max_size=None) as ws:
        start(ws, streaming_mode=2, text="你好，欢迎。 ")  # the space decides the end
        reply = read_until(ws, Reply(), kind="sentence")
        assert gate.held.wait(30)
        for ch in "今天天气很不错！":  # accepted while sentence 0 is held on the device
            ws.send(json.dumps({"type": "text", "text": ch}))
        ws.send(json.dumps({"type": "shout"}))  # answered at once: the reader is not blocked
        reply = read_until(ws, reply, kind="error")
        assert not gate.finished
        threading.Timer(0.2, gate.release.set).start()
        ws.send(json.dumps({"type": "end"}))
        reply = read_until(ws, reply)
    assert [f["text"] for f in reply.of("sentence")] == ["你好，欢迎。", "今天天气很不错！"]
    assert reply.of("done")[0]["sentences"] == 2
