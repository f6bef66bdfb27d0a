"""v2ProPlus end to end: .list -> formatting (1a, 1b, 2-get-sv, 1c) -> SoVITS and GPT fine-tuning -> synthesis.

The jobs are started as the Train tab starts them (app.services.experiments with version="v2ProPlus")
and run as real subprocesses on the tiny base models of tests/tts_data.py; the exported weights are then
read back as upstream writes them and loaded into the TTS pipeline with the speaker model.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from app.data.experiment import ExperimentFiles, read_name2text
from app.infer import TTSPipeline, TTSRequest
from app.infer.request import PipelineSpec
from app.models.upstream.gpt import load_gpt
from app.models.upstream.sovits import read_sovits
from app.paths import Layout
from app.runconfig import FORMAT_STEPS, SV_STEP
from app.services import experiments as ex
from app.services.jobs import JobManager, JobView
from tests.tts_data import TINY_SV_DIM, write_dataset_list

pytestmark = pytest.mark.slow

VERSION = "v2ProPlus"
NAME = "voice"
REFERENCE_SECONDS = 4.0  # the pipeline wants a 3-10 s reference: the Piper clips joined


def listed(clips: list) -> list:
    """Three Piper (English) clips and the last (Mandarin espeak-ng) one: a step of each training run."""
    return [*clips[:3], clips[-1]]


def finished(jobs: JobManager, view: JobView, timeout: float) -> JobView:
    done = jobs.wait(view.id, timeout=timeout)
    assert done.state == "done", f"{done.state}: {done.status}\n{jobs.tail(view.id, 60)}"
    return done


@pytest.fixture(scope="module")
def layout(tmp_path_factory, tts_pretrained, tts_dataset) -> Layout:
    """A studio home with the dataset under data/ and the tiny base models as its pretrained folder."""
    audio_dir, clips, _ = tts_dataset
    home = tmp_path_factory.mktemp("pro_home")
    shutil.copytree(audio_dir, home / "data" / "clips")
    write_dataset_list(home / "data" / "voice.list", listed(clips))
    return Layout(home=home, pretrained_dir=tts_pretrained.root)


@pytest.fixture(scope="module")
def jobs(layout) -> JobManager:
    return JobManager(layout.home / "jobs")


@pytest.fixture(scope="module")
def formatted(layout, jobs) -> Path:
    config = ex.format_config(
        layout, NAME, layout.home / "data" / "voice.list", layout.home / "data" / "clips",
        steps=FORMAT_STEPS, version=VERSION, device="cpu", workers=1,
    )  # fmt: skip
    assert config.steps == ("1a", "1b", SV_STEP, "1c")
    finished(jobs, ex.start(layout, jobs, NAME, "format", config), timeout=300)
    return layout.experiment(NAME)


@pytest.fixture(scope="module")
def sovits_weights(layout, jobs, formatted) -> Path:
    config = ex.sovits_config(
        layout, NAME, version=VERSION, pretrained_d=None, batch_size=4, epochs=1, save_every_epoch=1,
        log_interval=1, min_items_per_epoch=0, num_workers=0, discriminator_width_divisor=16,
        precision="fp32", device="cpu",
    )  # fmt: skip
    done = finished(jobs, ex.start(layout, jobs, NAME, "sovits", config), timeout=300)
    (exported,) = layout.sovits_weights.iterdir()
    assert exported.name == f"{NAME}_e1_s{done.status.step}.pth"
    return exported


@pytest.fixture(scope="module")
def gpt_weights(layout, jobs, formatted) -> Path:
    config = ex.gpt_config(
        layout, NAME, version=VERSION, batch_size=4, epochs=1, save_every_epoch=1, log_interval=1,
        min_items_per_epoch=0, num_workers=0, device="cpu",
    )  # fmt: skip
    done = finished(jobs, ex.start(layout, jobs, NAME, "gpt", config), timeout=300)
    (exported,) = layout.gpt_weights.iterdir()
    assert exported.name == f"{NAME}_e1_s{done.status.step}.ckpt"
    return exported


def test_formatting_writes_a_speaker_embedding_per_clip(formatted, tts_dataset) -> None:
    clips = listed(tts_dataset[1])
    files = ExperimentFiles(formatted)
    assert sorted(read_name2text(files.name2text)) == sorted(c.name for c in clips)
    assert sorted(p.name for p in files.sv_dir.iterdir()) == sorted(f"{c.name}.pt" for c in clips)
    for clip in clips:
        stored = torch.load(files.sv(clip.name), weights_only=True)
        assert stored.dtype == torch.float32 and tuple(stored.shape) == (1, TINY_SV_DIM)
        assert torch.isfinite(stored).all() and stored.abs().sum() > 0
    state = ex.format_state(formatted)
    assert state.ready("sovits", VERSION) and state.ready("gpt", VERSION)


def test_exported_sovits_is_upstreams_v2proplus_file(sovits_weights, tts_pretrained) -> None:
    assert sovits_weights.read_bytes()[:2] == b"06"
    record = read_sovits(sovits_weights, expect_version=VERSION)
    base = read_sovits(tts_pretrained.s2g_pro[VERSION])
    assert record.header == b"06" and record.config.version == VERSION
    assert record.config == base.config and record.config.sv_dim == TINY_SV_DIM
    assert record.hparams["train"]["pretrained_s2G"] == str(tts_pretrained.s2g_pro[VERSION])
    moved = [k for k, v in base.state_dict.items() if not torch.equal(v, record.state_dict[k])]
    assert any(k.startswith("sv_emb.") for k in moved)


def test_exported_gpt_started_from_s1v3(gpt_weights, tts_pretrained) -> None:
    record = load_gpt(gpt_weights)
    assert record.config["pretrained_s1"] == str(tts_pretrained.s1_pro)
    assert record.model.config.phoneme_vocab_size == 732


def test_exported_models_synthesise_with_the_speaker_model(
    sovits_weights, gpt_weights, tts_pretrained, tts_dataset, layout
) -> None:
    audio_dir, clips, _ = tts_dataset
    parts, texts, rate = [], [], None
    for clip in (c for c in clips if c.name.startswith("piper_")):
        pcm, rate = sf.read(audio_dir / clip.name, dtype="float32")
        parts += [pcm, np.zeros(rate // 5, dtype=np.float32)]
        texts.append(clip.text)
        if sum(len(p) for p in parts) >= REFERENCE_SECONDS * rate:
            break
    reference = layout.home / "data" / "reference.wav"
    sf.write(reference, np.concatenate(parts), rate)
    spec = PipelineSpec(
        gpt_weights, sovits_weights, tts_pretrained.hubert, tts_pretrained.bert, sv_path=tts_pretrained.sv
    )
    pipe = TTSPipeline.load(spec)
    assert pipe.version == VERSION and pipe.speaker is not None
    assert pipe.speaker.dim == TINY_SV_DIM
    pipe.max_new_tokens = 60  # one training step has not taught the GPT to stop: keep decoding short
    result = pipe.synthesize(
        TTSRequest(
            text="The coffee is still hot.",
            text_language="en",
            reference=str(reference),
            prompt_text=" ".join(texts),
            prompt_language="en",
            seed=0,
        )
    )
    assert result.sample_rate == 32000 and result.audio.dtype == np.int16
    assert len(result.audio) > 0 and np.abs(result.audio).max() > 100
