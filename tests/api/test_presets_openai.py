"""Voice presets over HTTP, and the OpenAI-compatible speech endpoint that speaks with them."""

from __future__ import annotations

import numpy as np
import pytest

from tests.api.conftest import PROMPT, assert_error, assert_speech, read_wav


@pytest.fixture
def voice_preset(client, api_home):
    """A saved voice "narrator" on the second GPT; deleted afterwards."""
    fields = {
        "name": "narrator",
        "prompt_text": PROMPT,
        "prompt_lang": "zh",
        "text_lang": "zh",
        "gpt_weights": "GPT_weights/other-e5.ckpt",
        "seed": "11",
        "description": "tiny test voice",
    }
    files = {"ref_audio": ("mine.wav", (api_home / "ref.wav").read_bytes(), "audio/wav")}
    response = client.post("/presets", data=fields, files=files)
    assert response.status_code == 201, response.text
    yield response.json()
    client.delete("/presets/narrator")


def test_preset_crud(client, voice_preset, api_home):
    assert voice_preset["reference"] == "reference.wav" and voice_preset["seed"] == 11
    assert voice_preset["gpt_weights"] == "GPT_weights/other-e5.ckpt" and voice_preset["sovits_weights"] == ""
    assert (api_home / "presets" / "narrator" / "preset.json").is_file()
    assert [p["name"] for p in client.get("/presets").json()["presets"]] == ["narrator"]
    assert client.get("/presets/narrator").json()["prompt_text"] == PROMPT
    files = {"ref_audio": ("a.wav", (api_home / "ref.wav").read_bytes(), "audio/wav")}
    assert_error(client.post("/presets", data={"name": "narrator"}, files=files), 409)
    replaced = client.post(
        "/presets", data={"name": "narrator", "overwrite": "true", "prompt_text": "x"}, files=files
    )
    assert replaced.status_code == 201 and replaced.json()["prompt_text"] == "x"
    assert client.delete("/presets/narrator").status_code == 204
    assert_error(client.get("/presets/narrator"), 404)
    assert_error(client.delete("/presets/narrator"), 404)


@pytest.mark.parametrize(
    ("fields", "files", "status", "param"),
    [
        ({"name": "../evil"}, True, 400, None),
        ({"name": "ok", "prompt_lang": "klingon"}, True, 400, "prompt_lang"),
        ({"name": "ok", "speed_factor": "9"}, True, 400, "speed_factor"),
        ({"name": "ok", "surprise": "1"}, True, 400, "surprise"),
        ({"name": "ok", "gpt_weights": "/etc/passwd"}, True, 403, "gpt_weights"),
        ({"name": "ok", "sovits_weights": "nope.pth"}, True, 400, "sovits_weights"),
        ({"name": "ok"}, False, 400, "ref_audio"),
    ],
)
def test_bad_preset_uploads(client, api_home, fields, files, status, param):
    upload = {"ref_audio": ("a.wav", (api_home / "ref.wav").read_bytes(), "audio/wav")} if files else None
    if upload is None:
        response = client.post("/presets", data=fields, files={"aux_ref_audio": ("b.wav", b"x", "audio/wav")})
    else:
        response = client.post("/presets", data=fields, files=upload)
    assert_error(response, status, param)
    assert client.get("/presets").json()["presets"] == []


def test_non_audio_upload_and_json_body_are_refused(client):
    response = client.post(
        "/presets", data={"name": "x"}, files={"ref_audio": ("a.wav", b"hello" * 100, "audio/wav")}
    )
    assert "not a readable audio" in assert_error(response, 400)
    assert_error(client.post("/presets", json={"name": "x"}), 415)


def test_tts_with_a_preset_uses_its_clip_prompt_and_models(client, voice_preset):
    response = client.get("/tts", params={"text": "你好。", "preset": "narrator"})
    assert response.status_code == 200, response.text
    assert response.headers["x-seed"] == "11"  # the preset's default seed
    assert_speech(*read_wav(response.content))
    assert client.get("/ready").json()["loaded"][-1]["gpt_weights"] == "GPT_weights/other-e5.ckpt"
    own_seed = client.get("/tts", params={"text": "你好。", "preset": "narrator", "seed": 3})
    assert own_seed.headers["x-seed"] == "3"  # the request's own value wins


def test_openai_speech_wav_pcm_and_stream(client, voice_preset):
    assert "narrator" in client.get("/v1/audio/voices").json()["voices"]
    assert {m["id"] for m in client.get("/v1/models").json()["data"]} >= {"tts-1", "tts-1-hd"}
    body = {"model": "tts-1", "input": "你好，欢迎。", "voice": "narrator", "response_format": "wav"}
    wav = client.post("/v1/audio/speech", json=body)
    assert wav.status_code == 200, wav.text
    audio, rate = read_wav(wav.content)
    assert_speech(audio, rate)
    pcm = client.post("/v1/audio/speech", json={**body, "response_format": "pcm"})
    assert pcm.headers["x-sample-rate"] == "24000"
    samples = np.frombuffer(pcm.content, dtype="<i2")
    # Same voice, text and seed: the 24 kHz PCM is the WAV resampled.
    assert abs(len(samples) - len(audio) * 24000 / 32000) <= 2
    streamed = client.post("/v1/audio/speech", json={**body, "stream": True})
    assert streamed.content[4:8] == b"\xff\xff\xff\xff"
    assert_speech(*read_wav(streamed.content))
    mp3 = client.post("/v1/audio/speech", json={**body, "response_format": "mp3", "speed": 1.25})
    assert mp3.status_code == 200 and mp3.headers["content-type"] == "audio/mpeg"


@pytest.mark.parametrize(
    ("change", "status", "param"),
    [
        ({"model": "whisper-1"}, 400, "model"),
        ({"voice": "nobody"}, 404, "voice"),
        ({"voice": {"id": "nobody"}}, 404, "voice"),
        ({"model": "tts-1-hd-1332"}, 400, "model"),
        ({"model": "tts-2"}, 400, "model"),
        ({"speed": 4.5}, 400, "speed"),
        ({"speed": 0.1}, 400, "speed"),
        ({"response_format": "wma"}, 400, "response_format"),
        ({"input": ""}, 400, "input"),
        ({"input": "字" * 4097}, 400, "input"),
        ({"stream_format": "mp4"}, 400, "stream_format"),
        ({"language": "xx"}, 400, "language"),
    ],
)
def test_openai_bad_requests(client, voice_preset, change, status, param):
    body = {"model": "tts-1", "input": "你好", "voice": "narrator", **change}
    assert_error(client.post("/v1/audio/speech", json=body), status, param)
    assert_error(client.post("/v1/audio/speech", json={"model": "tts-1"}), 400)
