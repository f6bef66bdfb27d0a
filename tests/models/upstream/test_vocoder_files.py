"""Upstream vocoder files: v4 ``vocoder.pth`` and the BigVGAN folder, read strictly and safely."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
import torch

from app.models.nn.hifigan import HiFiGANGenerator
from app.models.nn.norm import fold_weight_norm_state
from app.models.upstream.safe_pickle import CheckpointError, UnsafePickleError
from app.models.upstream.vocoder import (
    load_bigvgan,
    load_v4_vocoder,
    load_vocoder,
    read_bigvgan,
    read_bigvgan_config,
    read_v4_vocoder,
)
from app.models.vocoders import VOCODER_PATHS
from app.models.vocoders.bigvgan import BigVGAN, BigVGANConfig
from app.models.vocoders.hifigan import HiFiGANVocoder, HiFiGANVocoderConfig

# Upstream's v4 layout with a narrow first stage (the fixture's tiny size).
TINY_V4 = HiFiGANVocoderConfig(upsample_initial_channel=32)
TINY_BIGVGAN_JSON = {
    "resblock": "1",
    "num_gpus": 0,
    "upsample_rates": [4, 2],
    "upsample_kernel_sizes": [8, 4],
    "upsample_initial_channel": 16,
    "resblock_kernel_sizes": [3, 5],
    "resblock_dilation_sizes": [[1, 3], [1, 3]],
    "use_tanh_at_final": False,
    "use_bias_at_final": False,
    "activation": "snakebeta",
    "snake_logscale": True,
    "num_mels": 8,
    "n_fft": 64,
    "hop_size": 8,
    "win_size": 64,
    "sampling_rate": 8000,
    "fmin": 0,
    "fmax": None,
    "dist_config": {"dist_backend": "nccl", "dist_url": "tcp://localhost:54321", "world_size": 1},
}


class _CreatesFile:
    """Unpickling this would call builtins.open(target, "w") and create the file."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


def _perturbed(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not name.endswith("filter"):
                tensor.add_(torch.randn(tensor.shape, generator=gen) * 0.1)
    return model.state_dict()


def _save(obj, path: Path) -> Path:
    torch.save(obj, path)
    return path


@pytest.fixture(scope="module")
def v4_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return _perturbed(HiFiGANVocoder(TINY_V4), 1)


@pytest.fixture
def v4_file(tmp_path: Path, v4_state) -> Path:
    return _save(v4_state, tmp_path / "vocoder.pth")


@pytest.fixture(scope="module")
def bigvgan_state() -> dict[str, torch.Tensor]:
    """Weight-normalised generator weights of the tiny config (NVIDIA's file layout)."""
    torch.manual_seed(0)
    config = BigVGANConfig(
        **{k: v for k, v in TINY_BIGVGAN_JSON.items() if k in BigVGANConfig.__dataclass_fields__}
    )
    return _perturbed(BigVGAN(config, weight_norm=True), 2)


def _bigvgan_dir(root: Path, state, config: dict | None = None, name: str = "bigvgan") -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config or TINY_BIGVGAN_JSON), encoding="utf-8")
    torch.save({"generator": state}, folder / "bigvgan_generator.pt")
    return folder


# ------------------------------------------------------------------------------------------- v4


def test_v4_file_loads_strictly_in_eval(v4_file: Path, v4_state) -> None:
    config, state = read_v4_vocoder(v4_file)
    assert config == TINY_V4 and list(state) == list(v4_state)
    model = load_v4_vocoder(v4_file)
    assert isinstance(model, HiFiGANVocoder) and not model.training
    assert not any(p.requires_grad for p in model.parameters())
    for key, value in model.state_dict().items():
        assert torch.equal(value, v4_state[key]), key
    mel = torch.randn(1, 100, 3)
    with torch.no_grad():
        audio = model(mel)
    assert audio.shape == (1, 1, 3 * 480)
    half = load_v4_vocoder(v4_file, dtype=torch.float16)
    assert half.conv_post.weight.dtype == torch.float16


