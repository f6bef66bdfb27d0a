"""tools/download_models.py: --list, --check exit codes, and offline downloads that fail fast."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app import assets

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "tools" / "download_models.py"


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("download_models", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fill_required(root: Path) -> None:
    """Create every required file with its expected size (sparse files: no real disk use)."""
    for st in assets.status(root):
        if not st.asset.required:
            continue
        for fs in st.files:
            fs.path.parent.mkdir(parents=True, exist_ok=True)
            with open(fs.path, "wb") as fh:
                fh.truncate(fs.file.size or 1)


def test_list_names_every_asset_and_folder(tool, tmp_path, capsys):
    assert tool.main(["--list", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for asset in assets.all_assets():
        assert asset.id in out
    assert f"{tmp_path / 'chinese-hubert-base'}/" in out


def test_check_fails_while_required_assets_are_missing(tool, tmp_path, capsys):
    assert tool.main(["--check", "--root", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "[MISSING] chinese-hubert-base" in captured.out
    assert str(tmp_path / "chinese-hubert-base" / "pytorch_model.bin") in captured.err
    assert f"python tools/download_models.py --root {tmp_path} chinese-hubert-base" in captured.err
    _fill_required(tmp_path)
    assert tool.main(["--check", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "[present] chinese-hubert-base" in out and "All required assets are present" in out


def test_download_offline_fails_fast_naming_each_file(tool, tmp_path, capsys):
    start = time.monotonic()
    code = tool.main(["chinese-roberta-wwm-ext-large", "g2pw", "--root", str(tmp_path)])
    assert time.monotonic() - start < 5
    assert code == 1
    err = capsys.readouterr().err
    for name in ("config.json", "tokenizer.json", "pytorch_model.bin"):
        assert str(tmp_path / "chinese-roberta-wwm-ext-large" / name) in err
    assert f"into {tmp_path / 'G2PWModel'}/" in err


def test_download_with_network_blocked_fails_fast(tool, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # so only the blocked sockets stop it
    start = time.monotonic()
    assert tool.main(["rmvpe", "--root", str(tmp_path)]) == 1
    assert time.monotonic() - start < 10
    captured = capsys.readouterr()
    assert "cannot reach huggingface.co" in captured.out
    assert str(tmp_path / "rmvpe.pt") in captured.err


def test_unknown_name_and_no_arguments(tool, capsys):
    assert tool.main(["no-such-model"]) == 2
    assert "unknown asset 'no-such-model'" in capsys.readouterr().err
    assert tool.main([]) == 2


def test_real_cli_offline(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1", "STUDIO_HOME": str(tmp_path)}
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1
    assert str(tmp_path / "pretrained_models" / "chinese-hubert-base") in proc.stdout  # STUDIO_HOME moves it
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "sv-eres2netv2"], env=env, capture_output=True, text=True, timeout=60
    )
    assert time.monotonic() - start < 30
    assert proc.returncode == 1
    assert str(tmp_path / "pretrained_models" / "sv" / "pretrained_eres2netv2w24s4ep4.ckpt") in proc.stderr
