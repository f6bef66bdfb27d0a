"""The SVC tab's live view in headless Chromium, a sung file played as the microphone."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from playwright.sync_api import expect

from tests.svc_data import SR, melody
from tests.ui.svc.test_tab_browser import _studio_home

pytestmark = pytest.mark.browser


def test_live_view_converts_the_microphone_and_shows_the_latency(svc_trained, tmp_path) -> None:
    from playwright.sync_api import sync_playwright

    from tests.browser import CHROMIUM, CHROMIUM_ARGS, run_studio

    home = tmp_path / "home"
    _studio_home(svc_trained, home)
    mic = tmp_path / "mic.wav"  # Chromium loops the file as the microphone (16-bit PCM WAV)
    sf.write(mic, np.tile(melody([247, 262, 220, 294], note_s=0.5), 3), SR, subtype="PCM_16")
    fake_mic = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={mic}", "--autoplay-policy=no-user-gesture-required"]  # fmt: skip
    with run_studio(home, env={"STUDIO_DEVICE": "cpu"}) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, *fake_mic]
        )
        try:
            page = browser.new_context(permissions=["microphone"]).new_page()
            page.set_default_timeout(30_000)
            page.goto(server.url, wait_until="domcontentloaded")
            page.locator(".gradio-container").first.wait_for(state="visible", timeout=60_000)
            page.get_by_role("tab", name="SVC").click()
            page.get_by_role("tab", name="4 · Live").click()
            expect(page.locator("#svc-live-model input")).to_have_value(
                f"alto_voice / {svc_trained.model.name}"
            )
            # The fake device is listed once the component has asked for the microphone.
            expect(page.locator("#svc-live-mic select option").first).to_be_attached(timeout=30_000)
            page.locator("#svc-live-mic").get_by_role("button", name="Record").click()
            expect(page.locator("#svc-live-mic").get_by_role("button", name="Stop")).to_be_visible()
            blocks = page.locator("#svc-live-blocks input")
            page.wait_for_function(
                "() => Number(document.querySelector('#svc-live-blocks input')?.value) >= 3", timeout=90_000
            )
            # Blocks of 0.496 s (whole hops) + 48 ms cross-fade + 12 ms search; the browser sends 250 ms chunks.
            expect(page.locator("#svc-live-algorithmic input")).to_have_value("556")
            expect(page.locator("#svc-live-chunk input")).to_have_value("250")
            page.locator("#svc-live-mic").get_by_role("button", name="Stop").click()
            page.wait_for_timeout(1500)  # the last chunk's figures settle
            figures = {name: float(page.locator(f"#svc-live-{name} input").input_value())
                       for name in ("latency", "algorithmic", "chunk", "processing", "rtf", "played")}  # fmt: skip
            assert figures["processing"] > 0 and figures["rtf"] > 0
            assert figures["latency"] == pytest.approx(
                figures["algorithmic"] + figures["chunk"] + figures["processing"], abs=1
            )
            # The page played the converted blocks back (Web Audio): 0.496 s each.
            assert figures["played"] == pytest.approx(0.496 * int(blocks.input_value()), abs=0.02)
            assert page.evaluate("() => window.svcLive.ctx.state") == "running"
            page.screenshot(path=str(tmp_path / "svc_live.png"), full_page=True)
        finally:
            browser.close()
    assert "Traceback" not in server.log(), server.log()[-3000:]
