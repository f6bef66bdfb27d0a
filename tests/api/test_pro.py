"""v2ProPlus models through the HTTP API: chosen with /set_sovits_weights, synthesised by /tts and
the OpenAI route; without the speaker model the error names the file and the download command."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from app.api.app import create_app
from app.models.encoders.sv import SV_FILE
from app.settings import Settings
from tests.api.conftest import assert_error, tts_query
from tests.infer.tiny import PRO_SOVITS_NAME, build_pro_home, voice


@pytest.fixture(scope="module")
def pro_home(tmp_path_factory):
    home = build_pro_home(tmp_path_factory.mktemp("api_pro"))
    voice(home / "ref.wav", 4.0, pauses=(2.0,))
    return home


@pytest.fixture
def client(pro_home):
    with TestClient(create_app(Settings(home=pro_home)), raise_server_exceptions=False) as c:
        yield c


def test_set_and_synthesize_a_v2proplus_model(client):
    ok = client.get("/set_sovits_weights", params={"weights_path": f"SoVITS_weights/{PRO_SOVITS_NAME}"})
    assert ok.status_code == 200, ok.text
    assert ok.json()["version"] == "v2ProPlus"
    response = client.get("/tts", params=tts_query())
    assert response.status_code == 200, response.text
    audio, sr = sf.read(io.BytesIO(response.content), dtype="int16")
    assert sr == 32000 and np.abs(audio).max() > 0


def test_missing_speaker_model_is_a_clear_error(tmp_path):
    home = build_pro_home(tmp_path / "home")
    voice(home / "ref.wav", 4.0, pauses=(2.0,))
    (home / "pretrained_models" / SV_FILE).unlink()
    with TestClient(create_app(Settings(home=home)), raise_server_exceptions=False) as client:
        ok = client.get("/set_sovits_weights", params={"weights_path": PRO_SOVITS_NAME})
        assert ok.status_code == 200, ok.text  # the file itself is fine
        message = assert_error(client.get("/tts", params=tts_query()), 400)
    assert SV_FILE.name in message and "download_models.py sv-eres2netv2" in message
