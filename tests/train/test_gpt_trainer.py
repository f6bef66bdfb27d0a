"""GPT trainer parts in-process: starting points, overrides, data filters, one optimiser step."""

from __future__ import annotations

import functools
import logging
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from app.data.experiment import TextRow, write_name2text, write_semantic
from app.models.upstream.gpt import load_gpt
from app.runconfig import GPTRunConfig
from app.train.gpt import GPTTrainError, build_model, export_config, forward_backward
from app.train.gpt_data import GPTDataset, collate
from tests.tts_data import TINY_GPT


def run_config(tmp_path: Path, exp_dir: Path, **changes) -> GPTRunConfig:
    cfg = GPTRunConfig(
        exp_name="voice",
        exp_dir=exp_dir,
        weights_dir=tmp_path / "GPT_weights",
        pretrained_s1=None,
        model=dict(TINY_GPT),
        num_workers=0,
        min_items_per_epoch=0,
    )
    return replace(cfg, **changes)


def test_pretrained_gpt_is_the_starting_point(tmp_path, tts_experiment, tts_pretrained) -> None:
    cfg = run_config(tmp_path, tts_experiment, pretrained_s1=tts_pretrained.s1, model={})
    model, upstream, source = build_model(cfg, None)
    assert source == str(tts_pretrained.s1)
    reference = load_gpt(tts_pretrained.s1).model
    for name, tensor in reference.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name
    exported = export_config(upstream, cfg)
    assert exported["model"] == upstream["model"] and exported["train"]["exp_name"] == "voice"
    assert exported["pretrained_s1"] == str(tts_pretrained.s1)
    with pytest.raises(GPTTrainError, match="fix"):
        build_model(replace(cfg, model={"n_layer": 3}), None)

    dataset = GPTDataset(tts_experiment, "v2", min_items=0)
    batch = collate([dataset[i] for i in range(4)], pad_code=model.config.eos)
    before = model.ar_predict_layer.weight.detach().clone()
    optim = torch.optim.AdamW(model.parameters(), 1e-3)
    parts = forward_backward(
        batch, model.train(), torch.amp.GradScaler("cuda", enabled=False), torch.device("cpu"), "fp32", 1
    )
    optim.step()
    assert parts["tokens"] == float((batch["code_lens"] + 1).sum())
    assert torch.isfinite(torch.tensor(parts["loss_sum"])) and not torch.equal(
        model.ar_predict_layer.weight, before
    )


def test_scratch_model_uses_the_version_table_and_overrides(tmp_path, tts_experiment, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        model, upstream, source = build_model(run_config(tmp_path, tts_experiment, version="v1"), None)
    assert source == "scratch" and "download_models.py gpt-sovits-v1" in caplog.text
    assert model.config.phoneme_vocab_size == 512 and model.config.dim == TINY_GPT["dim"]
    assert upstream["model"]["phoneme_vocab_size"] == 512
    with pytest.raises(GPTTrainError, match="not GPTConfig fields"):
        build_model(run_config(tmp_path, tts_experiment, model={"layers": 2}), None)
    with pytest.raises(GPTTrainError, match="multiple of n_head"):
        build_model(run_config(tmp_path, tts_experiment, model={"dim": 30, "n_head": 4}), None)


def test_dataset_filters_as_upstream(tmp_path, tts_experiment) -> None:
    exp = tmp_path / "voice"
    phones = ("HH", "AH0", "L", "OW1", ".")
    write_name2text(
        exp / "2-name2text.txt",
        [TextRow(n, phones, None, "Hello.") for n in ("ok.wav", "fast.wav", "slow.wav", "long.wav")]
        + [TextRow("zh.wav", ("n", "i2"), (2,), "你")],
    )
    write_semantic(
        exp / "6-name2semantic.tsv",
        [
            ("ok.wav", [1] * 25),  # 5 phones in 1 s: kept
            ("fast.wav", [1] * 4),  # 5 phones in 0.16 s = 31 per second: dropped
            ("slow.wav", [1] * 100),  # 5 phones in 4 s = 1.25 per second: dropped
            ("long.wav", [1] * (54 * 25 + 1)),  # over max_sec: dropped
            ("zh.wav", [2] * 10),  # 2 phones in 0.4 s: kept, with its BERT features
            ("orphan.wav", [1] * 25),  # no text row: dropped
        ],
    )
    (exp / "3-bert").mkdir()
    torch.save(torch.ones(1024, 2), exp / "3-bert" / "zh.wav.pt")
    dataset = GPTDataset(exp, "v2", min_items=0)
    assert [p.name for p in dataset.pairs] == ["ok.wav", "zh.wav"]
    assert dataset.left_out == {"no text row": 1, "too long": 1, "phones per second out of range": 2}
    batch = functools.partial(collate, pad_code=1024)([dataset[0], dataset[1]])
    assert batch["bert"][1].sum() == 2048 and batch["bert"][0].abs().sum() == 0
    assert batch["codes"][1, 10:].eq(1024).all() and batch["code_lens"].tolist() == [25, 10]
