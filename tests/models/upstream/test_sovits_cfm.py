"""v3/v4 (flow-matching) SoVITS files: the version rules, strict loading, and bad files named."""

from __future__ import annotations

import hashlib
import io
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from app.models.sovits.config import SoVITSConfig
from app.models.sovits.reference import reference_spectrogram
from app.models.upstream import sovits_cfm as sovits_files
from app.models.upstream.safe_pickle import CheckpointError, HParams, UnsafePickleError, save
from app.models.upstream.sovits import (
    _hparams_for,
    build_cfm_sovits,
    detect_cfm_version,
    load_cfm_sovits,
    load_sovits,
    read_sovits,
)
from tests.models.sovits.cfm_tiny import tiny_cfm_config, tiny_weights


def _tree(version: str, model_version: object = "same") -> HParams:
    """The config tree of upstream's v3/v4 files (s2.json + the web UI's keys), as a mapping."""
    config = tiny_cfm_config(version if version in ("v3", "v4") else "v4")
    tree = _hparams_for(config, "voice").to_dict()
    if model_version != "same":
        if model_version is None:
            del tree["model"]["version"]
            del tree["version"]
        else:
            tree["model"]["version"] = model_version
            tree["version"] = model_version
    return HParams.from_mapping(tree)


def _write(
    path: Path,
    state: dict[str, torch.Tensor] | None = None,
    tree: HParams | None = None,
    header: bytes = b"PK",
    version: str = "v4",
) -> Path:
    """Write a file the way upstream's exporter does (fp16 weights, HParams config, info)."""
    weights = state if state is not None else tiny_weights(version)
    payload: OrderedDict[str, object] = OrderedDict()
    payload["weight"] = {k: v.half() for k, v in weights.items()}
    payload["config"] = tree if tree is not None else _tree(version)
    payload["info"] = "8epoch_96iteration"
    buf = io.BytesIO()
    save(payload, buf)
    path.write_bytes(header + buf.getvalue()[2:])
    return path


def _mel_of(model, version: str) -> torch.Tensor:
    gen = torch.Generator().manual_seed(3)
    codes = torch.randint(0, 1024, (1, 1, 12), generator=gen)
    phones = torch.randint(1, 732, (1, 9), generator=gen)
    ge = model.timbre(reference_spectrogram(0.3 * torch.randn(640 * 12, generator=gen)))
    prompt = model.prompt(codes, phones, ge, torch.rand(1, 100, 30, generator=gen) * 2 - 1)
    return model.decode_mel(codes, phones, prompt, 3, generator=torch.Generator().manual_seed(4))


@pytest.mark.parametrize("version", ["v4", "v3"])
def test_file_loads_strictly_and_computes_what_its_weights_say(tmp_path: Path, version: str) -> None:
    path = _write(tmp_path / f"{version}.pth", version=version)
    model, record = load_cfm_sovits(path)
    assert (record.version, record.kind, record.header, record.info) == (
        version,
        "weights",
        b"PK",
        "8epoch_96iteration",
    )
    assert record.config == tiny_cfm_config(version)  # DiT/wns1 sizes read from the weights
    assert {t.dtype for t in record.state_dict.values()} == {torch.float16}
    # The same weights rounded to fp16, built directly.
    rounded = {k: v.half().float() for k, v in tiny_weights(version).items()}
    direct = build_cfm_sovits(rounded, tiny_cfm_config(version))
    torch.testing.assert_close(_mel_of(model, version), _mel_of(direct, version), rtol=0, atol=0)
    assert not hasattr(model, "linear_mel") and not model.training


def test_linear_mel_is_optional_but_must_fit(tmp_path: Path) -> None:
    state = {k: v for k, v in tiny_weights("v4").items() if not k.startswith("linear_mel.")}
    model, _ = load_cfm_sovits(_write(tmp_path / "no_mel.pth", state))
    assert not hasattr(model, "linear_mel")
    bad = {**tiny_weights("v4"), "linear_mel.weight": torch.zeros(80, 512, 1)}
    with pytest.raises(CheckpointError, match=r"bad_mel\.pth: .*wrong shapes: \['linear_mel\.weight"):
        read_sovits(_write(tmp_path / "bad_mel.pth", bad))


