"""Pickers of the data folder's ``.list`` files and audio folders (Label and Train tabs).

A person chooses what is there instead of typing a path; a path can still be typed (the menus allow
custom values), and the menus are listed again when one is focused, so a list made a moment ago by
the dataset panel or by another tab appears.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from app.audio import AUDIO_EXTENSIONS

LISTED_MAX = 200  # files or folders offered in a picker; more can still be typed
# Folders of the data folder that hold models, saved voices or run state, never a dataset's clips.
NOT_DATASETS = ("pretrained_models", "GPT_weights", "SoVITS_weights", "presets", "logs")
RUN_STATE = ("output/experiments", "output/jobs")


def _shown(path: Path, home: Path) -> bool:
    parts = path.relative_to(home).parts
    if any(p.startswith(".") for p in parts) or (parts and parts[0].startswith(NOT_DATASETS)):
        return False
    return not "/".join(parts).startswith(RUN_STATE)


def list_files(home: Path) -> list[str]:
    """The ``.list`` files of the data folder (relative, newest first), for the picker."""
    found = sorted(
        (p for p in home.rglob("*.list") if p.is_file() and not any(x.startswith(".") for x in p.parts)),
        key=lambda p: -p.stat().st_mtime,
    )
    return [str(p.relative_to(home)) for p in found[:LISTED_MAX]]


def audio_folders(home: Path) -> list[str]:
    """Folders of the data folder holding audio files (relative, sorted), for the picker; model,
    voice and run-state folders are left out."""
    if not home.is_dir():
        return []
    folders = {
        p.parent
        for p in home.rglob("*")
        if p.suffix.lower() in AUDIO_EXTENSIONS and _shown(p, home) and p.is_file()
    }
    return sorted(str(f.relative_to(home)) for f in folders)[:LISTED_MAX]


def refresh_pickers(home: Path, list_now: str | None, folder_now: str | None) -> tuple[Any, Any]:
    """The two pickers listed again, keeping what each shows."""
    return (
        gr.update(choices=list_files(home), value=list_now),
        gr.update(choices=audio_folders(home), value=folder_now),
    )
