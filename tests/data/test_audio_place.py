"""The one resolver of listed audio paths: whatever a list says, nothing outside the data folder is used."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.data.audio_place import AudioPathError, AudioPlace, is_windows_absolute, locate_rows
from app.data.filelist import make_row, parse_text

# Path pieces a list may hold: any text, "..", ".", empty pieces, separators of both systems.
PIECES = st.one_of(
    st.text(min_size=1, max_size=12).filter(lambda t: "\0" not in t),
    st.sampled_from(["..", ".", "", "~", "-x", "a b", "'q'", "$(rm)", "link_out", "link_in", "clips"]),
)
SEPARATORS = st.sampled_from(["/", "\\"])
PREFIXES = st.sampled_from(
    ["", "/", "//", "C:\\", "c:/", "\\\\server\\share\\", "\\\\?\\C:\\", "~/", "./", "../"]
)


@st.composite
def listed_paths(draw) -> str:
    pieces = draw(st.lists(PIECES, min_size=1, max_size=8))
    sep = draw(SEPARATORS)
    return draw(PREFIXES) + sep.join(pieces)


@pytest.fixture
def tree(tmp_path) -> tuple[Path, Path, Path]:
    """home/ (the data folder) with lists/ and clips/, and secret/ beside it; links inside home lead in and out."""
    home, secret = tmp_path / "home", tmp_path / "secret"
    (home / "lists").mkdir(parents=True)
    (home / "clips").mkdir()
    secret.mkdir()
    (secret / "x.wav").write_bytes(b"RIFF")
    (home / "clips" / "a.wav").write_bytes(b"RIFF")
    for folder in (home / "lists", home / "clips"):
        (folder / "link_out").symlink_to(secret)
        (folder / "link_in").symlink_to(home / "clips")
    (home / "clips" / "escape.wav").symlink_to(secret / "x.wav")
    return home, home / "lists", home / "clips"


def _within(path: Path, folder: Path) -> bool:
    folder = folder.resolve()
    return path == folder or folder in path.parents


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(listed=listed_paths(), with_audio_dir=st.booleans())
def test_the_resolver_never_returns_a_path_outside(tree, listed, with_audio_dir):
    home, lists, clips = tree
    place = AudioPlace(audio_dir=clips if with_audio_dir else None, base=lists, root=home)
    try:
        found = place.locate(listed)
    except AudioPathError as exc:
        assert exc.kind in {"outside", "windows-path"} and str(exc)
        return
    assert _within(found, clips if with_audio_dir else home)
    assert found == found.resolve()  # links followed: what is returned is what would be opened


def test_forms_of_paths(tree):
    home, lists, clips = tree
    place = AudioPlace(base=lists, root=home)
    assert place.locate("../clips/a.wav") == (clips / "a.wav").resolve()
    assert place.locate(str(clips / "a.wav")) == (clips / "a.wav").resolve()
    assert place.locate("..\\clips\\a.wav") == (clips / "a.wav").resolve()  # relative, written on Windows
    assert place.locate("link_in/a.wav") == (clips / "a.wav").resolve()  # a link that stays inside is fine
    for outside in (
        "../../secret/x.wav",
        "/etc/passwd",
        "link_out/x.wav",
        "../clips/escape.wav",
        "//srv/x.wav",
    ):
        with pytest.raises(AudioPathError, match="outside") as caught:
            place.locate(outside)
        assert caught.value.kind == "outside"
    for windows in ("C:\\data\\a.wav", "d:/data/a.wav", "\\\\server\\share\\a.wav"):
        assert is_windows_absolute(windows)
        with pytest.raises(AudioPathError, match="Windows drive or network path") as caught:
            place.locate(windows)
        assert caught.value.kind == "windows-path"
    # With an audio folder, only the file name counts: moved datasets and Windows lists resolve there.
    by_name = AudioPlace(audio_dir=clips, base=lists, root=home)
    for listed in ("C:\\Users\\me\\a.wav", "\\\\server\\share\\a.wav", "/old/place/a.wav", "a.wav"):
        assert by_name.locate(listed) == (clips / "a.wav").resolve()
    for bad in ("..", "x/..", "escape.wav"):  # the folder's parent, a link out of the folder
        with pytest.raises(AudioPathError, match=r"outside|names no file"):
            by_name.locate(bad)
    # An audio folder outside the data folder lets nothing through.
    with pytest.raises(AudioPathError, match="outside"):
        AudioPlace(audio_dir=home.parent / "secret", root=home).locate("x.wav")


def test_without_a_root_the_lists_folder_bounds_the_paths(tree):
    _, _, clips = tree
    place = AudioPlace(base=clips)
    assert place.locate("a.wav") == (clips / "a.wav").resolve()
    with pytest.raises(AudioPathError):
        place.locate("../lists/x.wav")


def test_locate_rows_reports_refused_lines_by_number(tree):
    home, lists, _ = tree
    parsed = parse_text("../clips/a.wav|s|EN|one\n../../secret/x.wav|s|EN|two\nC:\\x\\b.wav|s|EN|three\n")
    located = locate_rows(parsed.rows, parsed.line_numbers, AudioPlace(base=lists, root=home))
    assert located.line_numbers == (1,) and located.rows == parsed.rows[:1]
    assert [(e.line_no, e.kind) for e in located.refused] == [(2, "outside"), (3, "windows-path")]
    assert located.refused[0].line == "../../secret/x.wav|s|EN|two"  # kept verbatim for a save
    assert make_row("a.wav", "s", "en", "x").wav_name == "a.wav"