def test_version_comes_from_the_contents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # model.version decides for a PK file ...
    assert read_sovits(_write(tmp_path / "a.pth", tree=_tree("v4", "v3"))).version == "v3"
    # ... the top-level version when the model section has none ...
    tree = _tree("v4").to_dict()
    del tree["model"]["version"]
    assert read_sovits(_write(tmp_path / "b.pth", tree=HParams.from_mapping(tree))).version == "v4"
    # ... header 02 is upstream's v3, whatever the config says ...
    assert read_sovits(_write(tmp_path / "c.pth", header=b"02")).version == "v3"
    # ... and upstream's official base files are recognised by the MD5 of their first 8192 bytes.
    assert detect_cfm_version(b"PK", "43797be674a37c1c83ee81081941ed0f", None, "s2Gv3.pth") == "v3"
    assert detect_cfm_version(b"PK", "4f26b9476d0c5033e04162c486074374", _tree("v4", "v3"), "f") == "v4"
    path = _write(tmp_path / "d.pth", tree=_tree("v4", None))
    with pytest.raises(
        CheckpointError, match=r"d\.pth: .*cfm.*no usable version: the config's model\.version is None"
    ):
        read_sovits(path)
    digest = hashlib.md5(path.read_bytes()[:8192]).hexdigest()
    monkeypatch.setitem(sovits_files.PRETRAINED_CFM_HASHES, digest, "v4")
    assert read_sovits(path).version == "v4"


def test_missing_or_wrong_version_is_named(tmp_path: Path) -> None:
    with pytest.raises(
        CheckpointError, match=r"v2cfg\.pth: .*no usable version: the config's model\.version is 'v2'"
    ):
        read_sovits(_write(tmp_path / "v2cfg.pth", tree=_tree("v4", "v2")))
    no_config = tmp_path / "no_config.pth"
    buf = io.BytesIO()
    save({"weight": {k: v.half() for k, v in tiny_weights("v4").items()}}, buf)
    no_config.write_bytes(buf.getvalue())
    with pytest.raises(CheckpointError, match=r"no_config\.pth: .*no usable version"):
        read_sovits(no_config)
    with pytest.raises(
        CheckpointError, match=r"pro\.pth: header says GPT-SoVITS v2Pro but the weights are a v3/v4"
    ):
        read_sovits(_write(tmp_path / "pro.pth", header=b"05"))
    v4 = _write(tmp_path / "v4.pth")
    with pytest.raises(CheckpointError, match=r"v4\.pth: this is a v4 SoVITS model, expected v3"):
        read_sovits(v4, expect_version="v3")
    with pytest.raises(CheckpointError, match=r"v4\.pth: this is a GPT-SoVITS v4 model .*load_cfm_sovits"):
        load_sovits(v4)


def test_wrong_shapes_missing_and_extra_keys(tmp_path: Path) -> None:
    weights = tiny_weights("v4")
    key = "cfm.estimator.transformer_blocks.1.attn.to_k.weight"
    wrong = {**weights, key: torch.zeros(16, 32)}
    with pytest.raises(
        CheckpointError, match=r"wrong\.pth: weights do not fit a v4 .*wrong shapes: \['cfm\.estimator"
    ):
        read_sovits(_write(tmp_path / "wrong.pth", wrong))
    missing = {k: v for k, v in weights.items() if k != "wns1.proj.bias"}
    with pytest.raises(
        CheckpointError, match=r"missing\.pth: .*missing 1 keys \(e\.g\. \['wns1\.proj\.bias'\]\)"
    ):
        read_sovits(_write(tmp_path / "missing.pth", missing))
    extra = {**weights, "cfm.estimator.extra.weight": torch.zeros(2)}
    with pytest.raises(CheckpointError, match=r"extra\.pth: .*unexpected 1 keys"):
        read_sovits(_write(tmp_path / "extra.pth", extra))
    no_dit = {k: v for k, v in weights.items() if "proj_out" not in k}
    with pytest.raises(CheckpointError, match=r"no_dit\.pth: flow-matching weights without"):
        read_sovits(_write(tmp_path / "no_dit.pth", no_dit))
    with pytest.raises(CheckpointError, match=r"state dict: .*missing"):
        build_cfm_sovits(missing, tiny_cfm_config("v4"))
    with pytest.raises(CheckpointError, match="needs a v3/v4 config"):
        build_cfm_sovits(weights, SoVITSConfig())


