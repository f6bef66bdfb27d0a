"""Dataset tab in headless Chromium: upload a recording, slice it, see playable clips."""

from __future__ import annotations

import re

import numpy as np
import pytest
import soundfile as sf
from playwright.sync_api import expect

from tests.synth import SENTENCES

pytestmark = pytest.mark.browser


def test_upload_slice_and_play_clips(studio_page, studio_server, espeak_wav, tmp_path):
    page = studio_page
    page.get_by_role("tab", name="Dataset").click()
    page.locator("#dataset-files input[type=file]").set_input_files(str(espeak_wav))
    # The file list's cell by its accessible name: Gradio renders stem and extension in separate
    # spans, and its text content is sometimes "speech .wav" (a failure seen twice in CI runs).
    uploaded = page.locator("#dataset-files").get_by_role("cell", name="speech.wav", exact=True)
    expect(uploaded).to_be_visible(timeout=30_000)
    # A slicer setting typed into the form reaches the slicer: 20 s minimum keeps the recording whole.
    page.get_by_label("Minimum clip length (ms)").fill("20000")
    page.locator("#dataset-run").click()
    expect(page.locator("#dataset-status")).to_contain_text("1 clips from 1 file(s)", timeout=60_000)
    page.get_by_label("Minimum clip length (ms)").fill("4000")
    page.get_by_label("Output folder (under output/)").fill("by_sentence")
    page.locator("#dataset-run").click()

    players = page.locator('#dataset-clips audio[data-testid^="audio-player-"]')
    expect(players.first).to_be_attached(timeout=60_000)
    out_dir = studio_server.home / "output" / "by_sentence"
    expect(players).to_have_count(len(SENTENCES), timeout=60_000)
    written = sorted(p.name for p in out_dir.glob("*.wav"))
    assert len(written) == len(SENTENCES)
    expect(page.locator("#dataset-status")).to_contain_text(f"{len(written)} clips from 1 file(s)")
    shown = sorted(
        re.sub("^audio-player-", "", players.nth(i).get_attribute("data-testid"))
        for i in range(players.count())
    )
    assert shown == written
    for name in written:
        assert name.startswith("speech.wav_") and sf.info(out_dir / name).samplerate == 32_000
    page.screenshot(path=str(tmp_path / "dataset_tab.png"), full_page=True)


def test_server_folder_outside_the_data_root_is_refused(studio_page):
    page = studio_page
    page.get_by_role("tab", name="Dataset").click()
    page.locator("#dataset-folder textarea, #dataset-folder input").first.fill("/etc")
    page.locator("#dataset-run").click()
    expect(page.get_by_text(re.compile("outside the data folder"))).to_be_visible(timeout=30_000)


def test_uploads_over_the_cap_are_refused(studio_browser, tmp_path):
    from tests.browser import open_studio, run_studio

    big = tmp_path / "big.wav"
    sf.write(big, np.random.default_rng(0).standard_normal(44_100 * 15).astype(np.float32) * 0.1, 44_100)
    assert big.stat().st_size > 1 << 20
    with run_studio(tmp_path / "home", env={"STUDIO_MAX_UPLOAD_MB": "1"}) as server:
        page = open_studio(studio_browser, server)
        page.get_by_role("tab", name="Dataset").click()
        page.locator("#dataset-files input[type=file]").set_input_files(str(big))
        expect(page.get_by_text(re.compile(r"exceed the maximum allowed size of 1\.0"))).to_be_visible(
            timeout=30_000
        )
        page.close()
