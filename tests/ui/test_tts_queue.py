"""The TTS tab's synthesis goes through the same synthesis service as the HTTP API: a busy device
makes the page's request wait in the API's line, the API's probe counts it, and a full line refuses
it as it refuses a client."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import soundfile as sf
import torch
from fastapi.testclient import TestClient

from app.api.app import create_app
from app.paths import Layout
from app.services.synthesis import SynthesisService
from app.settings import Settings
from app.ui.context import UIContext
from app.ui.i18n import COMMON, build_i18n
from app.ui.tabs import tts
from tests.infer.tiny import GPT_NAME, SOVITS_NAME, build_home, voice

PROMPT = "你好欢迎"
TEXT = "你好，欢迎。"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is fastest on a loaded machine
    root = build_home(tmp_path_factory.mktemp("tts_queue"))
    voice(root / "ref.wav", 4.0, pauses=(2.0,))
    yield root
    torch.set_num_threads(before)


def _page_request(
    ctx: UIContext, home: Path, reference: str = "ref.wav", text: str = TEXT, text_lang: str = "zh"
) -> Iterator[tuple]:
    """The tab's handler with the values a user would send from the page."""
    return tts.synthesize(
        ctx,
        str(home / "GPT_weights" / GPT_NAME),
        str(home / "SoVITS_weights" / SOVITS_NAME),
        "fp32",
        str(home / reference),
        False,
        PROMPT,
        "zh",
        text,
        text_lang,
        "cut5",
        15,
        1.0,
        1.0,
        1.35,
        1.0,
        0.3,
        7,
        1,
        None,
        progress=lambda *_, **__: None,
    )


def _occupy(service: SynthesisService) -> threading.Event:
    """Put a job on the device until the returned event is set (as a client's request would)."""
    gate, started = threading.Event(), threading.Event()
    service.run(lambda: (started.set(), gate.wait(120)))
    assert started.wait(30)
    return gate


def _serve(home: Path, queue_limit: int) -> tuple[SynthesisService, UIContext, TestClient]:
    """The composition of ``python -m app.api``: one service handed to the API and to the page."""
    settings = Settings(home=home, queue_limit=queue_limit)
    service = SynthesisService.create(settings.queue_limit)
    layout = Layout(settings.home, settings.pretrained_dir).ensure()
    ctx = UIContext(settings, layout, build_i18n([COMMON, tts.STRINGS], "en"), synthesis=service)
    return service, ctx, TestClient(create_app(settings, synthesis=service))


def test_a_page_request_waits_behind_the_device_and_shows_in_the_api_metrics(home):
    service, ctx, client = _serve(home, queue_limit=1)
    with client:
        gate = _occupy(service)
        updates = _page_request(ctx, home)
        _, message, _ = next(updates)
        assert "Waiting for the device (1 request(s) ahead)" in message
        queue = client.get("/ready").json()["queue"]
        assert (queue["pending"], queue["busy"]) == (2, True)
        # The line the page waits in is the API's: one more client request is refused.
        refused = client.get(
            "/tts",
            params={"text": TEXT, "text_lang": "zh", "ref_audio_path": "ref.wav", "prompt_lang": "zh"},
        )
        assert refused.status_code == 503, refused.text
        gate.set()
        *_, (wav, info, rows) = updates
        assert Path(wav).is_file() and "seed **7**" in info and rows[0][0] == wav
        queue = client.get("/ready").json()["queue"]
        assert (queue["pending"], queue["busy"], queue["completed"], queue["refused"]) == (0, False, 2, 1)


def test_a_full_line_refuses_the_page_at_once(home):
    service, ctx, client = _serve(home, queue_limit=0)
    with client:
        gate = _occupy(service)
        with pytest.raises(gr.Error, match="busy"):
            next(_page_request(ctx, home))
        gate.set()
        assert client.get("/ready").json()["queue"]["refused"] == 1


def test_a_refusal_shows_what_the_pipeline_noted_before_it(home):
    """The text's notes (a skipped script) come with the reference's refusal (a pure tone), a line
    each; gradio shows the message as HTML, so a file name's own markup is escaped."""
    t = np.arange(4 * 32000) / 32000
    tone = home / "a <b>tone<b> & co.wav"
    sf.write(tone, (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 32000)
    _, ctx, client = _serve(home, queue_limit=1)
    with client, pytest.raises(gr.Error) as refused:
        list(_page_request(ctx, home, tone.name, "Hello there. Привет.", "en"))
    message, name = refused.value.message, f"{home}/a &lt;b&gt;tone&lt;b&gt; &amp; co.wav"
    assert message == (
        f"{name} holds no speech: it is a steady pure tone. Record or upload a clip of clear speech"
        "<br>Note: Letters the models cannot read were skipped: Привет"
    )