def test_truncated_corrupt_and_malicious(tmp_path: Path) -> None:
    data = _write(tmp_path / "ok.pth").read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match=r"cut\.pth: .*(truncated|corrupt)"):
        load_cfm_sovits(cut)
    target = tmp_path / "created.txt"

    class Payload:
        def __reduce__(self):
            return (open, (str(target), "w"))

    buf = io.BytesIO()
    torch.save({"weight": {"cfm.estimator.proj_out.weight": torch.zeros(1)}, "config": Payload()}, buf)
    evil = tmp_path / "evil.pth"
    evil.write_bytes(b"02" + buf.getvalue()[2:])
    with pytest.raises(UnsafePickleError, match=r"evil\.pth: refused to load.*open"):
        load_cfm_sovits(evil)
    assert not target.exists()


def test_foreign_files_are_named(upstream_fixtures: Path, tmp_path: Path) -> None:
    gpt = sorted(upstream_fixtures.glob("gpt_*_tiny.ckpt"))
    assert gpt, f"GPT fixtures expected in {upstream_fixtures}"
    with pytest.raises(CheckpointError, match=r"gpt_.*\.ckpt: this is a GPT"):
        load_cfm_sovits(gpt[0])
    v2 = upstream_fixtures / "sovits_v2_tiny.pth"
    with pytest.raises(
        CheckpointError, match=r"sovits_v2_tiny\.pth: this is a v2 SoVITS model .*load_sovits"
    ):
        load_cfm_sovits(v2)
    for lora in sorted(upstream_fixtures.glob("sovits_v*_lora_tiny.pth")):
        with pytest.raises(CheckpointError, match=r"lora_tiny\.pth: this is a GPT-SoVITS v3/v4 LoRA file"):
            read_sovits(lora)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"ID3\x03not a model")
    with pytest.raises(CheckpointError, match=r"junk\.pth: not a GPT-SoVITS SoVITS generator"):
        load_cfm_sovits(junk)


def test_reduced_precision_runs_in_the_models_dtype(tmp_path: Path) -> None:
    path = _write(tmp_path / "v4.pth")
    reference, _ = load_cfm_sovits(path)
    half, _ = load_cfm_sovits(path, dtype=torch.bfloat16)
    assert {p.dtype for p in half.parameters()} == {torch.bfloat16}
    gen = torch.Generator().manual_seed(3)
    codes = torch.randint(0, 1024, (1, 1, 12), generator=gen)
    phones = torch.randint(1, 732, (1, 9), generator=gen)
    spec = reference_spectrogram(0.3 * torch.randn(640 * 12, generator=gen))
    wav = 0.3 * torch.randn(320 * 40, generator=gen)
    mels = []
    for model in (reference, half):
        dtype = next(model.parameters()).dtype
        ge = model.timbre(spec.to(dtype))
        ref_mel = model.reference_mel(wav.to(dtype))
        assert ref_mel.dtype == torch.float32  # computed in float32 as upstream
        prompt = model.prompt(codes, phones, ge, ref_mel)
        assert prompt.mel.dtype == dtype
        mels.append(model.decode_mel(codes, phones, prompt, 3, generator=torch.Generator().manual_seed(4)))
    assert mels[1].dtype == torch.bfloat16
    scale = mels[0].abs().max()
    assert (mels[1].float() - mels[0]).abs().max() < 0.05 * scale


@pytest.mark.parametrize("version", ["v3", "v4"])
def test_written_v3_v4_files_read_back_as_the_same_model(tmp_path, version) -> None:
    """write_sovits: a whole v3/v4 model as upstream's s2Gv3/s2Gv4 (``PK``, small sizes in fixture_dit)."""
    from app.models.upstream.sovits import load_cfm_sovits, write_sovits
    from tests.models.sovits.cfm_tiny import tiny_cfm_config, tiny_weights

    config = tiny_cfm_config(version)
    path = write_sovits(tmp_path / f"s2G{version}.pth", tiny_weights(version), config, epoch=3, step=7)
    assert path.read_bytes()[:2] == b"PK"
    model, record = load_cfm_sovits(path)
    assert record.version == version and record.info == "3epoch_7iteration"
    for field in ("dit_dim", "dit_depth", "dit_heads", "dit_dim_head", "dit_conv_layers", "wns1_hidden"):
        assert getattr(record.config, field) == getattr(config, field)
    stored = {k: v.half().float() for k, v in tiny_weights(version).items() if not k.startswith("linear_mel")}
    for key, value in model.state_dict().items():
        if key in stored and "wns1" not in key:  # wns1's weight norm is folded for inference
            torch.testing.assert_close(value, stored[key], rtol=0, atol=0)
