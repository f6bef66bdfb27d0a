"""v3/v4 LoRA files: read, merge onto the base as upstream does, refuse what does not fit."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch

from app.models.upstream.safe_pickle import CheckpointError
from app.models.upstream.sovits import _open
from app.models.upstream.sovits_lora import LORA_TARGETS, lora_version, merge_lora, read_lora


def lora_stems(folder: Path) -> list[str]:
    return sorted(p.name.removesuffix(".pth") for p in folder.glob("sovits_v*_lora*.pth"))


def _write(path: Path, obj: object, header: bytes = b"04") -> Path:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    path.write_bytes(header + buffer.getvalue()[2:])
    return path


def _fixture(upstream_fixtures: Path, stem: str) -> tuple[Path, dict, Path]:
    io_data = torch.load(upstream_fixtures / f"{stem}_io.pt", weights_only=True)
    base = upstream_fixtures / io_data["meta"]["base_checkpoint"]
    return upstream_fixtures / f"{stem}.pth", io_data, base


def test_fixture_loras_merge_to_upstreams_weights(upstream_fixtures: Path) -> None:
    stems = lora_stems(upstream_fixtures)
    assert stems, f"no sovits_v*_lora*.pth in {upstream_fixtures}"
    for stem in stems:
        path, io_data, base_path = _fixture(upstream_fixtures, stem)
        lora = read_lora(path)
        assert lora.version == io_data["meta"]["model_version"] == lora_version(path)
        assert lora.rank == io_data["meta"]["lora_rank"]
        assert {k.rsplit(".attn.", 1)[1] for k in lora.adapters} == set(LORA_TARGETS)
        _, base, _ = _open(base_path, "base")
        merged = merge_lora(base["weight"], lora, str(base_path))
        for key, expected in io_data["merged_block0_attention_weights"].items():
            assert merged[key].dtype == torch.float32
            torch.testing.assert_close(merged[key], expected, rtol=0, atol=1e-6)
        # Every tensor of the file that is not an adapter replaces the base's, as stored.
        for key, tensor in lora.replaced.items():
            assert torch.equal(merged[key], tensor)
        assert set(merged) == set(base["weight"])
        assert lora_version(base_path) is None


def test_broken_loras_are_refused_with_the_reason(upstream_fixtures: Path, tmp_path: Path) -> None:
    stem = lora_stems(upstream_fixtures)[0]
    path, _, base_path = _fixture(upstream_fixtures, stem)
    header, stored, _ = _open(path, "lora")
    weight = dict(stored["weight"])
    obj = {"weight": weight, "info": stored["info"], "lora_rank": stored["lora_rank"]}
    a_key = next(k for k in weight if k.endswith("lora_A.default.weight"))

    with pytest.raises(CheckpointError, match="LoRA exports start with '03'"):
        read_lora(_write(tmp_path / "pk.pth", dict(obj), header=b"PK"))
    with pytest.raises(CheckpointError, match="lora_rank"):
        read_lora(_write(tmp_path / "rank.pth", {**obj, "lora_rank": "many"}, header))
    missing_b = {k: v for k, v in weight.items() if k != a_key.replace("lora_A", "lora_B")}
    with pytest.raises(CheckpointError, match="not both A and B"):
        read_lora(_write(tmp_path / "half.pth", {**obj, "weight": missing_b}, header))
    wrong = {**weight, a_key: torch.zeros(obj["lora_rank"] + 1, weight[a_key].shape[1])}
    with pytest.raises(CheckpointError, match="expected"):
        read_lora(_write(tmp_path / "shape.pth", {**obj, "weight": wrong}, header))
    only = {k: v for k, v in weight.items() if "lora_" not in k}
    with pytest.raises(CheckpointError, match="no LoRA adapters"):
        read_lora(_write(tmp_path / "none.pth", {**obj, "weight": only}, header))
    (tmp_path / "short.pth").write_bytes(path.read_bytes()[:3])
    with pytest.raises(CheckpointError, match="too short"):
        read_lora(tmp_path / "short.pth")

    # A base of another shape: the LoRA does not fit it.
    _, base, _ = _open(base_path, "base")
    lora = read_lora(path)
    target = next(iter(lora.adapters)) + ".weight"
    smaller = {**base["weight"], target: torch.zeros(3, 3)}
    with pytest.raises(CheckpointError, match="trained on another base model"):
        merge_lora(smaller, lora, "other.pth")
    without = {k: v for k, v in base["weight"].items() if not k.startswith("ref_enc.")}
    with pytest.raises(CheckpointError, match="does not have"):
        merge_lora(without, lora, "other.pth")


def test_a_malicious_lora_pickle_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = _write(tmp_path / "evil.pth", {"weight": {}, "lora_rank": 4, "x": Evil()})
    with pytest.raises(CheckpointError, match="refused"):
        read_lora(path)
    assert not marker.exists()
