"""Label tab in headless Chromium: a song through MDX-Net separation, VR karaoke (HP5), de-reverb, GTCRN
denoise, slicing, SenseVoice."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from playwright.sync_api import expect

from app.data.filelist import read_list
from app.data.preprocess import gtcrn, vr
from app.data.preprocess.asr_sherpa import SENSEVOICE_FOLDER
from app.data.preprocess.mdx import MDX_MODELS, MDX_RATE, model_path
from app.models.upstream.uvr_vr import ASPP
from tests.data.preprocess.tiny_models import tiny_gtcrn, tiny_mdx, tiny_sensevoice
from tests.data.preprocess.tiny_vr import tiny_vr

pytestmark = pytest.mark.browser

VOCALS, DEREVERB = "Kim_Vocal_2.onnx", "onnx_dereverb_By_FoxJoy/vocals.onnx"
KARAOKE = "HP5_only_main_vocal.pth"


def _bin(name: str, hz: float) -> int:
    return int(hz / (MDX_RATE / MDX_MODELS[name].n_fft))


@pytest.fixture(scope="module")
def cleanup_server(tmp_path_factory):
    """A studio whose pretrained_models/ holds tiny MDX-Net files and a tiny SenseVoice, and a song in raw/."""
    from tests.browser import run_studio

    home = tmp_path_factory.mktemp("studio_home")
    pretrained = home / "pretrained_models"
    v, d = MDX_MODELS[VOCALS], MDX_MODELS[DEREVERB]
    tiny_mdx(model_path(VOCALS, pretrained), v.dim_f, v.dim_t, _bin(VOCALS, 1000))
    tiny_mdx(model_path(DEREVERB, pretrained), d.dim_f, d.dim_t, _bin(DEREVERB, 8000), _bin(DEREVERB, 3000))
    tiny_sensevoice(pretrained / SENSEVOICE_FOLDER)
    tiny_gtcrn(gtcrn.model_path(pretrained), keep_below_hz=1000)  # the 200 Hz voice passes
    tiny_vr(vr.model_path(KARAOKE, pretrained), ASPP, mask=0.05)  # takes ~4 % out: the "lead" stays
    # Two faded 200 Hz "phrases" (heard as "hello") over a 5 kHz "accompaniment".
    t = np.arange(int(MDX_RATE * 1.2)) / MDX_RATE
    phrase = 0.3 * np.sin(2 * np.pi * 200 * t) * np.minimum(1.0, np.minimum(t, t[::-1]) / 0.1)
    pause = np.zeros(MDX_RATE)
    voice = np.concatenate([pause, phrase, pause, phrase, pause])
    song = voice + 0.1 * np.sin(2 * np.pi * 5000 * np.arange(voice.size) / MDX_RATE)
    (home / "raw").mkdir()
    sf.write(home / "raw" / "song.wav", np.stack([song, song], axis=1).astype(np.float32), MDX_RATE)
    with run_studio(home) as server:
        yield server


def _choose(page, scope: str, label: str, option: str) -> None:
    page.locator(scope).get_by_label(label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()


def test_song_to_list_with_every_clean_up_step(studio_browser, cleanup_server):
    from tests.browser import open_studio

    page = open_studio(studio_browser, cleanup_server)
    page.get_by_role("tab", name="Label").click()
    page.locator("#label-pipeline").get_by_text("Build a dataset").click()
    page.locator("#label-pipe-folder textarea, #label-pipe-folder input").first.fill("raw")
    page.locator("#label-pipe-name textarea, #label-pipe-name input").first.fill("aki")
    page.locator("#label-pipe-separate input").check()
    _choose(
        page,
        "#label-pipeline",
        "Separation model (demucs, UVR MDX-Net or VR, BS-/Mel-Band-RoFormer)",
        VOCALS,
    )
    _choose(page, "#label-pipeline", "Speech recognition engine (auto: chosen by language)", "sensevoice")
    _choose(page, "#label-pipeline", "Language", "ja")
    page.locator("#label-clean").get_by_text("Clean up the vocals").click()
    # The models present are marked, the missing ones come with their download command.
    table = page.locator("#label-clean-models")
    expect(table).to_contain_text(f"✓ {VOCALS}")
    expect(table).to_contain_text("✗ UVR_MDXNET_KARA_2.onnx")
    expect(table).to_contain_text("download_models.py uvr-mdx-karaoke-2")
    expect(table).to_contain_text("✓ gtcrn_simple.onnx")
    expect(table).to_contain_text("✗ model_bs_roformer_ep_317_sdr_12.9755.ckpt")
    expect(table).to_contain_text("download_models.py roformer-bs-viperx-1297")
    expect(table).to_contain_text(f"✓ {KARAOKE}")
    expect(table).to_contain_text("✗ VR-DeEchoDeReverb.pth")
    expect(table).to_contain_text("download_models.py uvr-vr-deecho-dereverb")
    page.locator("#label-clean-karaoke input").check()
    page.locator("#label-clean").get_by_label("Model", exact=True).first.click()  # the karaoke column's
    page.get_by_role("option", name=KARAOKE, exact=True).click()
    page.locator("#label-clean-dereverb input").check()
    page.locator("#label-clean-denoise input").check()
    _choose(
        page,
        "#label-clean",
        "Denoiser (spectral-gate: steady noise, no model; gtcrn: learned, any noise, needs its model)",
        "gtcrn",
    )
    page.locator("#label-pipe-run").click()
    expect(page.locator("#label-pipe-status")).to_contain_text("rows written", timeout=180_000)
    root = cleanup_server.home / "output" / "datasets" / "aki"
    rows = read_list(root / "aki.list").rows
    # The panel's default minimum clip length (5 s) keeps both phrases in one clip.
    assert [(r.speaker, r.lang, r.text) for r in rows] == [("aki", "JA", "hello hello")]
    report = json.loads((root / "cleaned" / "report.json").read_text(encoding="utf-8"))
    assert set(report) == {"karaoke", "dereverb", "denoise"}
    assert report["karaoke"]["song.wav"]["model"] == f"vr:{KARAOKE}"
    assert report["dereverb"]["song.wav"]["source"] == str(root / "cleaned" / "karaoke" / "song.wav")
    assert report["denoise"]["song.wav"]["source"] == str(root / "cleaned" / "dereverb" / "song.wav")
    assert report["denoise"]["song.wav"]["model"].startswith("gtcrn:gtcrn_simple.onnx")
    # The new list opens in the proofreading editor.
    expect(page.locator("#label-text-0 textarea")).to_have_value("hello hello", timeout=30_000)
    page.close()
