"""app.fileio: whole file or old file, never a half-written one."""

from __future__ import annotations

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
