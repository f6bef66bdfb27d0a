"""TTS tab in headless Chromium with tiny random models: upload, type, synthesize, play, history, errors."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import soundfile as sf
from playwright.sync_api import expect

from tests.infer.tiny import GPT_NAME, SOVITS_NAME, build_home, voice

pytestmark = pytest.mark.browser

SR = 32000


@pytest.fixture(scope="module")
def tts_server(tmp_path_factory):
    """webui.py on a data root holding tiny encoders and one tiny GPT + SoVITS pair."""
    from tests.browser import run_studio

    home = build_home(tmp_path_factory.mktemp("tts_home"))
    # One torch thread: two would spin-wait against the other engineers' load on this machine.
    with run_studio(home, env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}) as server:
        yield server


@pytest.fixture
def tts_page(studio_browser, tts_server):
    from tests.browser import open_studio

    page = open_studio(studio_browser, tts_server)
    page.get_by_role("tab", name="Text to speech").click()
    expect(page.locator("#tts-run")).to_be_visible()
    yield page
    page.close()


def _upload(page, path) -> None:
    page.locator("#tts-reference input[type=file]").set_input_files(str(path))
    expect(
        page.locator("#tts-reference audio, #tts-reference [data-testid='waveform-x']").first
    ).to_be_attached(timeout=30_000)


def _fill(page, selector: str, value: str) -> None:
    page.locator(f"{selector} textarea, {selector} input").first.fill(value)


def test_upload_type_synthesize_and_play(tts_page, tts_server, tmp_path):
    page = tts_page
    expect(page.locator("#tts-gpt input")).to_have_value(f"GPT_weights/{GPT_NAME}")
    expect(page.locator("#tts-sovits input")).to_have_value(f"SoVITS_weights/{SOVITS_NAME}")
    # Base models are not there: the tab says which files and how to get them.
    expect(page.locator("#tts-missing")).to_contain_text("python tools/download_models.py gpt-sovits-v2")
    _upload(page, voice(tmp_path / "ref.wav", 5.0, pauses=(2.0,)))
    _fill(page, "#tts-prompt", "你好欢迎来到我们的节目")
    _fill(page, "#tts-text", "Hello from the browser. This is the second sentence!")
    page.get_by_text("Parameters").click()  # the accordion: split at every punctuation mark
    page.get_by_label("How to split the text").click()
    page.get_by_role("option", name="At every punctuation mark").click()
    page.locator("#tts-run").click()
    expect(page.locator("#tts-info")).to_contain_text("seed", timeout=120_000)

    out = tts_server.home / "output" / "tts"
    (meta,) = out.glob("*.json")
    record = json.loads(meta.read_text("utf-8"))
    audio, sr = sf.read(out / record["wav"], dtype="int16")
    expected = sum(n * 1280 for n in record["tokens_per_segment"]) + len(record["segments"]) * round(0.3 * SR)
    assert sr == SR and len(audio) == expected and len(record["segments"]) == 2
    assert record["request"]["text"] == "Hello from the browser. This is the second sentence!"
    expect(page.locator("#tts-info")).to_contain_text(f"seed {record['request']['seed']}")

    # The result player is playable and as long as the file.
    player = page.locator("#tts-output").get_by_test_id("waveform-Result").locator("audio")
    expect(player).to_have_attribute("src", re.compile("^blob:"), timeout=30_000)
    duration = page.wait_for_function(
        "el => el.readyState >= 1 && el.duration", arg=player.element_handle(), timeout=30_000
    ).json_value()
    assert abs(duration - len(audio) / SR) < 0.05
    # ... and it is listed in the history.
    expect(page.locator("#tts-history")).to_contain_text(f"seed {record['request']['seed']}", timeout=30_000)


@pytest.mark.parametrize(
    ("reference", "text", "message"),
    [
        ("short", "Hello there.", r"short\.wav is 1\.0 s long; a reference must hold 3-10 s"),
        ("good", "   ", "the text is empty"),
        ("good", "Привет, как дела?", "cannot be read as auto"),
        ("corrupt", "Hello there.", r"corrupt\.wav: (not a readable audio file|the file is damaged)"),
    ],
    ids=["1s-reference", "empty-text", "unreadable-language", "corrupt-upload"],
)
def test_bad_input_gets_a_clear_message(tts_page, tmp_path, reference, text, message):
    page = tts_page
    if reference == "corrupt":
        path = tmp_path / "corrupt.wav"
        path.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 8)
        page.locator("#tts-reference input[type=file]").set_input_files(str(path))
    else:
        _upload(page, voice(tmp_path / f"{reference}.wav", 1.0 if reference == "short" else 4.0))
    _fill(page, "#tts-text", text)
    page.locator("#tts-run").click()
    expect(page.get_by_text(re.compile(message)).first).to_be_visible(timeout=60_000)


def _newest_record(home) -> dict:
    out = home / "output" / "tts"
    return json.loads(max(out.glob("*.json"), key=lambda p: p.stat().st_mtime).read_text("utf-8"))


def test_long_unpunctuated_full_width_text_and_a_clipped_reference_are_read(tts_page, tts_server, tmp_path):
    # Issue 18 through the page: a long passage with no punctuation is cut by length and read, full-width
    # letters and digits are read as ASCII, control characters are not spoken, and a clipped reference
    # is used with a note shown beside the result.
    page = tts_page
    wav, sr = sf.read(voice(tmp_path / "loud.wav", 4.0), dtype="float32")
    sf.write(tmp_path / "clipped.wav", np.clip(wav * 8.0, -1.0, 1.0), sr, subtype="PCM_16")
    _upload(page, tmp_path / "clipped.wav")
    words = " ".join(["the quick brown fox jumps over the lazy dog"] * 12)
    _fill(page, "#tts-text", f"Ｈｅｌｌｏ ｆｒｏｍ ｒｏｏｍ １２\x07 {words}")
    page.locator("#tts-run").click()
    info = page.locator("#tts-info")
    expect(info).to_contain_text("seed", timeout=180_000)
    expect(info).to_contain_text("is clipped")
    record = _newest_record(tts_server.home)
    segments = record["segments"]
    assert len(segments) > 1, segments  # cut by length: no punctuation to cut at
    spoken = " ".join(segments)
    assert spoken.startswith("Hello from room 12") and "\x07" not in spoken
    assert spoken.count("fox") == 12
    assert any("is clipped" in note for note in record["notes"])


def test_a_pure_tone_is_refused_with_what_was_noted_before(tts_page, tmp_path):
    page = tts_page
    t = np.arange(4 * SR) / SR
    sf.write(tmp_path / "tone.wav", (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), SR)
    _upload(page, tmp_path / "tone.wav")
    _fill(page, "#tts-text", "Hello there. Привет.")
    page.locator("#tts-run").click()
    expect(
        page.get_by_text(re.compile(r"tone\.wav holds no speech: it is a steady pure tone")).first
    ).to_be_visible(timeout=60_000)
    expect(
        page.get_by_text(re.compile("Note: Letters the models cannot read were skipped: Привет")).first
    ).to_be_visible()
