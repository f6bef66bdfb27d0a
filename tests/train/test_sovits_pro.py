"""v2Pro/v2ProPlus SoVITS and GPT fine-tuning: speaker embeddings in the data, 8 discriminators, exports."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from app import config_io
from app.data.experiment import ExperimentFiles, read_name2text, write_name2text
from app.models.upstream.sovits import read_discriminator, read_sovits
from app.runconfig import GPTRunConfig, SoVITSRunConfig
from app.runstatus import read_status
from app.train import sovits
from app.train.gpt import build_model, forward_backward
from app.train.gpt_data import GPTDataset
from app.train.gpt_data import collate as gpt_collate
from app.train.sovits import SoVITSTrainError, build_discriminator, build_generator
from app.train.sovits_data import SoVITSDataset, TrainingDataError, collate
from tests.tts_data import TINY_SV_DIM, add_speaker_embeddings, write_discriminator

TRAINED = 2  # clips kept for the fine-tune: one or two optimiser steps


@pytest.fixture(scope="module")
def pro_experiment(tmp_path_factory, tts_experiment, tts_dataset, tts_pretrained) -> Path:
    """The formatted experiment plus 7-sv_cn/ (2-get-sv of the tiny speaker model); copy before changing."""
    audio_dir, _, list_path = tts_dataset
    exp_dir = tmp_path_factory.mktemp("pro") / "voice"
    shutil.copytree(tts_experiment, exp_dir)
    return add_speaker_embeddings(exp_dir, tts_pretrained, list_path, audio_dir)


def run_config(tmp_path: Path, exp_dir: Path, pre, **changes) -> SoVITSRunConfig:
    cfg = SoVITSRunConfig(
        exp_name="pro", exp_dir=exp_dir, weights_dir=tmp_path / "SoVITS_weights",
        pretrained_g=pre.s2g_pro["v2ProPlus"], pretrained_d=None, version="v2ProPlus", batch_size=2,
        epochs=1, save_every_epoch=1, log_interval=1, min_items_per_epoch=0, num_workers=0,
        discriminator_width_divisor=16, precision="fp32",
    )  # fmt: skip
    return replace(cfg, **changes)


def test_pro_items_carry_their_speaker_embedding(pro_experiment, tts_pretrained, tmp_path) -> None:
    model, _ = build_generator(run_config(tmp_path, pro_experiment, tts_pretrained), None)
    config = model.config
    assert (config.version, config.sv_dim, config.gin_channels, config.p_dropout) == (
        "v2ProPlus", TINY_SV_DIM, 1024, 0.0,
    )  # fmt: skip
    dataset = SoVITSDataset(pro_experiment, config, "v2ProPlus", min_items=0)
    assert dataset.unique == 20
    files = ExperimentFiles(pro_experiment)
    batch = collate([dataset[i] for i in range(3)])
    assert batch["sv_emb"].shape == (3, TINY_SV_DIM)
    # Rows follow the length-sorted order of the other tensors (clips may share a length): each
    # clip's stored embedding is exactly one row, and that row has the clip's length.
    lengths = batch["spec_lengths"].tolist()
    rows = set()
    for i in range(3):
        stored = torch.load(files.sv(dataset.clips[i].name), weights_only=True)[0]
        match = [
            r for r in range(3) if r not in rows and torch.allclose(batch["sv_emb"][r], stored, atol=1e-5)
        ]
        assert match, f"clip {dataset.clips[i].name}: no row holds its speaker embedding"
        assert lengths[match[0]] == dataset.clips[i].frames
        rows.add(match[0])


def test_pro_training_needs_7_sv_cn(tmp_path, pro_experiment, tts_pretrained) -> None:
    exp_dir = tmp_path / "voice"
    shutil.copytree(pro_experiment, exp_dir)
    config = build_generator(run_config(tmp_path, exp_dir, tts_pretrained), None)[0].config
    files = ExperimentFiles(exp_dir)
    one = next(iter(read_name2text(files.name2text)))
    files.sv(one).unlink()  # upstream: 2-name2text ∩ 4-cnhubert ∩ 5-wav32k ∩ 7-sv_cn
    dataset = SoVITSDataset(exp_dir, config, "v2ProPlus", min_items=0)
    assert dataset.unique == 19 and one not in {c.name for c in dataset.clips}
    assert dataset.left_out["no speaker embedding in 7-sv_cn/ (run 2-get-sv)"] == 1

    wrong = files.sv(dataset.clips[0].name)
    torch.save(torch.zeros(1, TINY_SV_DIM + 1), wrong)  # made by another speaker model
    with pytest.raises(TrainingDataError, match=rf"{wrong.name}.*\(1, {TINY_SV_DIM + 1}\).*2-get-sv"):
        SoVITSDataset(exp_dir, config, "v2ProPlus", min_items=0)

    shutil.rmtree(files.sv_dir)
    with pytest.raises(TrainingDataError, match=r"7-sv_cn is missing.*2-get-sv"):
        SoVITSDataset(exp_dir, config, "v2ProPlus", min_items=0)
    v2 = replace(config, version="v2", gin_channels=512)
    assert SoVITSDataset(exp_dir, v2, "v2", min_items=0).unique == 20  # v1/v2 do not need it


def test_pro_discriminator_has_upstreams_eight_parts(tmp_path, pro_experiment, tts_pretrained) -> None:
    s2d = write_discriminator(tmp_path / "v2Pro" / "s2Dv2ProPlus.pth", (2, 3, 5, 7, 11, 17, 23))
    periods, state = read_discriminator(s2d)
    assert periods == (2, 3, 5, 7, 11, 17, 23) and 1 + max(int(k.split(".")[1]) for k in state) == 8
    cfg = run_config(
        tmp_path, pro_experiment, tts_pretrained, pretrained_d=s2d, discriminator_width_divisor=1
    )
    config = build_generator(cfg, None)[0].config
    disc, source = build_discriminator(cfg, config, resumed=False)
    assert source == str(s2d) and len(disc.discriminators) == 8
    torch.testing.assert_close(
        disc.state_dict()["discriminators.7.convs.0.bias"], state["discriminators.7.convs.0.bias"].float()
    )
    v2_d = write_discriminator(tmp_path / "s2D2333k.pth", (2, 3, 5, 7, 11))
    with pytest.raises(SoVITSTrainError, match="periods"):
        build_discriminator(replace(cfg, pretrained_d=v2_d), config, resumed=False)


def test_v2proplus_fine_tune_exports_what_upstream_writes(tmp_path, pro_experiment, tts_pretrained) -> None:
    exp_dir = tmp_path / "voice"
    shutil.copytree(pro_experiment, exp_dir)
    files = ExperimentFiles(exp_dir)
    rows = read_name2text(files.name2text)
    write_name2text(files.name2text, list(rows.values())[:TRAINED])  # a short epoch
    cfg = run_config(tmp_path, exp_dir, tts_pretrained)
    run_dir = exp_dir / "logs_s2_v2ProPlus"
    assert sovits.main(["--config", str(config_io.save(cfg, run_dir / "run.yaml"))]) == 0
    status = read_status(run_dir / "status.json")
    assert status.state == "done" and status.epoch == 1, status
    (exported,) = cfg.weights_dir.iterdir()
    assert exported.name == f"pro_e1_s{status.step}.pth"
    assert exported.read_bytes()[:2] == b"06"  # upstream's v2ProPlus header
    record = read_sovits(exported, expect_version="v2ProPlus")
    base = read_sovits(tts_pretrained.s2g_pro["v2ProPlus"])
    assert record.header == b"06" and record.config == base.config and record.config.sv_dim == TINY_SV_DIM
    moved = [k for k, v in base.state_dict.items() if not torch.equal(v, record.state_dict[k])]
    assert any(k.startswith("sv_emb.") for k in moved)  # the speaker-embedding layer trained too

    # The config tree: upstream's s2v2ProPlus.json with the keys its web UI sets before training.
    tree = record.hparams
    assert set(tree) == set(UPSTREAM_TOP)
    assert set(tree["train"]) == set(UPSTREAM_TRAIN) and set(tree["data"]) == set(UPSTREAM_DATA)
    assert set(tree["model"]) - {"sv_dim"} == set(UPSTREAM_MODEL)  # sv_dim: only small models carry it
    assert tree["version"] == tree["model"]["version"] == "v2ProPlus"
    assert (
        tree["model"]["gin_channels"],
        tree["model"]["p_dropout"],
        tree["model"]["upsample_kernel_sizes"][0],
    ) == (1024, 0.0, 20)
    assert tree["train"]["pretrained_s2G"] == str(tts_pretrained.s2g_pro["v2ProPlus"])
    assert tree["data"]["exp_dir"] == str(exp_dir) and tree["name"] == "pro"
    json.dumps(dict(tree["train"]))  # plain values, as upstream's json-loaded tree


def test_pro_gpt_starts_from_s1v3(tmp_path, pro_experiment, tts_pretrained) -> None:
    cfg = GPTRunConfig(
        exp_name="pro", exp_dir=pro_experiment, weights_dir=tmp_path / "GPT_weights",
        pretrained_s1=tts_pretrained.s1_pro, version="v2Pro", num_workers=0, min_items_per_epoch=0,
    )  # fmt: skip
    model, upstream, source = build_model(cfg, None)
    assert source == str(tts_pretrained.s1_pro) and model.config.phoneme_vocab_size == 732
    dataset = GPTDataset(pro_experiment, "v2Pro", min_items=0)
    assert dataset.unique == len(GPTDataset(pro_experiment, "v2", min_items=0))
    batch = gpt_collate([dataset[i] for i in range(2)], pad_code=model.config.eos)
    parts = forward_backward(
        batch, model.train(), torch.amp.GradScaler("cuda", enabled=False), torch.device("cpu"), "fp32", 1
    )
    assert torch.isfinite(torch.tensor(parts["loss_sum"]))
    assert upstream["model"]["phoneme_vocab_size"] == 732


# Upstream's s2v2ProPlus.json sections plus what webui.py open1Ba and utils.get_hparams add.
UPSTREAM_TRAIN = (
    "log_interval", "eval_interval", "seed", "epochs", "learning_rate", "betas", "eps", "batch_size",
    "fp16_run", "lr_decay", "segment_size", "init_lr_ratio", "warmup_epochs", "c_mel", "c_kl",
    "text_low_lr_rate", "grad_ckpt", "pretrained_s2G", "pretrained_s2D", "if_save_latest",
    "if_save_every_weights", "save_every_epoch", "gpu_numbers", "lora_rank",
)  # fmt: skip
UPSTREAM_DATA = (
    "max_wav_value", "sampling_rate", "filter_length", "hop_length", "win_length", "n_mel_channels",
    "mel_fmin", "mel_fmax", "add_blank", "n_speakers", "cleaned_text", "exp_dir",
)  # fmt: skip
UPSTREAM_MODEL = (
    "inter_channels", "hidden_channels", "filter_channels", "n_heads", "n_layers", "kernel_size", "p_dropout",
    "resblock", "resblock_kernel_sizes", "resblock_dilation_sizes", "upsample_rates", "upsample_initial_channel",
    "upsample_kernel_sizes", "n_layers_q", "use_spectral_norm", "gin_channels", "semantic_frame_rate",
    "freeze_quantizer", "version",
)  # fmt: skip
UPSTREAM_TOP = (
    "train", "data", "model", "s2_ckpt_dir", "content_module", "save_weight_dir", "name", "version",
    "pretrain", "resume_step",
)  # fmt: skip