def test_v4_missing_file_says_where_it_belongs(tmp_path: Path) -> None:
    with pytest.raises(
        CheckpointError, match=r"no such file.*pretrained_models/gsv-v4-pretrained/vocoder\.pth"
    ):
        read_v4_vocoder(tmp_path / "vocoder.pth")


def test_v4_truncated_or_not_a_checkpoint(tmp_path: Path, v4_file: Path) -> None:
    data = v4_file.read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pth.*truncated or corrupt"):
        read_v4_vocoder(cut)
    text = tmp_path / "notes.pth"
    text.write_text("hello world")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        read_v4_vocoder(text)
    tiny = tmp_path / "tiny.pth"
    tiny.write_bytes(b"PK")
    with pytest.raises(CheckpointError, match="too short"):
        read_v4_vocoder(tiny)


def test_v4_wrong_shapes_missing_and_extra_keys(tmp_path: Path, v4_state) -> None:
    wrong = dict(v4_state)
    wrong["ups.2.weight"] = torch.zeros(3, 3, 3)
    with pytest.raises(
        CheckpointError, match=r"wrong shapes: \['ups\.2\.weight \(3, 3, 3\) != \(8, 4, 4\)'\]"
    ):
        read_v4_vocoder(_save(wrong, tmp_path / "a.pth"))
    missing = {k: v for k, v in v4_state.items() if k != "conv_post.bias"}
    with pytest.raises(CheckpointError, match=r"missing 1 keys \(e\.g\. \['conv_post\.bias'\]\)"):
        read_v4_vocoder(_save(missing, tmp_path / "b.pth"))
    extra = {**v4_state, "cond.weight": torch.zeros(32, 4, 1)}
    with pytest.raises(CheckpointError, match=r"c\.pth: weights do not fit.*unexpected 1 keys"):
        read_v4_vocoder(_save(extra, tmp_path / "c.pth"))
    ints = {**v4_state, "conv_post.bias": torch.zeros(1, dtype=torch.int64)}
    with pytest.raises(CheckpointError, match="must be floating point"):
        read_v4_vocoder(_save(ints, tmp_path / "d.pth"))


def test_v4_refuses_foreign_files(tmp_path: Path, bigvgan_state) -> None:
    cases = {
        "sovits.pth": (
            {"weight": {"enc_p.proj.weight": torch.zeros(2)}, "config": {}, "info": "x"},
            "SoVITS",
        ),
        "gpt.ckpt": ({"weight": {"model.ar_predict_layer.weight": torch.zeros(2)}, "config": {}}, "GPT"),
        "bigvgan.pt": ({"generator": bigvgan_state}, "BigVGAN"),
        "bare_bigvgan.pt": (dict(bigvgan_state), "BigVGAN"),
        "sv.ckpt": (
            {"conv1.weight": torch.zeros(2), "layer1.0.conv1.weight": torch.zeros(2)},
            "speaker-verification",
        ),
        "G_0.pth": ({"model": {"emb_g.weight": torch.zeros(2)}, "iteration": 0}, "so-vits-svc"),
        "list.pth": ([torch.zeros(2)], "found a pickled list"),
        "mixed.pth": ({"conv_pre.weight": torch.zeros(2), "step": 3}, "not named tensors"),
        "other.pth": ({"encoder.weight": torch.zeros(2)}, r"no 3-dimensional 'conv_pre\.weight'"),
    }
    for name, (obj, message) in cases.items():
        with pytest.raises(CheckpointError, match=message):
            read_v4_vocoder(_save(obj, tmp_path / name))
    # A weight-normalised generator (saved before remove_weight_norm) is not what upstream loads.
    wn = HiFiGANGenerator(
        100, "1", [3, 7, 11], [[1, 3, 5]] * 3, [10, 6, 2, 2, 2], 32, [20, 12, 4, 4, 4], 0, True
    )
    with pytest.raises(CheckpointError, match="weight-normalised"):
        read_v4_vocoder(_save(wn.state_dict(), tmp_path / "wn.pth"))
    # SoVITS exports with upstream's header bytes instead of "PK".
    buf = io.BytesIO()
    torch.save({"weight": {}}, buf)
    header = tmp_path / "v2pro.pth"
    header.write_bytes(b"05" + buf.getvalue()[2:])
    with pytest.raises(CheckpointError, match=r"v2Pro SoVITS model file \(header '05'\)"):
        read_v4_vocoder(header)


