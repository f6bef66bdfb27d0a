"""Dataset tab handler without a browser: the bound slice handler, its API name and its refusals."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import soundfile as sf

from app.paths import Layout
from app.settings import Settings
from app.ui import i18n
from app.ui.context import UIContext
from app.ui.tabs import dataset
from tests.synth import silence, tone

SR = 32000


@pytest.fixture
def built(tmp_path: Path):
    settings = Settings(home=tmp_path)
    layout = Layout(settings.home, settings.pretrained_dir).ensure()
    with gr.Blocks() as demo:
        dataset.build(UIContext(settings, layout, i18n.build_i18n([i18n.COMMON, dataset.STRINGS], "en")))
    (event,) = [f for f in demo.fns.values() if f.api_name == "slice"]
    return layout, event


def test_slicing_through_the_tabs_handler(built, tmp_path: Path) -> None:
    layout, event = built
    recording = tmp_path / "rec.wav"
    sf.write(recording, np.concatenate([tone(5.0, SR), silence(1.0, SR), tone(5.0, SR, 330.0)]), SR)
    defaults = [c.value for c in event.inputs[3:]]  # the slicer settings as shown
    text, clips = event.fn([str(recording)], "", "out", *defaults[:1], 3000, *defaults[2:])
    assert "**2** clips from 1 file(s)" in text and len(clips) == 2
    assert all(Path(c).parent == layout.output / "out" for c in clips)
    with pytest.raises(gr.Error, match="outside"):
        event.fn([], "/etc", "out", *defaults)
    with pytest.raises(gr.Error, match="Nothing to slice"):
        event.fn([], "", "out", *defaults)
