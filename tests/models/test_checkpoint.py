"""Our resume checkpoints: exact resume, strict loading, atomic writes, refusal of other files."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch

from app.models.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, restore, save_checkpoint
from app.models.gpt.config import GPTConfig
from app.models.gpt.model import GPT
from tests.models.gpt.tiny import tiny_config, tiny_gpt, tiny_inputs


def _trainer(seed: int = 0) -> tuple[GPT, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    model = tiny_gpt(seed=seed).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    return model, opt, sched


def _train(model: GPT, opt: torch.optim.Optimizer, sched, steps: int, first: int) -> None:
    for i in range(first, first + steps):
        phones, bert, codes = tiny_inputs(model, 6, 5, seed=100 + i)
        torch.manual_seed(i)  # dropout masks depend on the step, not on the process history
        out = model(phones, torch.tensor([6]), bert, codes, torch.tensor([5]))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        sched.step()


def test_resume_continues_exactly(tmp_path: Path) -> None:
    model, opt, sched = _trainer()
    _train(model, opt, sched, 3, first=0)
    path = save_checkpoint(
        tmp_path / "run" / "last.pt",
        kind="gpt",
        model=model,
        model_config=model.config,
        step=3,
        epoch=1,
        optimizer=opt,
        scheduler=sched,
        extra={"note": "test", "rng": torch.get_rng_state()},
    )
    _train(model, opt, sched, 2, first=3)

    ckpt = read_checkpoint(path, kind="gpt")
    assert (ckpt.step, ckpt.epoch, ckpt.extra["note"]) == (3, 1, "test")
    resumed = GPT(GPTConfig(**ckpt.model_config)).train()
    opt2 = torch.optim.AdamW(resumed.parameters(), lr=1e-3, betas=(0.9, 0.95))
    sched2 = torch.optim.lr_scheduler.StepLR(opt2, step_size=2, gamma=0.5)
    restore(ckpt, resumed, opt2, sched2)
    _train(resumed, opt2, sched2, 2, first=3)
    for (name, a), b in zip(model.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert sched2.get_last_lr() == sched.get_last_lr()


def test_strict_load_refuses_other_shapes_and_kinds(tmp_path: Path) -> None:
    model = tiny_gpt()
    path = save_checkpoint(tmp_path / "a.pt", kind="gpt", model=model, model_config=model.config, step=0)
    bigger = GPT(tiny_config(dim=64))
    with pytest.raises(CheckpointError, match=r"a\.pt: .*has shape"):
        load_checkpoint(path, bigger)
    deeper = GPT(tiny_config(n_layer=3))
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(path, deeper)
    with pytest.raises(CheckpointError, match="a 'gpt' checkpoint, expected a 'sovits' one"):
        read_checkpoint(path, kind="sovits")
    with pytest.raises(CheckpointError, match="no optimizer state"):
        load_checkpoint(path, tiny_gpt(), optimizer=torch.optim.SGD(model.parameters(), lr=0.1))


def test_atomic_write_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny_gpt()
    path = save_checkpoint(tmp_path / "c.pt", kind="gpt", model=model, model_config=model.config, step=1)
    before = path.read_bytes()

    def broken(obj: object, fh: io.BufferedWriter) -> None:
        fh.write(b"PK half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, kind="gpt", model=model, model_config=model.config, step=2)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_foreign_truncated_and_malicious_files_are_refused(tmp_path: Path, upstream_fixtures: Path) -> None:
    with pytest.raises(CheckpointError, match="not a SoVITS Studio checkpoint"):
        read_checkpoint(upstream_fixtures / "gpt_v2_tiny.ckpt")
    model = tiny_gpt()
    good = save_checkpoint(tmp_path / "g.pt", kind="gpt", model=model, model_config=model.config, step=1)
    (tmp_path / "t.pt").write_bytes(good.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"t\.pt: truncated"):
        read_checkpoint(tmp_path / "t.pt")
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"format": "sovits-studio-checkpoint/1", "kind": "gpt", "extra": Evil()}, tmp_path / "e.pt")
    with pytest.raises(CheckpointError, match="refused"):
        read_checkpoint(tmp_path / "e.pt")
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        read_checkpoint(tmp_path / "none.pt")
