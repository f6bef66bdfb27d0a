"""Upstream GPT .ckpt files: write/read round trip, layouts, kinds, versions, corrupt and malicious files."""

from __future__ import annotations

import io
import os
import pathlib
import pickle
import re
import zipfile
from pathlib import Path

import pytest
import torch

from app.models.checkpoint import save_checkpoint
from app.models.gpt import SamplingOptions, decode
from app.models.gpt.config import GPTConfig
from app.models.gpt.model import GPT
from app.models.upstream.gpt import (
    GPTFileError,
    default_config,
    gpt_version,
    gpt_weights,
    load_gpt,
    read_gpt_file,
    save_gpt,
)
from tests.models.gpt.tiny import tiny_gpt, tiny_inputs


def _fp16_rounded(model: GPT) -> GPT:
    """The model as a file stores it: every weight rounded to fp16 and back."""
    copy = GPT(model.config)
    copy.load_state_dict({k: v.half().float() for k, v in model.state_dict().items()})
    return copy.eval()


def _outputs(model: GPT) -> tuple[torch.Tensor, list[int]]:
    phones, bert, prompt = tiny_inputs(model, 7, 5, seed=3)
    cache = model.new_cache(1, 12)
    with torch.inference_mode():
        logits = model.prefill(cache, phones, bert, prompt)
    tokens = decode(model, phones, bert, prompt, SamplingOptions(seed=4, max_new_tokens=20)).tokens[0]
    return logits, tokens.tolist()


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_write_read_round_trip_gives_identical_outputs(version: str, tmp_path: Path) -> None:
    model = tiny_gpt(version, seed=5)
    path = save_gpt(model, tmp_path / "GPT_weights" / "voice-e7.ckpt", epoch=7, exp_name="voice")
    record = load_gpt(path, expect_version=version)
    assert record.version == version
    assert record.info == "GPT-e7"
    assert record.max_sec == 54
    assert record.config["train"]["exp_name"] == "voice"
    logits, tokens = _outputs(record.model)
    want_logits, want_tokens = _outputs(_fp16_rounded(model))
    assert torch.equal(logits, want_logits)
    assert tokens == want_tokens
    # and the rounding is the only change: the loaded weights are the fp16 values exactly
    for name, tensor in record.model.state_dict().items():
        assert torch.equal(tensor, model.state_dict()[name].half().float()), name


def test_written_file_has_upstreams_layout(tmp_path: Path, upstream_fixtures: Path) -> None:
    model = tiny_gpt("v2")
    path = save_gpt(model, tmp_path / "a-e3.ckpt", epoch=3)
    assert zipfile.is_zipfile(path)  # a plain torch.save zip, no magic bytes
    ours = torch.load(path, weights_only=True)
    theirs = torch.load(upstream_fixtures / "gpt_v2_tiny.ckpt", weights_only=True)
    assert list(ours) == list(theirs) == ["weight", "config", "info"]
    assert ours["info"] == "GPT-e3"
    assert all(t.dtype == torch.float16 for t in ours["weight"].values())
    assert list(ours["weight"]) == list(theirs["weight"])  # same names and order

    def tree(d: dict) -> dict:
        return {k: tree(v) if isinstance(v, dict) else type(v).__name__ for k, v in d.items()}

    assert tree(ours["config"]) == tree(theirs["config"])
    assert ours["config"]["model"] == model.config.to_upstream()
    # what upstream reads at inference
    assert ours["config"]["model"]["embedding_dim"] == ours["config"]["model"]["hidden_dim"]
    assert ours["config"]["model"]["linear_units"] == 4 * ours["config"]["model"]["hidden_dim"]


def test_save_keeps_the_given_config_sections(tmp_path: Path) -> None:
    model = tiny_gpt("v1")
    base = default_config(GPTConfig(phoneme_vocab_size=512), exp_name="old")
    base["data"]["max_sec"] = 30
    path = save_gpt(model, tmp_path / "x.ckpt", epoch=1, config=base)
    record = load_gpt(path)
    assert record.max_sec == 30
    assert record.config["model"] == model.config.to_upstream()  # the model section follows the model
    assert base["model"]["hidden_dim"] == 512  # the caller's dict is not modified


def test_failed_write_leaves_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny_gpt()
    path = save_gpt(model, tmp_path / "w.ckpt", epoch=1)
    before = path.read_bytes()

    def broken_save(obj: object, fh: io.BufferedWriter) -> None:
        fh.write(b"PK partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_gpt(model, path, epoch=2)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["w.ckpt"]


def test_lightning_training_checkpoint_with_paths_loads(tmp_path: Path) -> None:
    model = tiny_gpt("v2", seed=2)
    payload = {
        "epoch": 4,
        "global_step": 120,
        "pytorch-lightning_version": "2.4.0",
        "state_dict": gpt_weights(model),
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 0.002, "betas": (0.9, 0.95)}]}],
        "hyper_parameters": {
            "config": default_config(model.config),
            "output_dir": pathlib.PurePosixPath("logs/voice/logs_s1_v2"),
            "is_train": True,
        },
    }
    # pathlib pickles as "pathlib.PurePosixPath" (or PosixPath): read back as text, nothing built
    path = tmp_path / "epoch=4-step=120.ckpt"
    torch.save(payload, path)
    record = load_gpt(path)
    assert record.info == "GPT-e5"
    torch.testing.assert_close(record.model.state_dict(), _fp16_rounded(model).state_dict(), rtol=0, atol=0)


