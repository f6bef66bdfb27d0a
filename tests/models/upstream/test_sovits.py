"""SoVITS files: write/read round trip, upstream-compatible layout, kinds, versions and bad files."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from app.models.nn.discriminators import MultiPeriodDiscriminator
from app.models.sovits.config import preset
from app.models.sovits.reference import reference_spectrogram
from app.models.upstream.safe_pickle import CheckpointError, UnsafePickleError
from app.models.upstream.sovits import (
    detect_version,
    load_discriminator,
    load_sovits,
    read_discriminator,
    read_sovits,
    write_sovits,
)


def _decode(model, version: str) -> torch.Tensor:
    gen = torch.Generator().manual_seed(7)
    codes = torch.randint(0, 1024, (1, 1, 10), generator=gen)
    phones = torch.randint(1, 322, (1, 8), generator=gen)
    spec = reference_spectrogram(0.3 * torch.randn(640 * 15, generator=gen))
    sv = torch.randn(1, 20480, generator=gen) if version.startswith("v2Pro") else None
    return model.decode(codes, phones, spec, noise_scale=0.0, sv_emb=sv)


@pytest.mark.parametrize(
    ("version", "header"), [("v2", b"PK"), ("v1", b"PK"), ("v2Pro", b"05"), ("v2ProPlus", b"06")]
)
def test_write_read_round_trip(tiny_sovits, tmp_path: Path, version: str, header: bytes) -> None:
    model = tiny_sovits(version)
    # The file stores fp16: compare against the same weights rounded to fp16.
    model.load_state_dict({k: v.half().float() for k, v in model.state_dict().items()}, assign=True)
    path = write_sovits(tmp_path / "voice_e3_s42.pth", model.state_dict(), model.config, epoch=3, step=42)
    assert path.read_bytes()[:2] == header
    record = read_sovits(path)
    assert (record.version, record.kind, record.info, record.header) == (
        version,
        "weights",
        "3epoch_42iteration",
        header,
    )
    assert record.config == model.config
    assert not any("enc_q" in k for k in record.state_dict)
    assert {t.dtype for t in record.state_dict.values()} == {torch.float16}
    loaded, _ = load_sovits(path)
    expected = _decode(model.prepare_for_inference(), version)
    torch.testing.assert_close(_decode(loaded, version), expected, rtol=0, atol=1e-6)


def test_written_file_loads_the_way_upstream_loads_it(tiny_sovits, tmp_path: Path) -> None:
    model = tiny_sovits("v2Pro")
    path = write_sovits(tmp_path / "pro.pth", model.state_dict(), model.config, epoch=1, step=2)
    # Upstream: swap the header back to PK, torch.load with its `utils` module on sys.path.
    (tmp_path / "up").mkdir()
    (tmp_path / "up" / "utils.py").write_text("class HParams:\n    pass\n", encoding="utf-8")
    script = textwrap.dedent(
        f"""
        import io, sys, torch
        sys.path.insert(0, {str(tmp_path / "up")!r})
        data = open({str(path)!r}, "rb").read()
        assert data[:2] == b"05"
        d = torch.load(io.BytesIO(b"PK" + data[2:]), map_location="cpu", weights_only=False)
        hps = d["config"]
        print(type(hps).__module__, hps.model.version, hps.model.gin_channels, hps.data.filter_length,
              hps.train.segment_size, d["info"], d["weight"]["sv_emb.weight"].dtype)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.split() == [
        "utils",
        "v2Pro",
        "64",
        "2048",
        "2560",
        "1epoch_2iteration",
        "torch.float16",
    ]


def test_pretrained_and_training_layouts(tiny_sovits, tmp_path: Path) -> None:
    from app.models.upstream.sovits import _hparams_for

    model = tiny_sovits("v2")
    state = model.state_dict()
    # Pretrained generators: the export layout with enc_q kept (upstream's fine-tuning starts there).
    pretrained = tmp_path / "s2G_tiny.pth"
    config_tree = _hparams_for(model.config, "pretrained").to_dict()  # a plain dict config works too
    torch.save(
        {"weight": {k: v.half() for k, v in state.items()}, "config": config_tree, "info": "x"}, pretrained
    )
    record = read_sovits(pretrained)
    assert record.kind == "pretrained" and record.version == "v2"
    trainable, _ = load_sovits(pretrained, for_inference=False)
    assert trainable.training
    torch.testing.assert_close(trainable.enc_q.pre.weight, state["enc_q.pre.weight"].half().float())
    empty_config = tmp_path / "empty_config.pth"
    torch.save({"weight": state, "config": {"model": {}, "data": {}, "train": {}}}, empty_config)
    with pytest.raises(CheckpointError, match=r"empty_config\.pth: weights do not fit a v2 SoVITS model"):
        read_sovits(empty_config)  # an empty config means upstream's full-size preset
    # Upstream training checkpoints (logs_s2/G_<step>.pth) carry no config: pass ours.
    training = tmp_path / "G_100.pth"
    optimizer = {"state": {}, "param_groups": [{"lr": 1e-4, "betas": (0.8, 0.99), "params": [0, 1]}]}
    torch.save({"model": state, "iteration": 100, "optimizer": optimizer, "learning_rate": 1e-4}, training)
    record = read_sovits(training, config=model.config)
    assert record.kind == "training" and record.version == "v2" and record.info is None
    resumed, _ = load_sovits(training, for_inference=False, config=model.config)
    torch.testing.assert_close(resumed.enc_q.proj.bias, state["enc_q.proj.bias"])


