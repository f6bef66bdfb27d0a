"""The restricted unpickler: tensors and upstream's config load, any other callable is refused unrun."""

from __future__ import annotations

import io
import pickle
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from app.models.upstream.safe_pickle import CheckpointError, HParams, UnsafePickleError, load, save


class _CreatesFile:
    """Unpickling this would call builtins.open(target, "w") and create the file."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


def _torch_bytes(obj, legacy: bool = False) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
    return buf.getvalue()


@pytest.mark.parametrize("legacy", [False, True])
def test_malicious_pickle_is_refused_without_running(tmp_path: Path, legacy: bool) -> None:
    target = tmp_path / "pwned.txt"
    data = _torch_bytes({"weight": {"a": torch.ones(2)}, "config": _CreatesFile(target)}, legacy=legacy)
    with pytest.raises(UnsafePickleError, match=r"evil\.pth.*'(builtins|io)\.open'"):
        load(data, "evil.pth")
    assert not target.exists()


def test_plain_pickle_payload_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "pwned.txt"
    data = pickle.dumps(_CreatesFile(target), protocol=2)
    with pytest.raises(UnsafePickleError, match=r"plain\.pkl"):
        load(data, "plain.pkl")
    assert not target.exists()


def test_tensors_containers_and_hparams_round_trip() -> None:
    hp = HParams(model={"version": "v2", "upsample_rates": [10, 8]}, name="x", pretrain=None)
    obj = OrderedDict(
        weight={"w": torch.arange(6, dtype=torch.float16).view(2, 3)}, config=hp, info="1epoch_2iteration"
    )
    buf = io.BytesIO()
    save(obj, buf)
    data = buf.getvalue()
    assert b"utils\nHParams" in data  # upstream's global name, as its loader expects
    back = load(data, "ok.pth")
    assert isinstance(back, OrderedDict) and back["info"] == "1epoch_2iteration"
    assert torch.equal(back["weight"]["w"], obj["weight"]["w"])
    assert isinstance(back["config"], HParams) and back["config"] == hp
    assert back["config"].model.upsample_rates == [10, 8] and back["config"]["name"] == "x"
    assert "model" in back["config"] and back["config"].get("missing", 3) == 3


def test_not_a_checkpoint_and_truncated() -> None:
    with pytest.raises(CheckpointError, match=r"junk\.bin: not a PyTorch checkpoint"):
        load(b"hello world", "junk.bin")
    data = _torch_bytes({"w": torch.zeros(100)})
    with pytest.raises(CheckpointError, match=r"cut\.pth: the file is truncated or corrupt"):
        load(data[: len(data) // 2], "cut.pth")
