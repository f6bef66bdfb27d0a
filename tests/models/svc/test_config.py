"""config.json sections: exact round trip, older layouts, and refused options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.models.svc.config import SvcConfig, SvcConfigError


def test_fixture_config_round_trips_exactly(upstream_fixtures: Path) -> None:
    text = (upstream_fixtures / "svc41_tiny" / "config.json").read_text()
    data = json.loads(text)
    config = SvcConfig.from_json(data)
    assert config.to_json() == data
    assert json.dumps(config.to_json(), indent=2) == json.dumps(data, indent=2)  # key order too
    assert config.model.hidden_channels == data["model"]["hidden_channels"]
    assert config.spk == data["spk"]


def test_innnky_32k_config_keeps_its_subset_and_reads_as_hubertsoft(upstream_fixtures: Path) -> None:
    manifest = json.loads((upstream_fixtures / "manifest_svc_innnky32k.json").read_text())
    data = {s: {k: v["value"] for k, v in d.items()} for s, d in manifest["config_structure"].items()}
    config = SvcConfig.from_json(data)
    assert config.to_json() == data  # no 4.1 keys invented on write
    assert "speech_encoder" in config.model.absent
    assert config.speech_encoder == "hubertsoft"
    net = config.synthesizer("legacy32k")
    assert (net.n_layers, net.kernel_size, net.sampling_rate, net.hop_length) == (16, 5, 32000, 320)


def test_40_config_without_speech_encoder_means_vec256l9(upstream_fixtures: Path) -> None:
    data = json.loads((upstream_fixtures / "svc41_tiny" / "config.json").read_text())
    del data["model"]["speech_encoder"]
    assert SvcConfig.from_json(data).speech_encoder == "vec256l9"


def test_unknown_keys_are_kept(upstream_fixtures: Path) -> None:
    data = json.loads((upstream_fixtures / "svc41_tiny" / "config.json").read_text())
    data["model"]["future_option"] = [1, 2]
    data["train"]["note"] = "x"
    data["diffusion"] = {"k": 1}
    assert SvcConfig.from_json(data).to_json() == data


def test_synthesizer_config_follows_the_model_section(upstream_fixtures: Path) -> None:
    data = json.loads((upstream_fixtures / "svc41_tiny" / "config.json").read_text())
    net = SvcConfig.from_json(data).synthesizer()
    assert net.variant == "sovits41"
    assert net.hop_length == data["data"]["hop_length"]
    assert net.spec_channels == data["data"]["filter_length"] // 2 + 1
    assert net.segment_frames == data["train"]["segment_size"] // data["data"]["hop_length"]
    assert net.upsample_rates == tuple(data["model"]["upsample_rates"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("model"), "no 'model' section"),
        (lambda d: d.update(spk={"a": "zero"}), "integer ids"),
        (lambda d: d["model"].update(use_depthwise_conv=True), "use_depthwise_conv"),
        (lambda d: d["model"].update(use_transformer_flow=True), "use_transformer_flow"),
        (lambda d: d["model"].update(vocoder_name="nsf-snake-hifigan"), "nsf-snake-hifigan"),
    ],
)
def test_bad_or_unsupported_configs_are_named(upstream_fixtures: Path, change, message: str) -> None:
    data = json.loads((upstream_fixtures / "svc41_tiny" / "config.json").read_text())
    change(data)
    with pytest.raises(SvcConfigError, match=message):
        SvcConfig.from_json(data).synthesizer()
