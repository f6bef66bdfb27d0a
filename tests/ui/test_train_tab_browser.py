"""Train tab in headless Chromium: format a dataset, start a tiny GPT training, watch it move, stop it."""

from __future__ import annotations

import re
import shutil
import time

import pytest
from playwright.sync_api import expect

from app.runstatus import read_status
from tests.browser import open_studio, run_studio

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def train_server(tmp_path_factory, tts_dataset, tts_pretrained):
    """The studio with the dataset under data/ and the tiny base models as its pretrained folder."""
    audio_dir, _, list_path = tts_dataset
    home = tmp_path_factory.mktemp("train_home")
    shutil.copytree(audio_dir, home / "data" / "clips")
    shutil.copy2(list_path, home / "data" / "voice.list")
    with run_studio(home, env={"STUDIO_PRETRAINED": str(tts_pretrained.root)}) as server:
        yield server


def steps_shown(page) -> int | None:
    found = re.search(r"step (\d+)", page.locator("#train-gpt-status").inner_text())
    return int(found.group(1)) if found else None


def test_format_then_train_gpt_and_watch_it(studio_browser, train_server) -> None:
    page = open_studio(studio_browser, train_server)
    try:
        page.get_by_role("tab", name="Train").click()
        name = page.locator("#train-exp input")
        name.fill("voice")
        name.press("Enter")
        expect(page.locator("#train-format-status")).to_contain_text("Formatting: none", timeout=30_000)
        expect(page.locator("#train-format-2-get-sv")).to_be_visible()  # upstream's default v2Pro
        page.locator("#train-version").get_by_label("v2", exact=True).check()
        expect(page.locator("#train-format-2-get-sv")).to_be_hidden()
        # The dataset is picked from the data folder's .list files and audio folders, not typed.
        page.locator("#train-list input").click()
        page.get_by_role("option", name="data/voice.list", exact=True).click()
        page.locator("#train-audio input").click()
        page.get_by_role("option", name="data/clips", exact=True).click()
        expect(page.locator("#train-list input")).to_have_value("data/voice.list")
        page.locator("#train-format-all").click()
        status = page.locator("#train-format-status")
        expect(status).to_contain_text("Formatting: done", timeout=240_000)
        expect(status).to_contain_text("6-name2semantic: 20 rows")
        expect(status).to_contain_text("4-cnhubert: 20")

        epochs = page.locator("#train-gpt-epochs input[type=number]")
        epochs.fill("40")
        epochs.press("Tab")
        page.locator("#train-gpt-start").click()
        gpt_status = page.locator("#train-gpt-status")
        expect(gpt_status).to_contain_text("GPT: running", timeout=120_000)
        seen: list[int] = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and len(set(seen)) < 3:
            step = steps_shown(page)
            if step is not None and (not seen or step != seen[-1]):
                seen.append(step)
            time.sleep(0.5)
        assert len(set(seen)) >= 3 and seen == sorted(seen), f"progress did not move: {seen}"
        expect(page.locator("#train-gpt-status")).to_contain_text("epoch")
        expect(page.locator("#train-gpt-plot")).not_to_contain_text("Empty", timeout=10_000)

        page.locator("#train-gpt-stop").click()
        expect(gpt_status).to_contain_text("GPT: stopped", timeout=120_000)
        run_dir = train_server.home / "output" / "experiments" / "voice" / "logs_s1_v2"
        assert read_status(run_dir / "status.json").state == "stopped"
        assert list(run_dir.glob("resume_*.pt"))
        config = (run_dir / "run.yaml").read_text(encoding="utf-8")
        assert "epochs: 40" in config and "s1bert25hz-5kh" in config  # the UI's settings reached the job
    finally:
        page.close()