def test_version_rule_and_wrong_version(tmp_path: Path) -> None:
    assert gpt_version({"phoneme_vocab_size": 512}) == "v1"
    assert gpt_version({"phoneme_vocab_size": 732}) == "v2"
    with pytest.raises(GPTFileError, match="matches no GPT-SoVITS version"):
        gpt_version({"phoneme_vocab_size": 600})
    path = save_gpt(tiny_gpt("v1"), tmp_path / "v1.ckpt", epoch=1)
    with pytest.raises(GPTFileError, match=r"v1\.ckpt: this is a v1 GPT .* but a v2 GPT was expected"):
        load_gpt(path, expect_version="v2")


def test_inconsistent_files_are_refused(tmp_path: Path) -> None:
    model = tiny_gpt("v2")
    payload = {"weight": gpt_weights(model), "config": default_config(model.config), "info": "GPT-e1"}
    payload["config"]["model"]["phoneme_vocab_size"] = 512  # config says v1, weights are v2
    torch.save(payload, tmp_path / "mismatch.ckpt")
    with pytest.raises(GPTFileError, match=r"mismatch\.ckpt: config says phoneme_vocab_size 512 but"):
        load_gpt(tmp_path / "mismatch.ckpt")

    payload = {"weight": dict(gpt_weights(model)), "config": default_config(model.config)}
    payload["weight"].pop("model.ar_predict_layer.weight")
    torch.save(payload, tmp_path / "missing.ckpt")
    with pytest.raises(GPTFileError, match=r"missing \['ar_predict_layer.weight'\]"):
        load_gpt(tmp_path / "missing.ckpt")

    payload = {"weight": {k.removeprefix("model."): v for k, v in gpt_weights(model).items()}, "config": {}}
    torch.save(payload, tmp_path / "noprefix.ckpt")
    with pytest.raises(GPTFileError, match=r"lacks the 'model\.' prefix"):
        read_gpt_file(tmp_path / "noprefix.ckpt")

    cfg = default_config(model.config)
    cfg["model"]["embedding_dim"] = 16
    torch.save({"weight": gpt_weights(model), "config": cfg}, tmp_path / "dims.ckpt")
    with pytest.raises(GPTFileError, match="embedding_dim 16 != hidden_dim"):
        load_gpt(tmp_path / "dims.ckpt")


def test_truncated_corrupt_and_missing_files(tmp_path: Path, upstream_fixtures: Path) -> None:
    good = (upstream_fixtures / "gpt_v2_tiny.ckpt").read_bytes()
    cases = {
        "truncated.ckpt": good[: len(good) // 2],
        "empty.ckpt": b"",
        "text.ckpt": b'{"not": "a checkpoint"}',
        # zip directory intact, pickle bytes overwritten with garbage
        "corrupt.ckpt": good.replace(b"weight", b"w\x00\xff\x13\x07t", 1)[:200]
        + bytes(range(256)) * 4
        + good[200 + 1024 :],
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(GPTFileError, match=re.escape(name)):
            load_gpt(tmp_path / name)
    with pytest.raises(GPTFileError, match="no such file"):
        load_gpt(tmp_path / "absent.ckpt")


def test_other_kinds_are_named(tmp_path: Path, upstream_fixtures: Path) -> None:
    sovits = upstream_fixtures / "sovits_v2_tiny.pth"
    if sovits.is_file():
        with pytest.raises(GPTFileError, match="SoVITS"):
            load_gpt(sovits)
        tagged = tmp_path / "pro.pth"
        tagged.write_bytes(b"05" + sovits.read_bytes()[2:])  # how upstream writes v2Pro files
        with pytest.raises(GPTFileError, match="version tag '05' of an upstream SoVITS"):
            load_gpt(tagged)
    svc = upstream_fixtures / "svc41_tiny" / "G_0.pth"
    if svc.is_file():
        with pytest.raises(GPTFileError, match="so-vits-svc"):
            load_gpt(svc)
    # synthetic stand-ins, so the checks run whatever fixtures are present
    torch.save({"model": {"w": torch.zeros(1)}, "iteration": 3, "learning_rate": 1e-4}, tmp_path / "G_3.pth")
    with pytest.raises(GPTFileError, match=r"G_3\.pth: looks like a so-vits-svc"):
        load_gpt(tmp_path / "G_3.pth")
    torch.save(
        {"weight": {"enc_p.proj.weight": torch.zeros(1)}, "config": {}, "info": "1epoch"}, tmp_path / "s.pth"
    )
    with pytest.raises(GPTFileError, match="SoVITS"):
        load_gpt(tmp_path / "s.pth")
    model = tiny_gpt()
    ours = save_checkpoint(tmp_path / "ours.pt", kind="gpt", model=model, model_config=model.config, step=1)
    with pytest.raises(GPTFileError, match="SoVITS Studio training checkpoint"):
        load_gpt(ours)


class _CreatesFile:
    """A pickle payload that creates ``path`` when unpickled by an unrestricted loader."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_malicious_pickle_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    model = tiny_gpt()
    payload = {
        "weight": gpt_weights(model),
        "config": default_config(model.config),
        "info": _CreatesFile(marker),
    }
    bad = tmp_path / "evil.ckpt"
    torch.save(payload, bad)
    with pytest.raises(GPTFileError, match=r"evil\.ckpt: refused to load"):
        load_gpt(bad)
    assert not marker.exists()
    # a bare pickle (legacy torch format) is refused too
    raw = tmp_path / "evil_raw.ckpt"
    raw.write_bytes(pickle.dumps({"weight": {}, "config": _CreatesFile(marker)}, protocol=2))
    with pytest.raises(GPTFileError, match=r"evil_raw\.ckpt"):
        load_gpt(raw)
    assert not marker.exists()
    # the payload is real: an unrestricted load runs it
    torch.load(bad, weights_only=False)
    assert marker.exists()
    os.remove(marker)