def test_v4_malicious_pickle_is_refused_unrun(tmp_path: Path, v4_state) -> None:
    target = tmp_path / "pwned.txt"
    path = _save({**v4_state, "payload": _CreatesFile(target)}, tmp_path / "evil.pth")
    with pytest.raises(UnsafePickleError, match=r"evil\.pth.*'(builtins|io)\.open'"):
        load_v4_vocoder(path)
    assert not target.exists()


# ------------------------------------------------------------------------------------------- v3


def test_bigvgan_folder_loads_with_weight_norm_removed(tmp_path: Path, bigvgan_state) -> None:
    folder = _bigvgan_dir(tmp_path, bigvgan_state)
    file = read_bigvgan(folder)
    assert file.weight_norm and file.config.hop_size == 8 and file.config.sampling_rate == 8000
    model = load_bigvgan(folder)
    assert isinstance(model, BigVGAN) and not model.training
    assert not any(k.endswith("weight_g") for k in model.state_dict())
    assert not any(p.requires_grad for p in model.parameters())
    reference = BigVGAN(file.config, weight_norm=True)
    reference.load_state_dict(bigvgan_state, strict=True)
    mel = torch.randn(2, 8, 5)
    with torch.no_grad():
        torch.testing.assert_close(model(mel), reference(mel))
    assert load_bigvgan(folder, dtype=torch.float16).conv_pre.weight.dtype == torch.float16


def test_bigvgan_file_without_weight_norm_is_accepted(tmp_path: Path, bigvgan_state) -> None:
    # Upstream retries after remove_weight_norm when the strict load fails; so do we.
    plain = _bigvgan_dir(tmp_path, fold_weight_norm_state(bigvgan_state), name="plain")
    wn = _bigvgan_dir(tmp_path, bigvgan_state, name="wn")
    assert not read_bigvgan(plain).weight_norm
    mel = torch.randn(1, 8, 4)
    with torch.no_grad():
        torch.testing.assert_close(load_bigvgan(plain)(mel), load_bigvgan(wn)(mel))


def test_bigvgan_missing_pieces(tmp_path: Path, bigvgan_state) -> None:
    with pytest.raises(
        CheckpointError, match=r"no such folder.*models--nvidia--bigvgan_v2_24khz_100band_256x"
    ):
        read_bigvgan(tmp_path / "absent")
    folder = _bigvgan_dir(tmp_path, bigvgan_state)
    with pytest.raises(CheckpointError, match=r"is a file; expected a BigVGAN folder"):
        read_bigvgan(folder / "bigvgan_generator.pt")
    (folder / "bigvgan_generator.pt").unlink()
    with pytest.raises(CheckpointError, match=r"bigvgan_generator\.pt: no such file"):
        read_bigvgan(folder)
    (folder / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"config\.json: no such file"):
        read_bigvgan(folder)


def test_bigvgan_truncated_wrong_shapes_and_mismatched_config(tmp_path: Path, bigvgan_state) -> None:
    folder = _bigvgan_dir(tmp_path, bigvgan_state)
    weights = folder / "bigvgan_generator.pt"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) - 300])
    with pytest.raises(CheckpointError, match=r"bigvgan_generator\.pt.*truncated or corrupt"):
        read_bigvgan(folder)
    wrong = {**bigvgan_state, "conv_pre.weight_v": torch.zeros(16, 8, 5)}
    with pytest.raises(CheckpointError, match=r"with weight norm.*wrong shapes.*conv_pre\.weight_v"):
        read_bigvgan(_bigvgan_dir(tmp_path, wrong, name="wrong"))
    other = {**TINY_BIGVGAN_JSON, "upsample_initial_channel": 32}
    with pytest.raises(CheckpointError, match=r"Check that config\.json and the weights belong together"):
        read_bigvgan(_bigvgan_dir(tmp_path, bigvgan_state, other, name="other"))


