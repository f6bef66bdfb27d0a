"""v4 end to end: .list -> formatting (1a, 1b, 1c) -> SoVITS LoRA and GPT fine-tuning -> exports.

The jobs are started as the Train tab starts them (app.services.experiments with version="v4")
and run as real subprocesses on the tiny base models of tests/tts_data.py; the exports are read
back as upstream writes them, and the LoRA merged onto the tiny s2Gv4.pth gives a model whose
DiT predicts otherwise than the base's.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from app.data.experiment import ExperimentFiles, read_name2text, read_semantic
from app.models.upstream.gpt import load_gpt
from app.models.upstream.sovits import build_cfm_sovits, load_cfm_sovits, read_sovits
from app.models.upstream.sovits_lora import merge_lora, read_lora
from app.paths import Layout
from app.runconfig import FORMAT_STEPS
from app.services import experiments as ex
from app.services.jobs import JobManager, JobView
from tests.tts_data import write_dataset_list

pytestmark = pytest.mark.slow

VERSION = "v4"
NAME = "voice"
RANK = 16


def listed(clips: list) -> list:
    """Three Piper (English) clips and the last (Mandarin espeak-ng) one."""
    return [*clips[:3], clips[-1]]


def finished(jobs: JobManager, view: JobView, timeout: float) -> JobView:
    done = jobs.wait(view.id, timeout=timeout)
    assert done.state == "done", f"{done.state}: {done.status}\n{jobs.tail(view.id, 60)}"
    return done


@pytest.fixture(scope="module")
def layout(tmp_path_factory, tts_pretrained, tts_dataset) -> Layout:
    audio_dir, clips, _ = tts_dataset
    home = tmp_path_factory.mktemp("v4_home")
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
    assert config.steps == ("1a", "1b", "1c")  # no speaker embeddings for v4
    finished(jobs, ex.start(layout, jobs, NAME, "format", config), timeout=300)
    return layout.experiment(NAME)


@pytest.fixture(scope="module")
def sovits_weights(layout, jobs, formatted) -> Path:
    config = ex.sovits_config(
        layout, NAME, version=VERSION, lora_rank=RANK, batch_size=2, epochs=1, log_interval=1,
        min_items_per_epoch=0, num_workers=0, precision="fp32", device="cpu", learning_rate=1e-3,
    )  # fmt: skip
    done = finished(jobs, ex.start(layout, jobs, NAME, "sovits", config), timeout=300)
    exported = sorted(layout.sovits_weights.iterdir())
    assert [p.name for p in exported] == [f"{NAME}_e1_s{done.status.step}_l{RANK}.pth"]
    return exported[0]


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


def test_formatting_tokens_come_from_the_v4_base(formatted, tts_dataset, tts_pretrained) -> None:
    clips = listed(tts_dataset[1])
    files = ExperimentFiles(formatted)
    assert sorted(read_name2text(files.name2text)) == sorted(c.name for c in clips)
    assert not files.sv_dir.exists()
    codes = read_semantic(files.semantic)
    model, _ = load_cfm_sovits(tts_pretrained.s2g_cfm[VERSION])
    for clip in clips:
        ssl = torch.load(files.hubert(clip.name), weights_only=True)
        assert list(codes[clip.name]) == model.extract_codes(ssl.float())[0, 0].tolist()
    state = ex.format_state(formatted)
    assert state.ready("sovits", VERSION) and state.ready("gpt", VERSION)


def test_lora_export_merges_onto_the_base_and_changes_the_dit(sovits_weights, tts_pretrained) -> None:
    assert sovits_weights.read_bytes()[:2] == b"04"
    lora = read_lora(sovits_weights)
    assert (lora.version, lora.rank) == (VERSION, RANK) and lora.hparams["train"]["lora_rank"] == str(RANK)
    assert lora.hparams["model"]["version"] == VERSION and lora.hparams["name"] == NAME
    base = read_sovits(tts_pretrained.s2g_cfm[VERSION], expect_version=VERSION)
    assert lora.hparams["train"]["pretrained_s2G"] == str(tts_pretrained.s2g_cfm[VERSION])
    assert len(lora.adapters) == 4 * base.config.dit_depth
    assert any(torch.count_nonzero(b) for _, b in lora.adapters.values())  # the adapters trained
    tuned = build_cfm_sovits(merge_lora(base.state_dict, lora), base.config)
    plain = build_cfm_sovits(base.state_dict, base.config)
    torch.manual_seed(0)
    x, cond = torch.randn(1, 40, 100), torch.randn(1, 40, 512)
    args = (x, torch.zeros_like(x), cond, torch.tensor([0.5]), torch.tensor([0.0]))
    with torch.no_grad():
        difference = (tuned.cfm.estimator(*args) - plain.cfm.estimator(*args)).abs().max()
    assert difference > 1e-4


def test_exported_gpt_started_from_s1v3(gpt_weights, tts_pretrained) -> None:
    record = load_gpt(gpt_weights)
    assert record.config["pretrained_s1"] == str(tts_pretrained.s1_pro)
    assert record.model.config.phoneme_vocab_size == 732


def test_exported_lora_and_gpt_synthesise_in_the_pipeline(
    sovits_weights, gpt_weights, tts_pretrained, tts_dataset, layout
) -> None:
    """The LoRA export, merged at load onto pretrained_models/gsv-v4-pretrained/s2Gv4.pth, reads a sentence."""
    import numpy as np
    import soundfile as sf

    from app.infer import TTSPipeline, TTSRequest
    from app.infer.request import PipelineSpec

    audio_dir, clips, _ = tts_dataset
    parts, texts, rate = [], [], None
    for clip in (c for c in clips if c.name.startswith("piper_")):
        pcm, rate = sf.read(audio_dir / clip.name, dtype="float32")
        parts += [pcm, np.zeros(rate // 5, dtype=np.float32)]
        texts.append(clip.text)
        if sum(len(p) for p in parts) >= 4 * rate:
            break
    reference = layout.home / "data" / "reference_v4.wav"
    sf.write(reference, np.concatenate(parts), rate)
    pipe = TTSPipeline.load(
        PipelineSpec(gpt_weights, sovits_weights, tts_pretrained.hubert, tts_pretrained.bert)
    )
    assert pipe.version == VERSION and pipe.is_cfm and pipe.sample_rate == 48000
    merged = merge_lora(read_sovits(tts_pretrained.s2g_cfm[VERSION]).state_dict, read_lora(sovits_weights))
    key = "cfm.estimator.transformer_blocks.0.attn.to_q.weight"
    assert torch.equal(pipe.sovits.state_dict()[key], merged[key].float())
    pipe.max_new_tokens = 60  # one training step has not taught the GPT to stop: keep decoding short
    result = pipe.synthesize(
        TTSRequest(
            text="The coffee is still hot.",
            text_language="en",
            reference=str(reference),
            prompt_text=" ".join(texts),
            prompt_language="en",
            seed=0,
            sample_steps=4,
        )
    )
    tokens = int(result.tokens[0].numel())
    assert result.sample_rate == 48000 and len(result.audio) == 4 * tokens * 480 + round(0.3 * 48000)
    assert np.abs(result.audio).max() > 100
