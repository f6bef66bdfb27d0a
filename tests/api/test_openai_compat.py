"""OpenAI's /v1/audio/speech as its SDKs and apps send it: built-in voice names through the voice
table, voice objects, dated model ids, /v1/models/{id}, instructions, every streamed format, SSE."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.api.openai_models import MODEL_IDS, model_base
from app.api.routes.openai import INSTRUCTIONS_NOTE
from app.services.openai_voices import OPENAI_VOICES, TABLE_FILE
from tests.api.conftest import PROMPT, assert_error, assert_speech, read_wav
from tests.api.test_notes import notes_of

TEXT = "你好，欢迎。"


def save_preset(client, api_home, name: str) -> None:
    fields = {"name": name, "prompt_text": PROMPT, "prompt_lang": "zh", "text_lang": "zh", "seed": "5"}
    files = {"ref_audio": ("r.wav", (api_home / "ref.wav").read_bytes(), "audio/wav")}
    response = client.post("/presets", data=fields, files=files)
    assert response.status_code == 201, response.text


@pytest.fixture
def presets(client, api_home):
    """``presets("a", "b")`` saves those voices; all of them and the voice table go afterwards."""
    made: list[str] = []

    def make(*names: str) -> None:
        for name in names:
            save_preset(client, api_home, name)
            made.append(name)

    yield make
    for name in made:
        client.delete(f"/presets/{name}")
    (api_home / "presets" / TABLE_FILE).unlink(missing_ok=True)


def speak(client, **fields):
    body = {"model": "tts-1", "input": TEXT, "voice": "alloy", "response_format": "wav", **fields}
    return client.post("/v1/audio/speech", json=body)


def decode(data: bytes) -> tuple[np.ndarray, int]:
    with av.open(io.BytesIO(data), "r") as container:
        stream = container.streams.audio[0]
        frames = [f.to_ndarray().reshape(-1) for f in container.decode(stream)]
        return np.concatenate(frames), stream.codec_context.sample_rate


# ---------------------------------------------------------------- voices
def test_a_fresh_server_says_how_to_make_built_in_voices_answer(client, api_home):
    assert not (api_home / "presets").is_dir() or not any((api_home / "presets").iterdir())
    message = assert_error(speak(client), 404, "voice")
    assert "POST /presets" in message and "PUT /v1/audio/voice_map" in message
    assert "STUDIO_OPENAI_VOICE" in message
    effective = client.get("/v1/audio/voice_map").json()["effective"]
    assert set(effective) == set(OPENAI_VOICES) and set(effective.values()) == {None}


def test_the_only_preset_answers_every_built_in_name(client, presets):
    presets("anna")
    for voice in ("alloy", "marin", {"id": "cedar"}):
        response = speak(client, voice=voice)
        assert response.status_code == 200, response.text
        assert_speech(*read_wav(response.content))
        assert any("'anna'" in n and "only preset" in n for n in notes_of(response))
    assert_error(speak(client, voice="not-openai"), 404, "voice")  # only OpenAI's names fall back
    voices = client.get("/v1/audio/voices").json()
    assert (
        "alloy" in voices["voices"] and {"id": "alloy", "name": "alloy", "preset": "anna"} in voices["data"]
    )


def test_the_table_maps_names_and_a_preset_of_the_same_name_wins(client, presets, api_home):
    presets("anna", "bob")
    assert_error(speak(client), 404, "voice")  # two presets, no default: which one is unclear
    put = client.put(
        "/v1/audio/voice_map", json={"voices": {"nova": "bob", "narrator": "anna"}, "default": "anna"}
    )
    assert put.status_code == 200, put.text
    assert put.json()["effective"]["nova"] == "bob" and put.json()["effective"]["alloy"] == "anna"
    saved = json.loads((api_home / "presets" / TABLE_FILE).read_text())
    assert saved == {"voices": {"narrator": "anna", "nova": "bob"}, "default": "anna"}
    assert "'bob'" in notes_of(speak(client, voice="nova"))[0]
    assert "'anna'" in notes_of(speak(client, voice="narrator"))[0]  # any alias may be listed
    presets("nova")
    assert notes_of(speak(client, voice="nova")) == []  # the preset called nova speaks itself
    assert client.get("/v1/audio/voice_map").json()["effective"]["nova"] == "nova"


def test_the_setting_gives_the_default(make_client, presets, api_home):
    client = make_client(openai_voice="bob")
    presets("anna", "bob")
    assert "'bob'" in notes_of(speak(client, voice="echo"))[0]
    assert client.get("/v1/audio/voice_map").json()["setting"] == "bob"
    assert speak(client, voice="echo").status_code == 200


@pytest.mark.parametrize(
    ("table", "param"),
    [
        ({"voices": {"alloy": "ghost"}}, "voices"),
        ({"default": "ghost"}, "default"),
        ({"voices": {"../x": "anna"}}, "voices"),
        ({"voices": {"alloy": 3}}, "voices.alloy"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_a_table_naming_unsaved_presets_is_refused(client, presets, api_home, table, param):
    presets("anna")
    assert_error(client.put("/v1/audio/voice_map", json=table), 400, param)
    assert not (api_home / "presets" / TABLE_FILE).exists()


def test_a_table_pointing_at_a_deleted_preset_says_so(client, presets, api_home):
    presets("anna", "bob")
    assert client.put("/v1/audio/voice_map", json={"voices": {"shimmer": "bob"}}).status_code == 200
    client.delete("/presets/bob")
    message = assert_error(speak(client, voice="shimmer"), 404, "voice")
    assert "'bob'" in message and "voice_map" in message


# ---------------------------------------------------------------- models and fields
@settings(max_examples=200, deadline=None)
@given(
    base=st.sampled_from(MODEL_IDS),
    day=st.dates(min_value=dt.date(2020, 1, 1)),
    form=st.sampled_from(["%Y-%m-%d", "%m%d", ""]),
)
def test_known_ids_with_a_snapshot_date_are_accepted(base, day, form):
    model = f"{base}-{day.strftime(form)}" if form else base
    assert model_base(model) == base


def _accepted(model: str) -> bool:
    """An oracle written apart from the regex: a base, or a base + "-" + a real date."""
    for base in MODEL_IDS:
        if model == base:
            return True
        rest = model.removeprefix(base + "-") if model.startswith(base + "-") else None
        if rest is None or not rest.isascii():
            continue
        for form, text in (("%Y-%m-%d", rest), ("%Y%m%d", "2024" + rest)):
            if len(text) == (10 if form == "%Y-%m-%d" else 8) and text.replace("-", "").isdigit():
                try:
                    dt.datetime.strptime(text, form)
                except ValueError:
                    continue
                if form == "%Y%m%d" or (text[4], text[7]) == ("-", "-"):
                    return True
    return False


@settings(max_examples=400, deadline=None)
@given(
    base=st.sampled_from(MODEL_IDS),
    suffix=st.one_of(
        st.text(max_size=12),
        st.from_regex(r"-[0-9-]{1,11}", fullmatch=True),
        st.from_regex(r"-(hd)?-?[0-9]{2,4}(-[0-9]{2}){0,2}", fullmatch=True),
    ),
)
def test_only_known_bases_with_a_real_date_are_accepted(base, suffix):
    model = base + suffix
    assert (model_base(model) is not None) == _accepted(model), model


@pytest.mark.parametrize(
    ("model", "ok"),
    [
        ("gpt-4o-mini-tts-2025-03-20", True),
        ("gpt-4o-mini-tts-2025-12-15", True),
        ("tts-1-hd-1106", True),
        ("tts-1-1106", True),
        ("tts-1-2024-02-29", True),
        ("tts-1-2023-02-29", False),
        ("tts-1-1332", False),
        ("tts-1-hd-", False),
        ("TTS-1", False),
        ("whisper-1", False),
    ],
)
def test_dated_model_ids(client, presets, model, ok):
    presets("anna")
    response = speak(client, model=model)
    retrieved = client.get(f"/v1/models/{model}")
    if ok:
        assert response.status_code == 200, response.text
        assert retrieved.json() == {"id": model, "object": "model", "created": 0, "owned_by": "sovits-studio"}
    else:
        assert "model" in assert_error(response, 400, "model")
        body = retrieved.json()
        assert retrieved.status_code == 404 and body["error"]["code"] == "model_not_found"
        assert body["error"]["param"] == "model" and model in body["error"]["message"]


def test_instructions_are_accepted_and_the_note_says_they_were_not_applied(client, presets):
    presets("anna")
    plain = speak(client, model="gpt-4o-mini-tts")
    told = speak(client, model="gpt-4o-mini-tts", instructions="Speak like a pirate.")
    assert told.status_code == 200 and INSTRUCTIONS_NOTE in notes_of(told)
    assert INSTRUCTIONS_NOTE not in notes_of(plain)
    streamed = speak(client, instructions="Whisper.", stream=True)
    assert INSTRUCTIONS_NOTE in notes_of(streamed)


# ---------------------------------------------------------------- streaming and SSE
@pytest.mark.parametrize(("fmt", "rate"), [("mp3", 32000), ("opus", 48000), ("aac", 32000), ("flac", 32000)])
def test_every_format_streams_and_decodes_to_the_whole_files_length(client, presets, fmt, rate):
    presets("anna")
    whole = speak(client, response_format=fmt)
    streamed = speak(client, response_format=fmt, stream_format="audio")
    assert streamed.status_code == 200, streamed.text
    assert streamed.headers["content-type"] == whole.headers["content-type"]
    assert streamed.headers["x-sample-rate"] == str(rate) and "x-audio-seconds" not in streamed.headers
    seconds = float(whole.headers["x-audio-seconds"])
    audio, got_rate = decode(streamed.content)
    assert got_rate == rate
    assert abs(len(audio) / rate - seconds) < 0.1, (len(audio) / rate, seconds)
    assert np.abs(audio).max() > 0


@pytest.mark.parametrize("fmt", ["mp3", "pcm"])
def test_sse_events_carry_the_encoded_audio_then_usage(client, presets, fmt):
    presets("anna")
    response = speak(client, response_format=fmt, stream_format="sse")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    blocks = [b for b in response.text.split("\n\n") if b.strip()]
    assert all(b.startswith("data: ") and "\n" not in b for b in blocks)
    events = [json.loads(b.removeprefix("data: ")) for b in blocks]
    *deltas, done = events
    assert deltas and {e["type"] for e in deltas} == {"speech.audio.delta"}
    assert all(set(e) == {"type", "audio"} for e in deltas)
    assert done["type"] == "speech.audio.done"
    usage = done["usage"]
    assert usage["input_tokens"] == len(TEXT) and usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    data = b"".join(base64.b64decode(e["audio"]) for e in deltas)
    whole = speak(client, response_format=fmt)
    if fmt == "pcm":
        assert abs(len(data) - len(whole.content)) <= 8  # same seed, same audio
    else:
        audio, rate = decode(data)
        assert abs(len(audio) / rate - float(whole.headers["x-audio-seconds"])) < 0.1
