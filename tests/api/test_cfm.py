"""v3/v4 models through the HTTP API: sample_steps honoured, 48/24 kHz audio, what they cannot do
refused with a 400 naming the field (api_v2 clients unchanged)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from app.api.app import create_app
from app.settings import Settings
from tests.api.conftest import assert_error, tts_query
from tests.infer.tiny import CFM_SOVITS_NAMES, build_cfm_home, voice

V4 = f"SoVITS_weights/{CFM_SOVITS_NAMES['v4']}"


@pytest.fixture(scope="module")
def cfm_home(tmp_path_factory):
    home = build_cfm_home(tmp_path_factory.mktemp("api_cfm"), versions=("v4",))
    voice(home / "ref.wav", 4.0, pauses=(2.0,))
    return home


@pytest.fixture
def client(cfm_home):
    with TestClient(create_app(Settings(home=cfm_home)), raise_server_exceptions=False) as c:
        yield c


def test_v4_synthesis_honours_sample_steps(client):
    ok = client.get("/set_sovits_weights", params={"weights_path": V4})
    assert ok.status_code == 200, ok.text
    assert ok.json()["version"] == "v4"
    bodies = {}
    for steps in (4, 8, 8):
        response = client.post("/tts", json=tts_query(sample_steps=steps))
        assert response.status_code == 200, response.text
        audio, sr = sf.read(io.BytesIO(response.content), dtype="int16")
        assert sr == 48000 and np.abs(audio).max() > 0
        if steps in bodies:
            assert bodies[steps] == response.content  # same seed, same steps: same audio
        bodies[steps] = response.content
    assert bodies[4] != bodies[8]
    streamed = client.get("/tts", params=tts_query(sample_steps=8, streaming_mode=2))
    assert streamed.status_code == 200 and streamed.content[4:8] == b"\xff\xff\xff\xff"


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"prompt_text": ""}, "prompt_text"),
        ({"aux_ref_audio_paths": ["ref.wav"]}, "aux_ref_audio_paths"),
        ({"super_sampling": True}, "super_sampling"),
        ({"sample_steps": 200}, "sample_steps"),
    ],
)
def test_what_v4_cannot_do_is_a_400_naming_the_field(client, query, param):
    assert client.get("/set_sovits_weights", params={"weights_path": V4}).status_code == 200
    message = assert_error(client.post("/tts", json=tts_query(**query)), 400, param)
    assert message
