"""Long-form tab in headless Chromium with tiny models: start a job with two takes per line, pick a take."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import soundfile as sf
from playwright.sync_api import expect

from app.services.presets import ClipUpload, PresetStore, VoicePreset
from tests.infer.tiny import build_home, voice

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def longform_server(tmp_path_factory):
    """webui.py on a data root with tiny models and one saved voice, "narrator"."""
    from tests.browser import run_studio

    home = build_home(tmp_path_factory.mktemp("longform_home"))
    clip = voice(home / "narrator.wav", 4.0, pauses=(2.0,))
    preset = VoicePreset("narrator", "", "你好欢迎来到我们的节目", "all_zh", "en", pause_seconds=0.2)
    PresetStore(home / "presets").create(preset, ClipUpload(clip.read_bytes(), "narrator.wav"))
    with run_studio(home, env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}) as server:
        yield server


def _pick(page, dropdown: str, option: re.Pattern) -> None:
    page.locator(f"{dropdown} input").click()
    page.get_by_role("option", name=option).click()


def test_start_a_job_listen_to_the_takes_and_pick_one(studio_browser, longform_server, tmp_path):
    from tests.browser import open_studio

    page = open_studio(studio_browser, longform_server)
    page.get_by_role("tab", name="Long-form").click()
    expect(page.locator("#longform-voice input")).to_have_value("narrator", timeout=30_000)
    source = tmp_path / "chapter.txt"
    source.write_text("The first line is here.\n\nAnd the second line.", encoding="utf-8")
    page.locator("#longform-source input[type=file]").set_input_files(str(source))
    takes = page.locator("#longform-takes input[type=number]")
    takes.fill("2")
    takes.press("Enter")
    page.locator("#longform-words input[type=checkbox]").check()
    page.locator("#longform-start").click()
    status = page.locator("#longform-status")
    expect(status).to_contain_text("chapter", timeout=30_000)
    try:
        expect(status).to_contain_text("done · 2/2 lines", timeout=180_000)
    except AssertionError as exc:
        jobs = list((longform_server.home / "output" / "longform").glob("*/job.json"))
        state = jobs[0].read_text(encoding="utf-8")[-1500:] if jobs else "no job"
        raise AssertionError(f"{exc}\n{state}\n{longform_server.log()[-4000:]}") from None
    expect(page.locator("#longform-lines")).to_contain_text("And the second line.")

    # Line 1, take 2: listen, then use it.
    _pick(page, "#longform-line", re.compile(r"^1: And the second line"))
    expect(page.locator("#longform-text textarea")).to_have_value("And the second line.")
    player = page.locator("#longform-take-audio").get_by_test_id("waveform-Take (listen)").locator("audio")
    expect(player).to_have_attribute("src", re.compile("^blob:"), timeout=30_000)  # the chosen take, #1
    first = player.get_attribute("src")
    _pick(page, "#longform-take", re.compile(r"^#2 · "))
    expect(player).not_to_have_attribute("src", first, timeout=30_000)  # take #2 loaded to listen
    expect(player).to_have_attribute("src", re.compile("^blob:"))
    page.locator("#longform-choose").click()
    expect(page.locator("#longform-take input")).to_have_value(re.compile(r"^#2 · .* ✓$"), timeout=60_000)

    (job,) = (longform_server.home / "output" / "longform").iterdir()
    state = json.loads((job / "job.json").read_text(encoding="utf-8"))
    assert [line["chosen"] for line in state["lines"]] == [0, 1]
    chosen, _ = sf.read(job / "out" / "lines" / "0001.wav", dtype="int16")
    take, _ = sf.read(job / state["lines"][1]["takes"][1]["file"], dtype="int16")
    assert np.array_equal(chosen, take)
    srt = (job / "out" / "chapter.srt").read_text(encoding="utf-8")
    assert "And the second line." in srt
    # Word timestamps were asked for: the job keeps the option and writes word-level subtitles.
    assert state["options"]["word_timestamps"] is True
    words = (job / "out" / "chapter.words.srt").read_text(encoding="utf-8")
    assert [ln for ln in words.splitlines() if ln.isalpha()][-4:] == ["And", "the", "second", "line"]
    page.close()