def test_bigvgan_refuses_foreign_and_malicious_files(tmp_path: Path, v4_state, bigvgan_state) -> None:
    bare = _bigvgan_dir(tmp_path, bigvgan_state, name="bare")
    torch.save(v4_state, bare / "bigvgan_generator.pt")  # the v4 vocoder.pth dropped in by mistake
    with pytest.raises(CheckpointError, match="HiFi-GAN-style vocoder's weights as a bare state dict"):
        read_bigvgan(bare)
    sovits = _bigvgan_dir(tmp_path, bigvgan_state, name="sovits")
    torch.save(
        {"weight": {"enc_p.proj.weight": torch.zeros(2)}, "config": {}}, sovits / "bigvgan_generator.pt"
    )
    with pytest.raises(CheckpointError, match="SoVITS"):
        read_bigvgan(sovits)
    inner = _bigvgan_dir(tmp_path, bigvgan_state, name="inner")
    torch.save({"generator": {"enc_p.proj.weight": torch.zeros(2)}}, inner / "bigvgan_generator.pt")
    with pytest.raises(CheckpointError, match="its 'generator' holds a GPT-SoVITS SoVITS"):
        read_bigvgan(inner)
    evil = _bigvgan_dir(tmp_path, bigvgan_state, name="evil")
    target = tmp_path / "pwned.txt"
    torch.save({"generator": bigvgan_state, "extra": _CreatesFile(target)}, evil / "bigvgan_generator.pt")
    with pytest.raises(UnsafePickleError, match=r"bigvgan_generator\.pt.*'(builtins|io)\.open'"):
        load_bigvgan(evil)
    assert not target.exists()


def _config_file(tmp_path: Path, data) -> Path:
    path = tmp_path / "config.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def test_bigvgan_config_reading(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert read_bigvgan_config(_config_file(tmp_path, TINY_BIGVGAN_JSON)).upsample_rates == (4, 2)
    # Upstream's h.get(..., True) defaults for the two optional flags.
    optional_absent = {k: v for k, v in TINY_BIGVGAN_JSON.items() if not k.startswith("use_")}
    config = read_bigvgan_config(_config_file(tmp_path, optional_absent))
    assert config.use_tanh_at_final and config.use_bias_at_final
    with caplog.at_level(logging.WARNING, logger="app.models.upstream.vocoder"):
        read_bigvgan_config(_config_file(tmp_path, {**TINY_BIGVGAN_JSON, "use_cuda_kernel": True}))
    assert "ignoring keys BigVGAN's generator does not use: ['use_cuda_kernel']" in caplog.text


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object of BigVGAN hyper-parameters, found list"),
        (
            {k: v for k, v in TINY_BIGVGAN_JSON.items() if k not in ("activation", "snake_logscale")},
            r"a HiFi-GAN config, not BigVGAN\?\): missing keys \['activation', 'snake_logscale'\]",
        ),
        ({k: v for k, v in TINY_BIGVGAN_JSON.items() if k != "hop_size"}, r"missing keys \['hop_size'\]"),
        ({**TINY_BIGVGAN_JSON, "activation": "gelu"}, "invalid BigVGAN config: activation must be one of"),
        ({**TINY_BIGVGAN_JSON, "hop_size": 256}, "hop_size 256 differs from the product"),
        ({**TINY_BIGVGAN_JSON, "upsample_rates": [4, "2"]}, "upsample_rates must be a non-empty list"),
    ],
)
def test_bigvgan_config_errors(tmp_path: Path, data, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        read_bigvgan_config(_config_file(tmp_path, data))


def test_load_vocoder_by_version(tmp_path: Path, v4_state, bigvgan_state) -> None:
    pretrained = tmp_path / "pretrained_models"
    (pretrained / VOCODER_PATHS["v4"]).parent.mkdir(parents=True)
    torch.save(v4_state, pretrained / VOCODER_PATHS["v4"])
    _bigvgan_dir(pretrained, bigvgan_state, name=VOCODER_PATHS["v3"].as_posix())
    assert isinstance(load_vocoder("v4", pretrained), HiFiGANVocoder)
    assert isinstance(load_vocoder("v3", pretrained), BigVGAN)
    with pytest.raises(ValueError, match="only SoVITS v3 and v4"):
        load_vocoder("v2", pretrained)