def _expanded_state(module_factory) -> dict[str, torch.Tensor]:
    """Full-size shapes backed by one element each: tiny files with upstream's layout."""
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in module_factory().state_dict().items()}
    return {
        k: torch.zeros(1, dtype=torch.float16).expand(s) if len(s) else torch.zeros((), dtype=torch.float16)
        for k, s in shapes.items()
    }


@pytest.mark.parametrize("version", ["v2", "v2Pro"])
def test_discriminator_files_and_kind_errors(tmp_path: Path, version: str) -> None:
    periods = preset(version).mpd_periods
    d_path = tmp_path / f"s2D_{version}.pth"
    torch.save({"weight": _expanded_state(lambda: MultiPeriodDiscriminator(periods))}, d_path)
    got_periods, state = read_discriminator(d_path)
    assert got_periods == periods and len(state) == len(MultiPeriodDiscriminator(periods).state_dict())
    assert isinstance(load_discriminator(d_path), MultiPeriodDiscriminator)
    with pytest.raises(CheckpointError, match=r"s2D_.*discriminator \(D\) file, expected the generator"):
        read_sovits(d_path)


def test_generator_given_as_discriminator(tiny_sovits, tmp_path: Path) -> None:
    model = tiny_sovits("v2")
    path = write_sovits(tmp_path / "g.pth", model.state_dict(), model.config, 1, 1)
    with pytest.raises(
        CheckpointError, match=r"g\.pth: this is a SoVITS generator \(G\) file, expected the discriminator"
    ):
        read_discriminator(path)


def test_other_kinds_of_checkpoint_are_named(upstream_fixtures: Path, tmp_path: Path) -> None:
    gpt = sorted(upstream_fixtures.glob("gpt_*_tiny.ckpt"))
    svc = sorted(upstream_fixtures.glob("svc*/G_*.pth"))
    assert gpt and svc, f"GPT and so-vits-svc fixtures expected in {upstream_fixtures}"
    with pytest.raises(CheckpointError, match=r"gpt_.*\.ckpt: this is a GPT"):
        read_sovits(gpt[0])
    with pytest.raises(CheckpointError, match=r"G_.*\.pth: this is a so-vits-svc model"):
        read_sovits(svc[0])
    lightning = tmp_path / "s1.ckpt"
    torch.save({"state_dict": {}, "epoch": 3, "pytorch-lightning_version": "2.4"}, lightning)
    with pytest.raises(CheckpointError, match="Lightning"):
        read_sovits(lightning)


def test_wrong_version_truncated_corrupt_and_foreign(tiny_sovits, tmp_path: Path) -> None:
    model = tiny_sovits("v2")
    path = write_sovits(tmp_path / "v.pth", model.state_dict(), model.config, 1, 1)
    with pytest.raises(CheckpointError, match=r"v\.pth: this is a v2 SoVITS model, expected v1"):
        read_sovits(path, expect_version="v1")
    data = path.read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match=r"cut\.pth: .*(truncated|corrupt)"):
        read_sovits(cut)
    bad_crc = tmp_path / "flipped.pth"
    middle = len(data) // 2
    bad_crc.write_bytes(data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :])
    with pytest.raises(CheckpointError, match=r"flipped\.pth: .*corrupt"):
        read_sovits(bad_crc)
    v3 = tmp_path / "v3.pth"
    v3.write_bytes(b"02" + data[2:])
    with pytest.raises(CheckpointError, match=r"v3\.pth: header says GPT-SoVITS v3"):
        read_sovits(v3)
    pro_claim = tmp_path / "claims_pro.pth"
    pro_claim.write_bytes(b"05" + data[2:])
    with pytest.raises(CheckpointError, match="header says v2Pro but the weights have no sv_emb"):
        read_sovits(pro_claim)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"ID3\x03not audio or a model")
    with pytest.raises(CheckpointError, match=r"junk\.pth: not a GPT-SoVITS SoVITS generator"):
        read_sovits(junk)
    with pytest.raises(CheckpointError, match="no such file"):
        read_sovits(tmp_path / "missing.pth")


def test_malicious_sovits_file_with_pro_header(tmp_path: Path) -> None:
    target = tmp_path / "created.txt"

    class Payload:
        def __reduce__(self):
            return (open, (str(target), "w"))

    buf = io.BytesIO()
    torch.save({"weight": {}, "config": Payload(), "info": "x"}, buf)
    path = tmp_path / "evil.pth"
    path.write_bytes(b"05" + buf.getvalue()[2:])
    with pytest.raises(UnsafePickleError, match=r"evil\.pth: refused to load.*open"):
        read_sovits(path)
    assert not target.exists()


def test_version_rules() -> None:
    rows = {322: "v1", 732: "v2"}
    for n, version in rows.items():
        state = {"enc_p.text_embedding.weight": torch.zeros(n, 1)}
        assert detect_version(state, b"PK", "f") == version
    pro = {"enc_p.text_embedding.weight": torch.zeros(732, 1), "sv_emb.weight": torch.zeros(1, 1)}
    assert detect_version({**pro, "dec.ups.0.weight_v": torch.zeros(1, 1, 16)}, b"PK", "f") == "v2Pro"
    assert detect_version({**pro, "dec.ups.0.weight_v": torch.zeros(1, 1, 20)}, b"PK", "f") == "v2ProPlus"
    assert detect_version(pro, b"06", "f") == "v2ProPlus"
    with pytest.raises(CheckpointError, match="500 rows"):
        detect_version({"enc_p.text_embedding.weight": torch.zeros(500, 1)}, b"PK", "f")
    with pytest.raises(CheckpointError, match="v3/v4"):
        detect_version({"cfm.x": torch.zeros(1)}, b"PK", "f")
