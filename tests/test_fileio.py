"""app.fileio: whole file or old file, never a half-written one."""

from __future__ import annotations

import os
import stat

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.fileio import atomic_path, atomic_write, atomic_write_bytes, atomic_write_text


@given(st.text(), st.text())
def test_text_replaces_whole_file(tmp_path_factory, old, new):
    path = tmp_path_factory.mktemp("t") / "sub" / "file.txt"
    atomic_write_text(path, old)
    atomic_write_text(path, new)
    with open(path, encoding="utf-8", newline="") as fh:
        assert fh.read() == new
    assert [p.name for p in path.parent.iterdir()] == ["file.txt"]


@given(st.binary())
def test_bytes_round_trip(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("b") / "file.bin"
    atomic_write_bytes(path, data)
    assert path.read_bytes() == data


def test_failure_keeps_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "state.json"
    atomic_write_text(path, "old")
    with pytest.raises(RuntimeError, match="disk on fire"), atomic_write(path, "w") as fh:
        fh.write("half of the new")
        raise RuntimeError("disk on fire")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_atomic_path_keeps_suffix_for_format_sniffing_writers(tmp_path):
    target = tmp_path / "out.flac"
    with atomic_path(target) as tmp:
        assert tmp.suffix == ".flac" and tmp.parent == tmp_path and tmp != target
        tmp.write_bytes(b"x")
    assert target.read_bytes() == b"x"


def test_mode_other_than_whole_file_is_refused(tmp_path):
    with pytest.raises(ValueError, match="mode must be 'w' or 'wb'"), atomic_write(tmp_path / "f", "a"):
        pass


def test_new_files_are_private_like_mkstemp_unless_told(tmp_path):
    umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "private.json", "{}")
        atomic_write_bytes(tmp_path / "ordinary.bin", b"x", permissions=0o666)
        with atomic_path(tmp_path / "clip.wav", permissions=0o666) as tmp:
            tmp.write_bytes(b"RIFF")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "private.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "ordinary.bin").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "clip.wav").stat().st_mode) == 0o644


def test_text_mode_open_args_reach_open(tmp_path):
    path = tmp_path / "rows.txt"
    with atomic_write(path, "w", newline="") as fh:
        fh.write("a\r\nb\n")
    assert path.read_bytes() == b"a\r\nb\n"
