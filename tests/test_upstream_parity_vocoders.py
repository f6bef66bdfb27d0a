"""Parity of the v3/v4 vocoders with upstream GPT-SoVITS on the fixtures in ``$UPSTREAM_FIXTURES``.

Fixtures (README section "SoVITS v4 and v3 (CFM + vocoder)"): every ``sovits_v3*_io.pt`` /
``sovits_v4*_io.pt`` holds, per run, the de-normalised mel upstream fed its vocoder and the audio
it got; the vocoder is named in the io file's ``meta.vocoder`` (LoRA io files: in their base's),
else it is the folder's ``vocoder_v4_tiny.pth`` / ``bigvgan_v3_tiny/``. Full-size layouts are in
``manifest_vocoder_v4.json`` and ``manifest_bigvgan_v3.json``. Sizes are read from the files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from app.models.nn.alias_free import DownSample1d, UpSample1d
from app.models.upstream.vocoder import (
    bigvgan_expected_shapes,
    load_bigvgan,
    load_v4_vocoder,
    read_bigvgan,
    read_bigvgan_config,
    read_v4_vocoder,
    v4_expected_shapes,
)
from app.models.vocoders.bigvgan import BIGVGAN_CONFIG_FILE, BigVGAN, BigVGANConfig
from app.models.vocoders.hifigan import HiFiGANVocoder, HiFiGANVocoderConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
AUDIO_ATOL = 1e-5  # README: v3/v4 `audio` atol 1e-5
# Where the vocoder is when an io file does not name it (README: this folder's files).
DEFAULT_VOCODERS = {"v4": "vocoder_v4_tiny.pth", "v3": "bigvgan_v3_tiny"}


def _fixture_dir() -> Path:
    """Same rule as the ``upstream_fixtures`` fixture, usable at collection time."""
    return Path(os.environ.get("UPSTREAM_FIXTURES") or REPO_ROOT.parent / "shared" / "fixtures" / "upstream")


IO_FILES = sorted(p.name for p in _fixture_dir().glob("sovits_v[34]*_io.pt"))
V4_FILES = sorted(p.name for p in _fixture_dir().glob("vocoder_v4*.pth"))
BIGVGAN_DIRS = sorted(
    p.name for p in _fixture_dir().glob("bigvgan_v3*") if (p / BIGVGAN_CONFIG_FILE).is_file()
)


def _load_io(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def _vocoder_path(folder: Path, io: dict) -> Path:
    """The vocoder file/folder an io file was computed with."""
    meta = io["meta"]
    named = meta.get("vocoder")
    if named is None and meta.get("base_checkpoint"):
        base_io = folder / f"{Path(meta['base_checkpoint']).stem}_io.pt"
        if base_io.is_file():
            named = _load_io(base_io)["meta"].get("vocoder")
    if named is None:
        return folder / DEFAULT_VOCODERS[io["version"]]
    return folder / (named.get("folder") or named["file"])


@pytest.fixture(scope="module", params=IO_FILES or [None], ids=IO_FILES or ["<no v3/v4 io files>"])
def vocoder_case(request: pytest.FixtureRequest, upstream_fixtures: Path):
    """(vocoder loaded as the app loads it, io dict) for one io file."""
    if request.param is None:
        pytest.skip(f"no sovits_v3*/v4*_io.pt under {upstream_fixtures}")
    io = _load_io(upstream_fixtures / request.param)
    path = _vocoder_path(upstream_fixtures, io)
    vocoder = load_bigvgan(path) if io["version"] == "v3" else load_v4_vocoder(path)
    return vocoder, io


def test_vocoder_fixtures_are_present() -> None:
    assert IO_FILES and V4_FILES and BIGVGAN_DIRS, f"v3/v4 vocoder fixtures missing under {_fixture_dir()}"


def test_vocoder_audio_equals_upstream(vocoder_case) -> None:
    vocoder, io = vocoder_case
    expected_type = BigVGAN if io["version"] == "v3" else HiFiGANVocoder
    assert isinstance(vocoder, expected_type)
    assert io["runs"], "io file without runs"
    for name, run in io["runs"].items():
        assert run["audio_sr"] == vocoder.sample_rate, name
        mel = run["mel"]
        with torch.inference_mode():
            out = vocoder(mel)
        assert out.shape == (1, 1, mel.shape[-1] * vocoder.hop_length), name
        raw = out[0, 0]
        # Upstream divides by the peak only when it exceeds 1 (inference_webui.py, "16-bit clipping").
        peak = raw.abs().max()
        audio = raw / peak if peak > 1 else raw
        assert bool(peak > 1) == bool(run["audio_was_peak_normalized"]), name
        if run["audio_was_peak_normalized"]:
            torch.testing.assert_close(raw, run["vocoder_out"].reshape(-1), atol=AUDIO_ATOL, rtol=0)
        torch.testing.assert_close(
            audio, run["audio"], atol=AUDIO_ATOL, rtol=0, msg=lambda m, n=name: f"{n}: {m}"
        )


@pytest.mark.parametrize("name", V4_FILES or ["<none>"])
def test_v4_vocoder_file_shape_is_read_from_its_tensors(upstream_fixtures: Path, name: str) -> None:
    if not V4_FILES:
        pytest.skip("no vocoder_v4*.pth")
    config, state = read_v4_vocoder(upstream_fixtures / name)
    assert config.hop_length == 480 and config.sample_rate == 48000
    # The io files that name this vocoder record upstream's constructor arguments.
    for io_name in IO_FILES:
        meta = _load_io(upstream_fixtures / io_name)["meta"].get("vocoder") or {}
        if meta.get("file") == name and "constructor" in meta:
            c = meta["constructor"]
            assert (config.num_mels, config.upsample_initial_channel) == (
                c["initial_channel"],
                c["upsample_initial_channel"],
            )
            assert list(config.upsample_rates) == c["upsample_rates"]
            assert list(config.upsample_kernel_sizes) == c["upsample_kernel_sizes"]
            assert [list(d) for d in config.resblock_dilation_sizes] == c["resblock_dilation_sizes"]
            assert c["gin_channels"] == 0 and c["is_bias"] is True and "conv_post.bias" in state


@pytest.mark.parametrize("name", BIGVGAN_DIRS or ["<none>"])
def test_bigvgan_file_filters_equal_the_kaiser_design(upstream_fixtures: Path, name: str) -> None:
    """The file stores the resampling filters; ours, designed from scratch, must be the same numbers."""
    if not BIGVGAN_DIRS:
        pytest.skip("no bigvgan_v3* folders")
    file = read_bigvgan(upstream_fixtures / name)
    assert file.weight_norm  # NVIDIA's release layout
    up, down = UpSample1d().filter, DownSample1d().lowpass.filter
    filters = {k: v for k, v in file.state_dict.items() if k.endswith(".filter")}
    assert filters
    for key, value in filters.items():
        torch.testing.assert_close(value, up if key.endswith("upsample.filter") else down, atol=1e-7, rtol=0)


def _manifest(upstream_fixtures: Path, name: str) -> dict:
    path = upstream_fixtures / name
    if not path.is_file():
        pytest.skip(f"{name} not in {upstream_fixtures}")
    return json.loads(path.read_text(encoding="utf-8"))


def _layout(factory_shapes: dict[str, torch.Size]) -> dict[str, list[int]]:
    return {k: list(v) for k, v in factory_shapes.items()}


def test_v4_vocoder_full_size_equals_the_manifest(upstream_fixtures: Path) -> None:
    manifest = _manifest(upstream_fixtures, "manifest_vocoder_v4.json")
    c = manifest["constructor"]
    config = HiFiGANVocoderConfig()  # upstream's hard-coded values are the defaults
    assert (config.num_mels, config.upsample_initial_channel, config.resblock) == (
        c["initial_channel"],
        c["upsample_initial_channel"],
        c["resblock"],
    )
    assert list(config.resblock_kernel_sizes) == c["resblock_kernel_sizes"]
    assert [list(d) for d in config.resblock_dilation_sizes] == c["resblock_dilation_sizes"]
    assert list(config.upsample_rates) == c["upsample_rates"]
    assert list(config.upsample_kernel_sizes) == c["upsample_kernel_sizes"]
    assert c["gin_channels"] == 0 and c["is_bias"] is True
    shapes = v4_expected_shapes(config)  # what read_v4_vocoder demands of a file
    assert _layout(shapes) == {k: v["shape"] for k, v in manifest["keys"].items()}
    assert len(shapes) == manifest["n_tensors"]
    assert sum(s.numel() for s in shapes.values()) == manifest["n_params"]
    assert {v["dtype"] for v in manifest["keys"].values()} == {"float32"}


def test_bigvgan_full_size_equals_the_manifest(upstream_fixtures: Path, tmp_path: Path) -> None:
    manifest = _manifest(upstream_fixtures, "manifest_bigvgan_v3.json")
    config_path = tmp_path / BIGVGAN_CONFIG_FILE
    config_path.write_text(json.dumps(manifest["config_json"]), encoding="utf-8")
    config = read_bigvgan_config(config_path)
    assert config == BigVGANConfig()  # the defaults are the released 24 kHz model
    assert (config.sampling_rate, config.hop_size) == (24000, 256)
    shapes = bigvgan_expected_shapes(config, True)  # the file keeps weight norm
    assert _layout(shapes) == {k: v["shape"] for k, v in manifest["keys"].items()}
    assert len(shapes) == manifest["n_tensors"]
    assert sum(s.numel() for s in shapes.values()) == manifest["n_params"]  # filters counted too
