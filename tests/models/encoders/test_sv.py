"""ERes2NetV2 speaker encoder: config from shapes, strict loading, file errors, embeddings."""

from __future__ import annotations

import pickle
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from app.assets.registry import DOWNLOAD_COMMAND
from app.audio.resample import sinc_resample
from app.models.encoders.sv import (
    SV_ASSET,
    SV_FILE,
    ERes2NetV2,
    SpeakerEncoder,
    SVConfig,
    SVConfigError,
)
from app.models.upstream.safe_pickle import CheckpointError, UnsafePickleError
from app.models.upstream.sv import expected_shapes, read_sv

TINY = SVConfig(m_channels=4, base_width=32, scale=2, expansion=2, num_blocks=(1, 2, 1, 1), embedding_size=8)


def random_state(config: SVConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict of ``config`` with random weights and BatchNorm statistics."""
    torch.manual_seed(seed)
    model = ERes2NetV2(config)
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, tensor in model.state_dict().items():
        if name.endswith("running_var"):
            tensor = torch.rand(tensor.shape, generator=gen) + 0.5
        elif name.endswith(("running_mean", "bn1.bias", "bn3.bias")) or ".bns." in name:
            tensor = torch.randn(tensor.shape, generator=gen) * 0.1 if tensor.is_floating_point() else tensor
        elif name.endswith("num_batches_tracked"):
            tensor = torch.tensor(7)
        state[name] = tensor.clone()
    return state


def write_sv(path: Path, config: SVConfig = TINY, seed: int = 0) -> Path:
    torch.save(random_state(config, seed), path)
    return path


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sv(tmp_path_factory.mktemp("sv") / "sv.ckpt")


@pytest.fixture(scope="module")
def encoder(tiny_file: Path) -> SpeakerEncoder:
    return SpeakerEncoder(tiny_file)


# ---- config ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        TINY,
        SVConfig(
            m_channels=8, base_width=16, scale=4, expansion=4, num_blocks=(3, 4, 6, 3), embedding_size=32
        ),
        SVConfig(
            m_channels=16, base_width=26, scale=3, expansion=2, num_blocks=(2, 1, 1, 2), embedding_size=5
        ),
    ],
)
def test_config_read_from_shapes(config: SVConfig) -> None:
    assert SVConfig.from_state_dict(ERes2NetV2(config).state_dict()) == config


def test_config_of_upstream_model_and_embedding_width() -> None:
    full = SVConfig()
    assert (full.m_channels, full.base_width, full.scale, full.expansion) == (64, 24, 4, 4)
    assert full.emb_dim == 20480 and full.head_in == 40960  # seg_1 reads mean + std of 5120 x 4
    with torch.device("meta"):
        state = ERes2NetV2(full).state_dict()
    assert SVConfig.from_state_dict(state) == full
    assert TINY.emb_dim == 8 * 4 * 2 * 10


def test_base_width_not_told_by_shapes_builds_the_same_network() -> None:
    # m=4: chunk widths are floor(planes * bw / 64) = 1, 2, 4, 8 for bw 33 as for 32.
    odd = SVConfig(
        m_channels=4, base_width=33, scale=2, expansion=2, num_blocks=(1, 1, 1, 1), embedding_size=8
    )
    inferred = SVConfig.from_state_dict(ERes2NetV2(odd).state_dict())
    assert inferred.base_width == 32
    assert expected_shapes(inferred) == expected_shapes(odd)


def test_config_errors() -> None:
    with pytest.raises(SVConfigError, match="num_blocks"):
        SVConfig(num_blocks=(3, 4, 6))  # type: ignore[arg-type]
    with pytest.raises(SVConfigError, match="empty Res2Net chunks"):
        SVConfig(m_channels=2, base_width=8)
    state = ERes2NetV2(TINY).state_dict()
    del state["seg_1.weight"]
    with pytest.raises(SVConfigError, match=r"seg_1\.weight"):
        SVConfig.from_state_dict(state)


# ---- file --------------------------------------------------------------------------------------


def test_reads_the_file_as_stored(tiny_file: Path) -> None:
    config, state = read_sv(tiny_file)
    assert config == TINY
    assert list(state) == list(ERes2NetV2(TINY).state_dict())
    saved = torch.load(tiny_file, weights_only=True)
    assert all(torch.equal(state[k], saved[k]) for k in saved)


def test_encoder_loads_every_tensor_strictly(tiny_file: Path, encoder: SpeakerEncoder) -> None:
    saved = torch.load(tiny_file, weights_only=True)
    loaded = encoder.model.state_dict()
    assert list(loaded) == list(saved)
    for name, tensor in saved.items():
        assert torch.equal(loaded[name], tensor), name
    assert not encoder.model.training
    assert encoder.path == tiny_file and encoder.dim == TINY.emb_dim and encoder.config == TINY


def test_missing_file_names_the_download(tmp_path: Path) -> None:
    path = tmp_path / SV_FILE
    with pytest.raises(CheckpointError) as err:
        SpeakerEncoder(path)
    assert str(path) in str(err.value) and f"{DOWNLOAD_COMMAND} {SV_ASSET}" in str(err.value)


def test_file_location_is_the_catalog_entry() -> None:
    from app.assets.catalog import get

    asset = get(SV_ASSET)
    assert {Path(asset.folder) / f.path for f in asset.files} == {SV_FILE}
    assert Path("sv/pretrained_eres2netv2w24s4ep4.ckpt") == SV_FILE


def test_truncated_file(tmp_path: Path, tiny_file: Path) -> None:
    data = tiny_file.read_bytes()
    bad = tmp_path / "cut.ckpt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.ckpt: the file is truncated or corrupt"):
        read_sv(bad)


def test_not_a_checkpoint(tmp_path: Path) -> None:
    bad = tmp_path / "x.ckpt"
    bad.write_bytes(b"RIFF....WAVEfmt ")
    with pytest.raises(CheckpointError, match=r"x\.ckpt: not a PyTorch checkpoint"):
        read_sv(bad)


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (torch.zeros(3), "found a pickled Tensor"),
        ([1, 2], "found a pickled list"),
        ({"conv1.weight": torch.zeros(1), "note": "hi"}, "are not named tensors"),
        (
            {"weight": {"model.ar_text_embedding.word_embeddings.weight": torch.zeros(2)}, "config": {}},
            "GPT-SoVITS GPT",
        ),
        ({"weight": {"enc_p.text_embedding.weight": torch.zeros(2)}, "config": {}}, "SoVITS \\(s2\\)"),
        ({"state_dict": {"a": torch.zeros(1)}, "epoch": 3}, "Lightning"),
        ({"feature_extractor.conv_layers.0.conv.weight": torch.zeros(1)}, "HuBERT"),
        ({"linear.weight": torch.zeros(1)}, "no 'conv1.weight'"),
    ],
)
def test_other_files_are_named(tmp_path: Path, obj: object, message: str) -> None:
    path = tmp_path / "other.pth"
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match=message) as err:
        read_sv(path)
    assert str(path) in str(err.value)


def test_exported_sovits_file_by_header(tmp_path: Path) -> None:
    path = tmp_path / "voice_e8_s96.pth"
    torch.save({"weight": {"enc_p.x": torch.zeros(1)}}, path)
    path.write_bytes(b"06" + path.read_bytes()[2:])
    with pytest.raises(CheckpointError, match="this is a GPT-SoVITS v2ProPlus SoVITS model file"):
        read_sv(path)


def test_unsafe_pickle_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.ckpt"
    torch.save(
        {"conv1.weight": torch.zeros(1), "x": Path("/")}, path, pickle_protocol=pickle.HIGHEST_PROTOCOL
    )
    with pytest.raises(UnsafePickleError, match="pathlib"):
        read_sv(path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.pop("layer2.1.bns.0.running_var"), "missing 1 keys"),
        (lambda s: s.__setitem__("pool.weight", torch.zeros(1)), "unexpected 1 keys"),
        (lambda s: s.__setitem__("seg_1.bias", torch.zeros(9)), "wrong shapes"),
        (lambda s: s.__setitem__("layer4.0.conv3.weight", torch.zeros(64, 8, 3, 3)), "wrong shapes"),
        (
            lambda s: s.__setitem__("conv1.weight", torch.zeros(4, 1, 3, 3, dtype=torch.int32)),
            "floating point",
        ),
        (lambda s: s.pop("layer1.0.conv3.weight"), "layer1.0.conv3.weight"),
    ],
)
def test_weights_that_do_not_form_the_network(tmp_path: Path, edit, message: str) -> None:
    state = random_state(TINY)
    edit(state)
    path = tmp_path / "bad.ckpt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=message) as err:
        read_sv(path)
    assert str(path) in str(err.value)


# ---- embeddings --------------------------------------------------------------------------------


def _waves(batch: int, n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, n, generator=torch.Generator().manual_seed(seed)) * 1.2 - 0.6


def test_embedding_shapes(encoder: SpeakerEncoder) -> None:
    one = encoder.embed_16k(_waves(1, 8000)[0])
    assert one.shape == (1, encoder.dim) and one.dtype == torch.float32 and one.device.type == "cpu"
    two = encoder.embed_16k(_waves(2, 4000))
    assert two.shape == (2, encoder.dim)
    assert torch.isfinite(two).all() and two.abs().max() > 0


def test_batch_rows_are_independent(encoder: SpeakerEncoder) -> None:
    waves = _waves(3, 6000, seed=1)
    batch = encoder.embed_16k(waves)
    for i in range(3):
        torch.testing.assert_close(batch[i : i + 1], encoder.embed_16k(waves[i]), rtol=0, atol=1e-5)
    assert (batch[0] - batch[1]).abs().max() > 1e-3  # different waves, different embeddings


def test_embed_32k_is_the_16k_embedding_of_the_torchaudio_resampled_wave(encoder: SpeakerEncoder) -> None:
    wav32 = _waves(2, 12000, seed=2)
    torch.testing.assert_close(
        encoder.embed_32k(wav32), encoder.embed_16k(sinc_resample(wav32, 32000, 16000)), rtol=0, atol=0
    )


def test_lower_precision(tiny_file: Path, encoder: SpeakerEncoder) -> None:
    low = SpeakerEncoder(tiny_file, dtype=torch.bfloat16)
    assert {p.dtype for p in low.model.parameters()} == {torch.bfloat16}
    assert low.model.bn1.num_batches_tracked.dtype == torch.int64
    waves = _waves(2, 6000, seed=3)
    ref, out = encoder.embed_16k(waves), low.embed_16k(waves)
    assert out.dtype == torch.float32
    assert (out - ref).abs().max() < 0.05 * ref.abs().max()


def test_block_activation_is_relu_clipped_at_20_and_stem_is_not(encoder: SpeakerEncoder) -> None:
    model = ERes2NetV2(TINY).eval()
    model.load_state_dict(encoder.model.state_dict())
    seen: dict[str, torch.Tensor] = {}
    model.bn1.register_forward_hook(lambda m, i, o: seen.__setitem__("stem_bn", o))
    model.layer1[0].register_forward_hook(lambda m, i, o: seen.__setitem__("block", o))
    model.layer1[0].conv1.register_forward_hook(lambda m, i, o: seen.__setitem__("pre", i[0]))
    with torch.no_grad():
        model.bn1.bias.fill_(50.0)  # the stem's ReLU lets 50 through
        model.layer1[0].bn3.bias.fill_(100.0)  # every block output is above 20 before the clip
        model.forward3(torch.randn(1, 40, 80))
    assert seen["pre"].min() > 20  # stem output = unclipped ReLU of ~50
    assert torch.all(seen["block"] == 20.0)


def test_state_dict_names_are_upstreams() -> None:
    names = list(ERes2NetV2(TINY).state_dict())
    assert names[:6] == [
        "conv1.weight",
        "bn1.weight",
        "bn1.bias",
        "bn1.running_mean",
        "bn1.running_var",
        "bn1.num_batches_tracked",
    ]
    assert "layer1.0.shortcut.0.weight" in names and "layer2.1.shortcut.0.weight" not in names
    assert "layer3.0.fuse_models.0.local_att.0.bias" in names and not any("layer1.0.fuse" in n for n in names)
    assert names[-2:] == ["seg_1.weight", "seg_1.bias"]
    assert asdict(TINY)["num_blocks"] == (1, 2, 1, 1)
