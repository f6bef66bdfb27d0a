"""app.paths.fit_file_name: derived file names always fit, stay distinct, and can be created."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.fileio import atomic_write_bytes
from app.paths import NAME_MAX, fit_file_name

# What derived names append to a source name in this project (slices, features, separation, edits).
SUFFIXES = ["", ".wav", ".pt", "_0000012345_0000067890.wav", "_merged.wav", "_part2-3.wav", ".flac"]
# Names as users make them: any script, spaces, quotes, leading dashes, shell characters, long.
NASTY = st.sampled_from(
    ["-", "--rf ", " ", "'", '"', "$(x)", "`x`", ";", "&", "|", "*", "?", "~", "\\", "\t", "\n"]
)
NAMES = st.lists(st.one_of(st.text(min_size=1, max_size=40), NASTY), max_size=40).map("".join)
LONG = st.builds(
    lambda ch, n: ch * n, st.sampled_from(["a", "é", "語", "🎤", "ש", "-", " "]), st.integers(60, 300)
)


def _size(name: str) -> int:
    return len(name.encode("utf-8", "surrogateescape"))


def test_ordinary_names_are_kept_as_upstream_names_them():
    assert fit_file_name("a.wav", ".pt") == "a.wav.pt"
    assert fit_file_name("take 1 'final'", ".wav") == "take 1 'final'.wav"
    assert fit_file_name("-lead; $(x)", ".wav") == "-lead; $(x).wav"
    assert fit_file_name("x" * 252, ".pt") == "x" * 252 + ".pt"  # exactly 255 bytes still fits


def test_a_long_name_keeps_its_readable_start_and_a_hash():
    name = fit_file_name("語" * 120, "_0000000000_0000032000.wav")
    assert _size(name) <= NAME_MAX and name.startswith("語" * 60) and name.endswith("_0000032000.wav")
    assert "~" in name
    undecodable = os.fsdecode(b"\xff\xfe" * 150)  # a name on disk that is not UTF-8
    assert _size(fit_file_name(undecodable, ".pt")) <= NAME_MAX
    with pytest.raises(ValueError, match="no room"):
        fit_file_name("a", "x" * 250)


@settings(max_examples=300, deadline=None)
@given(stem=st.one_of(NAMES, LONG), suffix=st.sampled_from(SUFFIXES))
def test_derived_names_fit_and_are_plain_names(stem, suffix):
    name = fit_file_name(stem, suffix)
    assert _size(name) <= NAME_MAX
    assert name.endswith(suffix) and name not in {"", ".", ".."}
    assert "/" not in name and "\0" not in name and "\n" not in name and "\t" not in name
    assert fit_file_name(stem, suffix) == name  # the same source always gets the same name


@settings(max_examples=300, deadline=None)
@given(a=st.one_of(NAMES, LONG), b=st.one_of(NAMES, LONG), suffix=st.sampled_from(SUFFIXES))
def test_distinct_sources_get_distinct_names(a, b, suffix):
    if a != b:
        assert fit_file_name(a, suffix) != fit_file_name(b, suffix)


def test_names_sharing_a_long_prefix_stay_apart():
    base = "é" * 200
    names = {fit_file_name(base + tail, ".pt") for tail in ("", "a", "b", " ", "-")}
    assert len(names) == 5


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stem=st.one_of(NAMES, LONG), suffix=st.sampled_from(SUFFIXES))
def test_derived_names_can_be_created_and_found(tmp_path, stem, suffix):
    name = fit_file_name(stem, suffix)
    path = tmp_path / name
    atomic_write_bytes(path, b"x")  # the temporary name beside it must fit too
    assert os.fsdecode(os.fsencode(path.name)) == name and path.read_bytes() == b"x"
    path.unlink()
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


def test_user_chosen_names_leave_room_for_what_is_appended():
    from app.paths import USER_NAME_MAX, safe_name
    from app.train.resume import weights_name

    longest = "語" * (USER_NAME_MAX // 3)
    assert safe_name(f"  {longest} ") == longest
    assert len(weights_name(longest, 9999, 999_999_999, "_l128.pth").encode()) <= NAME_MAX
    with pytest.raises(ValueError, match="too long"):
        safe_name("語" * (USER_NAME_MAX // 3 + 1))
    for bad in ("", "..", "a/b", "c:\\d"):
        with pytest.raises(ValueError, match="invalid name"):
            safe_name(bad)
