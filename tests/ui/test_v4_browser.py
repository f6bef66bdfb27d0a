"""v4 in headless Chromium: LoRA fine-tuning in the Train tab, synthesis in the TTS tab.

A user's path through the web UI with a v4 experiment: choose the version, format the dataset
(1a, 1b, 1c; no 2-get-sv), train a rank-16 LoRA on the tiny ``gsv-v4-pretrained/s2Gv4.pth`` and
GPT from ``s1v3.ckpt``, then pick the two exports in the TTS tab, where the sample-steps choice
appears, and read a sentence at 48 kHz with 4 steps.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
from playwright.sync_api import expect

from app.models.upstream.sovits_lora import read_lora
from tests.browser import open_studio, run_studio
from tests.tts_data import write_dataset_list

pytestmark = [pytest.mark.browser, pytest.mark.slow]

VERSION = "v4"
NAME = "voice"
# min_items_per_epoch (100) repeats the 4 listed clips; a batch of 25 makes an epoch 4 steps.
BATCH = 25


@pytest.fixture(scope="module")
def v4_server(tmp_path_factory, tts_dataset, tts_pretrained):
    """The studio with 4 listed clips under data/ and the tiny base models (v4 base and vocoder included)."""
    audio_dir, clips, _ = tts_dataset
    home = tmp_path_factory.mktemp("v4_ui_home")
    shutil.copytree(audio_dir, home / "data" / "clips")
    write_dataset_list(home / "data" / "voice.list", [*clips[:3], clips[-1]])
    pretrained = tts_pretrained.root
    # A reference clip of 3-10 s: Piper clips joined, with their transcripts as the prompt.
    parts, texts = [], []
    for clip in clips[3:]:
        pcm, rate = sf.read(audio_dir / clip.name, dtype="float32")
        parts += [pcm, np.zeros(rate // 5, dtype=np.float32)]
        texts.append(clip.text)
        if sum(len(p) for p in parts) >= 4 * rate:
            break
    sf.write(home / "reference.wav", np.concatenate(parts), rate)
    (home / "reference.txt").write_text(" ".join(texts), encoding="utf-8")
    with run_studio(home, env={"STUDIO_PRETRAINED": str(pretrained)}) as server:
        yield server


def _set_number(page, selector: str, value: int) -> None:
    field = page.locator(f"{selector} input[type=number]")
    field.fill(str(value))
    field.press("Tab")


def _train(page, kind: str, title: str) -> None:
    if kind == "sovits":
        page.locator("#train-sovits-lora-rank").get_by_label("16", exact=True).check()
    for setting, value in (("batch", BATCH), ("epochs", 1), ("save-every", 1)):
        _set_number(page, f"#train-{kind}-{setting}", value)
    page.locator(f"#train-{kind}-start").click()
    status = page.locator(f"#train-{kind}-status")
    expect(status).to_contain_text(f"{title}: done", timeout=420_000)
    expect(status).to_contain_text("Exported: voice_e1_s")


def _choose(page, selector: str, label: str) -> None:
    page.locator(f"{selector} input").click()
    page.get_by_role("option", name=label).click()
    expect(page.locator(f"{selector} input")).to_have_value(label)


def test_v4_lora_train_and_synthesize_with_sample_steps(studio_browser, v4_server) -> None:
    home = v4_server.home
    page = open_studio(studio_browser, v4_server)
    try:
        page.get_by_role("tab", name="Train").click()
        name = page.locator("#train-exp input")
        name.fill(NAME)
        name.press("Enter")
        expect(page.locator("#train-format-status")).to_contain_text("Formatting: none", timeout=30_000)
        page.locator("#train-version").get_by_label(VERSION, exact=True).check()
        expect(page.locator("#train-format-2-get-sv")).to_be_hidden()
        expect(page.locator("#train-sovits-lora-rank")).to_be_visible()
        page.locator("#train-list textarea, #train-list input").first.fill("data/voice.list")
        page.locator("#train-audio textarea, #train-audio input").first.fill("data/clips")
        page.locator("#train-format-all").click()
        formatting = page.locator("#train-format-status")
        expect(formatting).to_contain_text("Formatting: done", timeout=300_000)
        expect(formatting).to_contain_text("6-name2semantic: 4 rows")

        _train(page, "sovits", "SoVITS")
        _train(page, "gpt", "GPT")
        (sovits_file,) = (home / "SoVITS_weights").glob("*.pth")
        (gpt_file,) = (home / "GPT_weights").glob("*.ckpt")
        assert sovits_file.read_bytes()[:2] == b"04" and read_lora(sovits_file).rank == 16

        page.get_by_role("tab", name="Text to speech").click()
        page.locator("#tts-refresh").click()
        _choose(page, "#tts-gpt", f"GPT_weights/{gpt_file.name}")
        _choose(page, "#tts-sovits", f"SoVITS_weights/{sovits_file.name}")
        page.get_by_text("Parameters").click()  # the accordion holding the sampling settings
        steps = page.locator("#tts-steps")
        expect(steps).to_be_visible()
        expect(steps.get_by_label("8", exact=True)).to_be_checked()  # upstream's v4 default
        steps.get_by_label("4", exact=True).check()
        page.locator("#tts-reference input[type=file]").set_input_files(str(home / "reference.wav"))
        expect(
            page.locator("#tts-reference audio, #tts-reference [data-testid='waveform-x']").first
        ).to_be_attached(timeout=30_000)
        page.locator("#tts-prompt textarea").fill((home / "reference.txt").read_text(encoding="utf-8"))
        page.locator("#tts-text textarea").fill("The coffee is still hot.")
        page.locator("#tts-run").click()
        expect(page.locator("#tts-info")).to_contain_text("seed", timeout=300_000)

        (meta,) = (home / "output" / "tts").glob("*.json")
        record = json.loads(meta.read_text("utf-8"))
        assert record["models"]["gpt"] == str(gpt_file) and record["models"]["sovits"] == str(sovits_file)
        audio, sr = sf.read(home / "output" / "tts" / record["wav"], dtype="int16")
        assert record["request"]["sample_steps"] == 4 and record["sample_rate"] == 48000
        assert sr == 48000 and np.abs(audio).max() > 100
        frames = sum(4 * n * 480 for n in record["tokens_per_segment"])
        assert len(audio) == frames + len(record["segments"]) * round(0.3 * sr)
    finally:
        page.close()
