"""An SVC conversion from the web UI waits in the device's one line (the synthesis service the TTS
tab and the HTTP API share): it runs on the device's thread, reports progress to the page from
there, and a full line refuses it at once."""

from __future__ import annotations

import threading
from pathlib import Path

import gradio as gr
import pytest

from app.infer.svc.request import SvcInputError
from app.paths import Layout
from app.services import svc as svc_service
from app.services.synthesis import THREAD_NAME, SynthesisService
from app.settings import Settings
from app.ui.context import UIContext
from app.ui.i18n import COMMON, build_i18n
from app.ui.tabs.svc import convert


class _Pipeline:
    """Stands in for the SVCPipeline: records where it ran, reports progress, refuses the input."""

    def __init__(self) -> None:
        self.thread = ""

    def convert(self, request, progress):
        self.thread = threading.current_thread().name
        progress(0.5, "converting")
        raise SvcInputError(f"{request.audio.name}: refused by the stand-in")


def _convert(ctx: UIContext, source: Path, progress) -> tuple[str, str]:
    return convert.convert(
        ctx, "voice", None, str(source), 0.0, "rmvpe", False, 0.4, 0.0, -40.0, 0.5, 30.0, 0.0, 0.0, False,
        False, False, progress=progress,
    )  # fmt: skip


@pytest.fixture
def ctx(tmp_path, monkeypatch) -> UIContext:
    settings = Settings(home=tmp_path, queue_limit=0)
    layout = Layout(settings.home, settings.pretrained_dir).ensure()
    choice = svc_service.SvcModelChoice("voice", tmp_path / "G_1.pth", tmp_path / "config.json")
    monkeypatch.setattr(convert, "_choices", lambda _layout: {"voice": choice})
    return UIContext(settings, layout, build_i18n([COMMON], "en"), synthesis=SynthesisService.create(0))


def test_conversion_runs_on_the_device_thread_and_reports_progress(ctx, tmp_path, monkeypatch):
    pipeline = _Pipeline()
    monkeypatch.setattr(svc_service, "pipeline", lambda *_: pipeline)
    seen = []
    with pytest.raises(gr.Error, match=r"song\.wav: refused by the stand-in"):
        _convert(ctx, tmp_path / "song.wav", lambda fraction, desc: seen.append((fraction, desc)))
    assert pipeline.thread.startswith(THREAD_NAME)  # the device queue's one worker
    assert seen == [(0.5, "converting")]


def test_a_busy_device_refuses_the_conversion_at_once(ctx, tmp_path, monkeypatch):
    monkeypatch.setattr(svc_service, "pipeline", lambda *_: pytest.fail("a refused job must not load models"))
    gate, started = threading.Event(), threading.Event()
    ctx.synthesis.run(lambda: (started.set(), gate.wait(60)))
    assert started.wait(30)
    try:
        with pytest.raises(gr.Error, match="busy"):
            _convert(ctx, tmp_path / "song.wav", lambda *_, **__: None)
    finally:
        gate.set()
    assert ctx.synthesis.metrics().refused == 1


@pytest.mark.parametrize("precision", ["fp32", "fast"])
def test_the_pages_precision_reaches_the_request(ctx, tmp_path, monkeypatch, precision):
    seen = []

    class _Recorder(_Pipeline):
        def convert(self, request, progress):
            seen.append(request.precision)
            return super().convert(request, progress)

    monkeypatch.setattr(svc_service, "pipeline", lambda *_: _Recorder())
    with pytest.raises(gr.Error, match="refused by the stand-in"):
        convert.convert(
            ctx, "voice", None, str(tmp_path / "song.wav"), 0.0, "rmvpe", False, 0.4, 0.0, -40.0, 0.5, 30.0,
            0.0, 0.0, False, False, False, precision, progress=lambda *_, **__: None,
        )  # fmt: skip
    assert seen == [precision]
