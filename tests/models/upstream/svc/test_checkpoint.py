"""so-vits-svc G_*.pth files: load the fixture, write files upstream loads, refuse foreign files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from app.models.svc.config import SvcConfigError
from app.models.svc.noise import ZeroNoise
from app.models.upstream.safe_pickle import CheckpointError
from app.models.upstream.svc.checkpoint import (
    TRAINING_KEYS,
    load_svc,
    read_config,
    read_svc,
    write_config,
    write_svc,
)


@pytest.fixture(scope="module")
def fixture_dir(upstream_fixtures: Path) -> Path:
    return upstream_fixtures / "svc41_tiny"


@pytest.fixture(scope="module")
def loaded(fixture_dir: Path):
    return load_svc(fixture_dir / "G_0.pth")


@pytest.fixture(scope="module")
def sample(upstream_fixtures: Path) -> dict:
    io = torch.load(upstream_fixtures / "svc41_tiny_io.pt", weights_only=True)
    inputs = io["inputs"]
    # a short slice keeps the decoder cheap
    return {
        "c": inputs["c"][..., :16],
        "f0": inputs["f0"][:, :16],
        "uv": inputs["uv"][:, :16],
        "sid": inputs["sid"],
    }


def audio_of(model, sample: dict) -> torch.Tensor:
    return model.infer(**sample, noise=ZeroNoise()).audio


def test_fixture_loads_cleanly(loaded, fixture_dir: Path) -> None:
    assert loaded.report.clean
    assert loaded.file.variant == "sovits41" and not loaded.file.compressed
    assert loaded.file.iteration == 0 and loaded.file.learning_rate == pytest.approx(1e-4)
    assert not loaded.model.training
    assert loaded.config.to_json() == json.loads((fixture_dir / "config.json").read_text())


def test_training_file_round_trip_gives_the_same_outputs(loaded, sample: dict, tmp_path: Path) -> None:
    out = write_svc(tmp_path / "G_100.pth", loaded.model, loaded.config, iteration=7)
    raw = torch.load(out, weights_only=True)  # what upstream's torch.load sees
    assert list(raw) == list(TRAINING_KEYS) and raw["iteration"] == 7
    assert list(raw["model"]) == list(loaded.file.state_dict)
    for key, value in loaded.file.state_dict.items():
        assert torch.equal(raw["model"][key], value), key
    # a fresh AdamW state over every parameter, as compress_model.py writes
    assert raw["optimizer"]["state"] == {}
    assert len(raw["optimizer"]["param_groups"][0]["params"]) == len(list(loaded.model.parameters()))
    again = load_svc(out)
    assert again.report.clean and again.file.iteration == 7
    assert torch.equal(audio_of(again.model, sample), audio_of(loaded.model, sample))
    assert read_config(tmp_path / "config.json").to_json() == loaded.config.to_json()


def test_optimizer_layout_matches_upstream_manifest(loaded, upstream_fixtures: Path, tmp_path: Path) -> None:
    manifest = json.loads((upstream_fixtures / "manifest_svc41.json").read_text())
    raw = torch.load(write_svc(tmp_path / "G_1.pth", loaded.model, loaded.config), weights_only=True)
    assert sorted(raw["optimizer"]["param_groups"][0]) == manifest["optimizer_param_group_keys"]


def test_compressed_half_file_drops_enc_q_and_still_converts(loaded, sample: dict, tmp_path: Path) -> None:
    out = write_svc(tmp_path / "G_release_half.pth", loaded.model, loaded.config, compress=True, half=True)
    file = read_svc(out)
    assert file.compressed and file.iteration == 0
    assert not any(k.startswith("enc_q.") for k in file.state_dict)
    assert {v.dtype for v in file.state_dict.values() if v.is_floating_point()} == {torch.float16}
    small = load_svc(out)
    assert small.report.missing and all(k.startswith("enc_q.") for k in small.report.missing)
    assert small.model.emb_g.weight.dtype == torch.float32  # exact upcast
    torch.testing.assert_close(
        audio_of(small.model, sample), audio_of(loaded.model, sample), atol=5e-3, rtol=0
    )


def test_config_with_other_shapes_is_refused_with_the_keys(fixture_dir: Path, tmp_path: Path) -> None:
    shutil.copy(fixture_dir / "G_0.pth", tmp_path / "G_0.pth")
    config = read_config(fixture_dir / "config.json")
    config.model.n_layers = 3
    write_config(config, tmp_path / "config.json")
    with pytest.raises(
        CheckpointError, match=r"missing \['enc_p\.enc_\.attn_layers\.2.*config\.json is the one"
    ):
        load_svc(tmp_path / "G_0.pth")


def test_speaker_count_change_is_allowed_for_training_only(fixture_dir: Path, tmp_path: Path) -> None:
    config = read_config(fixture_dir / "config.json")
    config.model.n_speakers = 5
    config.spk = {f"s{i}": i for i in range(5)}
    with pytest.raises(CheckpointError, match=r"emb_g\.weight: file"):
        load_svc(fixture_dir / "G_0.pth", config)
    base = load_svc(fixture_dir / "G_0.pth", config, purpose="training")
    assert base.report.mismatched[0].startswith("emb_g.weight")
    assert base.model.emb_g.weight.shape[0] == 5


def test_missing_config_beside_the_model(fixture_dir: Path, tmp_path: Path) -> None:
    shutil.copy(fixture_dir / "G_0.pth", tmp_path / "G_0.pth")
    with pytest.raises(SvcConfigError, match=r"config\.json: config file not found"):
        load_svc(tmp_path / "G_0.pth")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("sovits_v2_tiny.pth", "GPT-SoVITS SoVITS model"),
        ("gpt_v2_tiny.ckpt", r"GPT-SoVITS GPT \(s1\)"),
        ("svc41_tiny/config.json", "not a PyTorch checkpoint"),
    ],
)
def test_foreign_files_are_named(upstream_fixtures: Path, name: str, message: str) -> None:
    with pytest.raises(CheckpointError, match=message) as info:
        read_svc(upstream_fixtures / name)
    assert name.split("/")[-1] in str(info.value)


def test_discriminator_truncated_and_empty_files(fixture_dir: Path, tmp_path: Path) -> None:
    disc = tmp_path / "D_0.pth"
    torch.save({"model": {"discriminators.0.conv_post.bias": torch.zeros(1)}, "iteration": 0}, disc)
    with pytest.raises(CheckpointError, match=r"discriminator checkpoint \(D_\*\.pth\)"):
        read_svc(disc)
    cut = tmp_path / "G_cut.pth"
    cut.write_bytes((fixture_dir / "G_0.pth").read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=r"G_cut\.pth: cannot be read"):
        read_svc(cut)
    with pytest.raises(CheckpointError, match="no such file"):
        read_svc(tmp_path / "G_missing.pth")
    other = tmp_path / "weights.pth"
    torch.save({"model": {"encoder.layer.0.weight": torch.zeros(2)}}, other)
    with pytest.raises(CheckpointError, match="not a so-vits-svc generator"):
        read_svc(other)


def test_legacy_32k_file_is_detected_and_round_trips(upstream_fixtures: Path, tmp_path: Path) -> None:
    manifest = json.loads((upstream_fixtures / "manifest_svc_innnky32k.json").read_text())
    data = {s: {k: v["value"] for k, v in d.items()} for s, d in manifest["config_structure"].items()}
    data["model"].update(hidden_channels=16, inter_channels=8, filter_channels=16, gin_channels=256)
    from app.models.svc.config import SvcConfig
    from app.models.svc.synthesizer import SvcSynthesizer

    config = SvcConfig.from_json(data)
    torch.manual_seed(0)
    model = SvcSynthesizer(config.synthesizer("legacy32k")).eval()
    path = write_svc(tmp_path / "G_1000.pth", model, config, iteration=3)
    loaded = load_svc(path)
    assert loaded.file.variant == "legacy32k" and loaded.report.clean
    assert json.loads((tmp_path / "config.json").read_text()) == data  # no 4.1 keys added
    c, f0 = torch.randn(1, 256, 4), torch.full((1, 4), 300.0)
    expected = model.infer(c, f0, sid=1, noise=ZeroNoise()).audio
    torch.testing.assert_close(loaded.model.infer(c, f0, sid=1, noise=ZeroNoise()).audio, expected)
