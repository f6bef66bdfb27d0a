"""Formatting's view of a .list: good rows become items; every other line is one grouped problem."""

from __future__ import annotations

import pytest

from app.data.filelist import group_issues
from app.data.preprocess.tts_dataset import FormatReport, read_items
from app.paths import NAME_MAX


@pytest.fixture
def home(tmp_path):
    home, secret = tmp_path / "home", tmp_path / "secret"
    (home / "clips").mkdir(parents=True)
    secret.mkdir()
    (secret / "s.wav").write_bytes(b"RIFF")
    for name in ("a.wav", "b c 'q' -x $(y).wav", "é" * 125 + ".wav"):
        (home / "clips" / name).write_bytes(b"RIFF")
    (home / "clips" / "leak.wav").symlink_to(secret / "s.wav")
    return home


def test_good_rows_become_items_and_bad_lines_are_grouped_by_kind(home):
    long_name = "é" * 125 + ".wav"  # 254 bytes: its feature files need a shortened name
    lines = [
        b"clips/a.wav|s|EN|one",  # 1 good
        b"clips/b c 'q' -x $(y).wav|s|EN|two",  # 2 good: spaces, quotes, a dash, shell characters
        f"clips/{long_name}|s|EN|three".encode(),  # 3 good
        b"../secret/s.wav|s|EN|outside",  # 4
        b"clips/leak.wav|s|EN|a link leading out",  # 5
        b"C:\\Users\\me\\a.wav|s|EN|windows",  # 6
        b"clips/\xff\xfe.wav|s|EN|bad bytes",  # 7
        b"other/a.wav|s|EN|same name as line 1",  # 8
        b"clips/none.wav|s|EN|missing",  # 9
        b"clips/a2.wav|s|DE|language",  # 10
        b"two|fields",  # 11
        b"../secret/s.wav|s|EN|outside again",  # 12
    ]
    listing = home / "voice.list"
    listing.write_bytes(b"\n".join(lines) + b"\n")
    items, problems = read_items(listing, None, "v2", root=home)
    assert [i.line_no for i in items] == [1, 2, 3]
    assert items[1].name == "b c 'q' -x $(y).wav" and items[2].name == long_name
    assert [p.line_no for p in problems] == list(range(4, 13))  # every other line, in order
    groups = {g.kind: (g.count, g.line_numbers) for g in group_issues(problems)}
    assert groups == {
        "outside": (3, (4, 5, 12)),
        "windows-path": (1, (6,)),
        "encoding": (1, (7,)),
        "duplicate": (1, (8,)),
        "missing": (1, (9,)),
        "language": (1, (10,)),
        "fields": (1, (11,)),
    }
    report = FormatReport(len(items), tuple(problems), ())
    assert len(report.problem_lines()) == 7  # one line per kind


def test_an_audio_folder_bounds_the_paths(home):
    listing = home / "voice.list"
    listing.write_text("C:\\old\\a.wav|s|EN|one\nleak.wav|s|EN|two\n..|s|EN|three\n", encoding="utf-8")
    items, problems = read_items(listing, home / "clips", "v2", root=home)
    assert [(i.line_no, i.audio.name) for i in items] == [(1, "a.wav")]
    assert [(p.line_no, p.kind) for p in problems] == [(2, "outside"), (3, "outside")]


def test_experiment_files_of_a_long_clip_name_fit(tmp_path):
    from app.data.experiment import ExperimentFiles

    files = ExperimentFiles(tmp_path / "exp")
    long_name = "語" * 84 + ".wav"  # 256 bytes: too long even before ".pt" is added
    for path in (
        files.bert(long_name),
        files.hubert(long_name),
        files.sv(long_name),
        files.wav32k(long_name),
    ):
        assert len(path.name.encode()) <= NAME_MAX
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    assert files.bert("a.wav").name == "a.wav.pt"  # ordinary names stay upstream's
    assert files.bert(long_name) != files.bert(long_name[1:])
