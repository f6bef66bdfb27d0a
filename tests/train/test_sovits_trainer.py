"""SoVITS trainer parts in-process: starting points, frozen parts, learning-rate groups, data, one step."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from app.models.nn.discriminators import MultiPeriodDiscriminator
from app.models.upstream.sovits import load_sovits, read_sovits, write_sovits
from app.runconfig import SoVITSRunConfig
from app.train.sovits import (
    SoVITSTrainError,
    build_discriminator,
    build_generator,
    export_config,
    optimizers,
    train_step,
)
from app.train.sovits_data import SoVITSDataset, TrainingDataError, collate
from tests.tts_data import TINY_SOVITS


def run_config(tmp_path: Path, exp_dir: Path, **changes) -> SoVITSRunConfig:
    cfg = SoVITSRunConfig(
        exp_name="voice",
        exp_dir=exp_dir,
        weights_dir=tmp_path / "SoVITS_weights",
        pretrained_g=None,
        pretrained_d=None,
        model=dict(TINY_SOVITS),
        discriminator_width_divisor=16,
        num_workers=0,
        min_items_per_epoch=0,
    )
    return replace(cfg, **changes)


def test_pretrained_generator_is_loaded_and_frozen_parts_get_no_updates(
    tmp_path, tts_experiment, tts_pretrained
) -> None:
    cfg = run_config(tmp_path, tts_experiment, pretrained_g=tts_pretrained.s2g, model={})
    model, source = build_generator(cfg, None)
    assert source == str(tts_pretrained.s2g)
    stored = read_sovits(tts_pretrained.s2g).state_dict
    state = model.state_dict()
    for name, tensor in stored.items():
        torch.testing.assert_close(state[name], tensor.float(), rtol=0, atol=0, msg=name)
    assert model.config.freeze_quantizer
    assert not any(p.requires_grad for p in model.ssl_proj.parameters())

    disc, d_source = build_discriminator(cfg, model.config, resumed=False)
    assert d_source == "scratch" and isinstance(disc, MultiPeriodDiscriminator)
    optim_g, _ = optimizers(model, disc, cfg)
    base, text = optim_g.param_groups
    assert text["lr"] == pytest.approx(cfg.learning_rate * 0.4) and base["lr"] == cfg.learning_rate
    text_ids = {
        id(p)
        for name in ("text_embedding", "encoder_text", "mrte")
        for p in getattr(model.enc_p, name).parameters()
    }
    assert {id(p) for p in text["params"]} == text_ids
    in_optimizer = {id(p) for g in optim_g.param_groups for p in g["params"]}
    assert not in_optimizer & {id(p) for p in model.ssl_proj.parameters()}

    # One real training step from the pretrained weights on the formatted data.
    dataset = SoVITSDataset(tts_experiment, model.config, "v2", min_items=0)
    batch = next(iter(DataLoader(dataset, batch_size=2, collate_fn=collate)))
    frozen = model.ssl_proj.weight.detach().clone()
    codebook = model.quantizer.vq.layers[0]._codebook.embed.clone()
    trained = model.enc_p.text_embedding.weight.detach().clone()
    losses = train_step(batch, model.train(), disc.train(), *optimizers(model, disc, cfg),
                        torch.amp.GradScaler("cuda", enabled=False), model.config, torch.device("cpu"), "fp32")  # fmt: skip
    assert set(losses) == {"d", "g", "gen", "fm", "mel", "kl"} and all(
        torch.isfinite(torch.tensor(list(losses.values())))
    )
    assert torch.equal(model.ssl_proj.weight, frozen)
    assert torch.equal(model.quantizer.vq.layers[0]._codebook.embed, codebook)
    assert not torch.equal(model.enc_p.text_embedding.weight, trained)

    # The export keeps the pretrained file's shape and tree, with this run's settings.
    path = write_sovits(
        tmp_path / "voice_e1_s1.pth", model.state_dict(), export_config(model.config, cfg, tmp_path), 1, 1
    )
    loaded, record = load_sovits(path, expect_version="v2")
    assert record.config == read_sovits(tts_pretrained.s2g).config and record.info == "1epoch_1iteration"
    assert record.hparams["name"] == "voice" and record.hparams["train"]["pretrained_s2G"] == str(
        tts_pretrained.s2g
    )
    assert record.hparams["train"]["text_low_lr_rate"] == 0.4 and record.hparams["data"]["exp_dir"] == str(
        tts_experiment
    )
    torch.testing.assert_close(
        loaded.enc_p.text_embedding.weight, model.enc_p.text_embedding.weight.half().float()
    )


def test_missing_pretrained_files_warn_and_start_from_scratch(tmp_path, tts_experiment, caplog) -> None:
    cfg = run_config(
        tmp_path, tts_experiment, pretrained_g=tmp_path / "nope.pth", pretrained_d=tmp_path / "nope_d.pth"
    )
    with caplog.at_level(logging.WARNING):
        model, source = build_generator(cfg, None)
        _, d_source = build_discriminator(cfg, model.config, resumed=False)
    assert (source, d_source) == ("scratch", "scratch")
    assert "download_models.py gpt-sovits-v2" in caplog.text and "nope_d.pth" in caplog.text
    assert model.config.inter_channels == TINY_SOVITS["inter_channels"]


def test_bad_settings_are_refused_with_a_reason(tmp_path, tts_experiment, tts_pretrained) -> None:
    with pytest.raises(SoVITSTrainError, match="not SoVITSConfig fields"):
        build_generator(run_config(tmp_path, tts_experiment, model={"hidden_size": 3}), None)
    with pytest.raises(SoVITSTrainError, match="do not fit"):
        build_generator(
            run_config(
                tmp_path, tts_experiment, pretrained_g=tts_pretrained.s2g, model={"inter_channels": 24}
            ),
            None,
        )
    cfg = run_config(tmp_path, tmp_path / "empty")
    with pytest.raises(TrainingDataError, match="format the dataset first"):
        SoVITSDataset(cfg.exp_dir, build_generator(cfg, None)[0].config, "v2")


def test_dataset_items_line_up(tts_experiment) -> None:
    cfg = run_config(Path("."), tts_experiment)
    config = build_generator(cfg, None)[0].config
    dataset = SoVITSDataset(tts_experiment, config, "v2", min_items=100)
    assert dataset.unique == 20 and len(dataset) == 100  # upstream repeats small sets to >= 100 items
    ssl, spec, wav, phones = dataset[0]
    assert ssl.shape == (768, spec.shape[1]) and spec.shape[0] == 1025
    assert wav.shape[1] // 640 == spec.shape[1] and phones.dtype == torch.long
    batch = collate([dataset[i] for i in range(3)])
    assert batch["ssl"].shape[2] == batch["spec"].shape[2] and batch["ssl"].shape[2] % 2 == 0
    assert batch["spec_lengths"].tolist() == sorted(batch["spec_lengths"].tolist(), reverse=True)
