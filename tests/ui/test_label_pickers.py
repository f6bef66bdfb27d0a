"""Label tab: .list files and audio folders are picked from the data folder; edits wait for an open list."""

from __future__ import annotations

import os
from pathlib import Path

from app.ui.tabs.label_handlers import EDIT_BUTTONS, edits_enabled
from app.ui.tabs.label_session import ProofSession
from app.ui.tabs.pickers import audio_folders, list_files, refresh_pickers


def _touch(path: Path, mtime: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    os.utime(path, (mtime, mtime))
    return path


def test_pickers_list_the_data_folder_relative_newest_first(tmp_path):
    _touch(tmp_path / "output" / "old" / "old.list", 1_000)
    _touch(tmp_path / "output" / "new" / "new.list", 2_000)
    _touch(tmp_path / ".hidden" / "skip.list", 3_000)
    _touch(tmp_path / "output" / "clips" / "a.wav", 1_000)
    _touch(tmp_path / "output" / "clips" / "deep" / "b.flac", 1_000)
    _touch(tmp_path / "output" / "notes" / "readme.txt", 1_000)
    _touch(tmp_path / "data" / "wavs" / "c.wav", 1_000)  # anywhere in the data folder
    for not_a_dataset in ("pretrained_models/x", "GPT_weights_v2", "output/experiments/e/5-wav32k", ".cache"):
        _touch(tmp_path / not_a_dataset / "d.wav", 1_000)
    assert list_files(tmp_path) == ["output/new/new.list", "output/old/old.list"]
    assert audio_folders(tmp_path) == ["data/wavs", "output/clips", "output/clips/deep"]
    lists, folders = refresh_pickers(tmp_path, "output/old/old.list", None)
    assert lists["choices"] == list_files(tmp_path) and lists["value"] == "output/old/old.list"
    assert folders["choices"] == audio_folders(tmp_path)
    assert audio_folders(tmp_path / "nothing") == []


def test_edit_buttons_follow_whether_a_list_is_open(tmp_path):
    closed = edits_enabled(ProofSession(home=tmp_path))
    assert len(closed) == EDIT_BUTTONS and all(u["interactive"] is False for u in closed)
    opened = ProofSession(home=tmp_path, list_path=tmp_path / "x.list")
    assert all(u["interactive"] is True for u in edits_enabled(opened))
