"""The web UI's API as a script sees it: ``webui.py`` on loopback, driven by ``gradio_client``.

Only the named actions are listed and callable; labels are plain text; models are named relative
to the data folder, so ``Client.predict(..., api_name="/tts")`` works on any machine with the files.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile as sf
from gradio_client import Client, handle_file

from app.ui.app import PUBLIC_API
from tests.browser import StudioServer, run_studio
from tests.infer.tiny import GPT_NAME, SOVITS_NAME, build_home, voice

PROMPT = "你好欢迎"
TEXT = "你好，欢迎。"


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudioServer]:
    home = build_home(tmp_path_factory.mktemp("gradio_api"))
    voice(home / "ref.wav", 4.0, pauses=(2.0,))
    with run_studio(home, env={"OMP_NUM_THREADS": "1"}) as server:
        yield server


@pytest.fixture(scope="module")
def client(studio: StudioServer) -> Client:
    return Client(studio.url, verbose=False)


def test_view_api_lists_only_the_named_actions_with_plain_labels(client):
    info = client.view_api(return_format="dict", print_info=False)
    assert set(info["named_endpoints"]) == {f"/{name}" for name in PUBLIC_API}
    assert info["unnamed_endpoints"] == {}
    for endpoint in info["named_endpoints"].values():
        assert endpoint["description"] and "partial(" not in endpoint["description"]
        for item in (*endpoint["parameters"], *endpoint["returns"]):
            assert isinstance(item["label"], str), item
    params = {p["parameter_name"]: p for p in info["named_endpoints"]["/tts"]["parameters"]}
    assert params["gpt_weights"]["parameter_default"] == f"GPT_weights/{GPT_NAME}"
    assert params["sovits_weights"]["parameter_default"] == f"SoVITS_weights/{SOVITS_NAME}"
    assert params["text"]["label"] == "Text to read"
    assert {name for name, p in params.items() if not p["parameter_has_default"]} == {"ref_audio", "text"}


def test_tts_with_relative_model_names_gives_audio(client, studio):
    audio, summary = client.predict(
        gpt_weights=f"GPT_weights/{GPT_NAME}",
        sovits_weights=f"SoVITS_weights/{SOVITS_NAME}",
        ref_audio=handle_file(str(studio.home / "ref.wav")),
        prompt_text=PROMPT,
        prompt_lang="zh",
        text=TEXT,
        text_lang="zh",
        seed=7,
        api_name="/tts",
    )
    samples, rate = sf.read(audio, dtype="int16")
    assert rate == 32000 and 0.1 < len(samples) / rate < 4 and abs(samples).max() > 0
    assert "seed **7**" in summary
    assert Path(audio).name in summary


def test_a_model_that_is_not_listed_is_refused(client, studio):
    with pytest.raises(Exception, match="not in the list of choices"):
        client.predict(
            gpt_weights="../elsewhere.ckpt",
            ref_audio=handle_file(str(studio.home / "ref.wav")),
            text=TEXT,
            api_name="/tts",
        )


@pytest.mark.parametrize("name", ["/refresh_models", "/steps_for_model", "/tts_synthesize", "/lambda"])
def test_internal_events_are_not_callable(client, name):
    with pytest.raises(ValueError):
        client.predict(api_name=name)
