"""SVC tab in headless Chromium: a finished training job is found again, an uploaded clip is converted."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
import soundfile as sf
from playwright.sync_api import expect

from tests.svc_data import SR, melody
from tests.synth import silence

pytestmark = pytest.mark.browser


def _studio_home(svc_trained, home):
    """A data folder holding the tiny encoder, the trained experiment and its finished job."""
    shutil.copytree(
        svc_trained.pretrained / "content-vec-best", home / "pretrained_models" / "content-vec-best"
    )
    source = svc_trained.experiment
    target = home / "output" / "svc" / "alto_voice"
    (target / "configs").mkdir(parents=True)
    shutil.copyfile(source.config, target / "configs" / "config.json")
    models = target / "logs" / "44k"
    models.mkdir(parents=True)
    for name in (
        svc_trained.model.name,
        "config.json",
        "pitch_report.json",
        "status.json",
        "metrics.jsonl",
        "run.yaml",
    ):
        shutil.copyfile(source.models / name, models / name)
    job = svc_trained.job.folder
    shutil.copytree(job, home / "output" / "jobs" / job.name)
    record = json.loads((job / "job.json").read_text())
    record["spec"]["config"] = str(models / "run.yaml")  # the job as this data folder would have started it
    (home / "output" / "jobs" / job.name / "job.json").write_text(json.dumps(record))
    return target


def test_convert_an_uploaded_clip_and_find_the_training_job(studio_browser, svc_trained, tmp_path) -> None:
    from tests.browser import open_studio, run_studio

    home = tmp_path / "home"
    _studio_home(svc_trained, home)
    clip = tmp_path / "my song.wav"
    sf.write(
        clip,
        np.concatenate([silence(0.2, SR), melody([247, 262, 247, 220], note_s=0.5), silence(0.2, SR)]),
        SR,
    )
    with run_studio(home, env={"STUDIO_DEVICE": "cpu"}) as server:
        page = open_studio(studio_browser, server)
        page.get_by_role("tab", name="SVC").click()
        expect(page.locator("#svc-experiment input")).to_have_value("alto_voice")

        page.get_by_role("tab", name="2 · Train").click()
        status = page.locator("#svc-tr-status")
        expect(status).to_contain_text("done", timeout=30_000)
        expect(status).to_contain_text(f"step {svc_trained.steps}/{svc_trained.steps}")
        plot = page.locator("#svc-tr-plot")  # the loss plot from metrics.jsonl (vega draws SVG)
        expect(plot.locator("svg").first).to_be_visible(timeout=30_000)
        expect(plot).to_contain_text("loss_g")

        page.get_by_role("tab", name="3 · Convert").click()
        expect(page.locator("#svc-cv-model input")).to_have_value(f"alto_voice / {svc_trained.model.name}")
        page.locator("#svc-cv-input input[type=file]").set_input_files(str(clip))
        page.locator("#svc-cv-run").click()
        result = page.locator("#svc-cv-status")
        expect(result).to_contain_text("1 slice(s)", timeout=120_000)
        expect(result).to_contain_text("input median")
        link = page.locator("#svc-cv-output a[download]")
        expect(link).to_have_attribute("download", "my song_0key_alto.wav", timeout=30_000)
        served = page.request.get(link.get_attribute("href"))
        assert served.ok  # the download button fetches the file
        played, rate = sf.read(io.BytesIO(served.body()))
        assert rate == SR and len(played) > SR
        # The browser decoded it for the player: it knows the clip's length.
        waveform = page.get_by_test_id("waveform-Converted").locator("audio")
        expect(waveform).to_be_attached(timeout=30_000)
        page.wait_for_function("el => el.duration > 1.5", arg=waveform.element_handle(), timeout=30_000)
        page.screenshot(path=str(tmp_path / "svc_tab.png"), full_page=True)
    written = home / "output" / "svc_results" / "my song_0key_alto.wav"
    info = sf.info(written)
    assert info.samplerate == SR and info.duration == pytest.approx(sf.info(clip).duration, abs=0.01)
    audio, _ = sf.read(written)
    assert np.abs(audio).max() > 0.01  # real sound came back, not silence


def test_dataset_step_adds_uploads_and_preprocesses(studio_browser, tmp_path) -> None:
    from tests.browser import open_studio, run_studio
    from tests.svc_data import tiny_hubert, tiny_template

    home = tmp_path / "home"
    tiny_hubert(home / "pretrained_models" / "content-vec-best")
    experiment = home / "output" / "svc" / "fresh"
    (experiment / "configs").mkdir(parents=True)
    # An existing config.json is the template the step keeps (here: the tiny test model's widths).
    (experiment / "configs" / "config.json").write_text(json.dumps(tiny_template().to_json()))
    uploads = []
    for i, notes in enumerate(([220, 247, 262], [262, 294, 330], [196, 220, 247])):
        path = tmp_path / f"take{i}.flac"
        sf.write(path, melody(notes, note_s=0.5, seed=i), SR)
        uploads.append(str(path))
    with run_studio(home, env={"STUDIO_DEVICE": "cpu"}) as server:
        page = open_studio(studio_browser, server)
        page.get_by_role("tab", name="SVC").click()
        expect(page.locator("#svc-experiment input")).to_have_value("fresh")
        page.locator("#svc-ds-speaker textarea, #svc-ds-speaker input").first.fill("bob")
        page.locator("#svc-ds-files input[type=file]").set_input_files(uploads)
        expect(page.locator("#svc-ds-files")).to_contain_text("take2", timeout=30_000)
        page.locator("#svc-ds-add").click()
        status = page.locator("#svc-ds-status")
        expect(status).to_contain_text("Added 3 file(s)", timeout=30_000)
        expect(status).to_contain_text("bob: 3 file(s)")
        f0 = page.locator("#svc-ds-f0 input")
        f0.click()
        page.get_by_role("option", name="pm", exact=True).click()
        expect(f0).to_have_value("pm")
        page.locator("#svc-ds-run").click()
        expect(status).to_contain_text("3 clips of 1 speaker(s)", timeout=120_000)
        expect(status).to_contain_text("bob: median")

        # Train from the tab: start a job, see it run, stop it (it saves), find the checkpoint to convert.
        page.get_by_role("tab", name="2 · Train").click()
        page.locator("#svc-tr-batch input").fill("2")
        page.locator("#svc-tr-save input").fill("1000")
        page.locator("#svc-tr-start").click()
        training = page.locator("#svc-tr-status")
        expect(training).to_contain_text("running", timeout=60_000)
        expect(training).to_contain_text("step 2", timeout=120_000)
        page.locator("#svc-tr-stop").click()
        expect(training).to_contain_text("stopped", timeout=60_000)
        saved = sorted((experiment / "logs" / "44k").glob("G_*.pth"))
        assert len(saved) == 1
        page.get_by_role("tab", name="3 · Convert").click()
        page.locator("#svc-cv-refresh").click()
        expect(page.locator("#svc-cv-model input")).to_have_value(f"fresh / {saved[0].name}", timeout=30_000)
        expect(page.locator("#svc-cv-speaker input")).to_have_value("bob")
    assert (experiment / "filelists" / "train.txt").read_text().count("./dataset/44k/bob/") == 1
    assert sorted(p.name for p in (experiment / "dataset" / "44k" / "bob").glob("*.wav.f0.npy")) == [
        "take0.wav.f0.npy", "take1.wav.f0.npy", "take2.wav.f0.npy",
    ]  # fmt: skip
