"""Building modules without random initialisation (app/models/nn/skip_init.py)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import torch
from torch import nn

from app.models.nn.attention import MultiHeadAttention
from app.models.nn.skip_init import without_init

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_random_init_is_skipped_and_shapes_are_kept(monkeypatch) -> None:
    drawn = []
    real_normal = torch.Tensor.normal_
    monkeypatch.setattr(
        torch.Tensor, "normal_", lambda self, *a, **k: drawn.append(1) or real_normal(self, *a, **k)
    )
    emb = without_init(lambda: nn.Embedding(10, 4))
    attn = without_init(lambda: MultiHeadAttention(8, 8, 2, window_size=4))
    assert drawn == []  # no random fill ran
    assert emb.weight.shape == (10, 4) and emb.weight.device.type == "cpu"
    assert attn.emb_rel_k.shape == (1, 9, 4)  # torch.randn(...) * std became an empty tensor
    nn.Embedding(10, 4)
    assert drawn  # outside the context, initialisation is back


def test_the_skip_is_local_to_its_thread() -> None:
    inside = threading.Event()
    release = threading.Event()
    built = {}

    def factory():
        inside.set()
        release.wait(5)
        return nn.Linear(4, 4)

    worker = threading.Thread(target=lambda: built.setdefault("skipped", without_init(factory)))
    worker.start()
    inside.wait(5)
    torch.manual_seed(0)
    real = nn.Linear(64, 64)  # built in this thread while the other one is inside without_init
    release.set()
    worker.join()
    torch.manual_seed(0)
    assert torch.equal(real.weight, nn.Linear(64, 64).weight)  # normally initialised


def test_loading_a_sovits_file_does_not_pull_in_torch_dynamo(upstream_fixtures: Path) -> None:
    """The meta-device build this replaced imported torch._dynamo + sympy (~70 MB for good)."""
    code = (
        "import sys, torch\n"
        "from app.models.upstream.sovits import load_sovits, read_sovits\n"
        f"read_sovits({str(upstream_fixtures / 'sovits_v2_tiny.pth')!r})\n"
        f"model, _ = load_sovits({str(upstream_fixtures / 'sovits_v2_tiny.pth')!r})\n"
        "assert 'torch._dynamo' not in sys.modules, 'torch._dynamo was imported'\n"
        "print('ok')\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stderr[-2000:]
