"""Console commands of pyproject.toml: each names a ``main`` that exists and answers ``--help``,
as do the ``python -m`` and script forms beside them."""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
COMMANDS = (
    "sovits-studio",
    "sovits-studio-api",
    "sovits-studio-tts",
    "sovits-studio-svc",
    "sovits-studio-svc-live",
    "sovits-studio-download",
)


def declared_scripts() -> dict[str, str]:
    """``[project.scripts]`` of pyproject.toml: command -> ``module:function``."""
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    section = text.split("[project.scripts]", 1)[1].split("\n[", 1)[0]
    return dict(re.findall(r'^([\w-]+)\s*=\s*"([\w.]+:\w+)"', section, flags=re.MULTILINE))


def help_of(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=180)


def test_every_command_is_declared_and_names_a_main() -> None:
    scripts = declared_scripts()
    assert set(scripts) == set(COMMANDS)
    for target in scripts.values():
        module, _, function = target.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), target


def test_installed_commands_match_pyproject() -> None:
    try:
        dist = importlib.metadata.distribution("sovits-studio")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("the project is not installed (make installs it with pip install -e .)")
    installed = {ep.name: ep.value for ep in dist.entry_points if ep.group == "console_scripts"}
    if not installed:
        pytest.skip("installed before the console commands existed: run make again")
    assert installed == declared_scripts()


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_answers_help(command: str) -> None:
    module, _, function = declared_scripts()[command].partition(":")
    # What the generated console script does, without needing it installed.
    code = f"import sys; from {module} import {function}; sys.exit({function}(['--help']))"
    proc = help_of([sys.executable, "-c", code])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage:" in proc.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["webui.py"],
        ["-m", "app.ui"],
        ["-m", "app.api"],
        ["tools/download_models.py"],
        ["-m", "app.assets"],
        ["-m", "app.infer.svc"],
    ],
)
def test_the_python_forms_still_work(argv: list[str]) -> None:
    proc = help_of([sys.executable, *argv, "--help"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage:" in proc.stdout
