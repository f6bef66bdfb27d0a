"""Label tab state without a browser: open, sync page edits, filter, page, actions, save, confinement."""

from __future__ import annotations

import pytest
import soundfile as sf

from app.data.filelist import read_list
from app.ui.tabs.label_session import (
    PAGE_SIZE,
    SessionError,
    bad_lines_table,
    delete_rows,
    merge_selected,
    open_list,
    open_or_warn,
    page_view,
    save,
    selected,
    set_filter,
    show_page,
    split_selected,
    status_line,
    sync_page,
    undo,
)
from tests.synth import tone

SR = 16000


@pytest.fixture
def dataset(tmp_path):
    """Data folder with 13 clips (1..13 tenths of a second above 1 s) and a list with one bad line."""
    clips = tmp_path / "output" / "set" / "clips"
    clips.mkdir(parents=True)
    lines = []
    for i in range(13):
        sf.write(clips / f"c{i:02d}.wav", tone(1.0 + i / 10, SR, 200 + 20 * i), SR)
        lines.append(f"{clips / f'c{i:02d}.wav'}|spk|EN|sentence number {i}")
    lines.insert(3, "this line is broken")
    listing = tmp_path / "output" / "set" / "set.list"
    listing.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tmp_path, listing


def test_open_shows_first_page_and_bad_lines(dataset):
    home, _ = dataset
    session = open_list(home, "output/set/set.list")
    assert len(session.rows) == 13 and session.shown == tuple(range(PAGE_SIZE)) and session.pages == 2
    assert [e.line_no for e in session.bad_lines] == [4]
    assert "| 4 |" in bad_lines_table(session) and "this line is broken" in bad_lines_table(session)
    assert "13 rows" in status_line(session) and "1 unreadable lines" in status_line(session)
    views = page_view(session)
    assert views[0].label.startswith("#1 · 1.0 s · c00.wav") and views[0].audio is not None
    assert show_page(session, 5).shown == (10, 11, 12)


def test_paths_must_stay_in_the_data_folder(dataset, tmp_path_factory):
    home, _ = dataset
    with pytest.raises(SessionError, match="outside the data folder"):
        open_list(home, "/etc/passwd")
    with pytest.raises(SessionError, match=r"not a \.list"):
        open_list(home, "output/set/clips/c00.wav")
    with pytest.raises(SessionError, match="file not found"):
        open_list(home, "output/none.list")
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    sf.write(elsewhere / "x.wav", tone(1.0, SR), SR)
    (home / "out.list").write_text(f"{elsewhere / 'x.wav'}|s|EN|a\n{elsewhere / 'x.wav'}|s|EN|b\n")
    before = (home / "out.list").read_bytes()
    outside = open_list(home, "out.list")
    # Lines whose audio is outside are not rows (never played, measured or merged): reported by number.
    assert outside.rows == () and page_view(outside) == []
    assert [(e.line_no, e.kind) for e in outside.bad_lines] == [(1, "outside"), (2, "outside")]
    assert "audio outside the data folder" in bad_lines_table(outside) and "| 1, 2 | 2 |" in bad_lines_table(
        outside
    )
    with pytest.raises(SessionError, match="tick at least two"):
        merge_selected(outside, [], 0.1)
    save(outside)  # and written back unchanged
    assert (home / "out.list").read_bytes() == before


def test_edits_on_the_page_are_taken_in_before_every_action(dataset):
    home, _ = dataset
    session = open_list(home, "output/set/set.list")
    texts = [v.text for v in page_view(session)]
    langs = [v.language for v in page_view(session)]
    texts[1] = "corrected text"
    langs[2] = "ja"
    # Paging away keeps the edit (upstream's tool rolled it back).
    moved = show_page(sync_page(session, texts, langs), 1)
    assert moved.rows[1].text == "corrected text" and moved.rows[2].lang == "JA"
    assert moved.history.last_edit == "language of row 3"
    assert undo(undo(moved)).rows == session.rows
    texts[0] = "   "
    with pytest.raises(SessionError, match="empty"):
        sync_page(session, texts, langs)


def test_filter_by_text_and_duration(dataset):
    home, _ = dataset
    session = open_list(home, "output/set/set.list")
    assert set_filter(session, "number 1", None, None).visible == (1, 10, 11, 12)
    assert set_filter(session, "", 1.45, 1.75).visible == (5, 6, 7)
    with pytest.raises(SessionError, match="above the maximum"):
        set_filter(session, "", 3, 2)


def test_delete_merge_split_undo_and_save_with_backup(dataset):
    home, listing = dataset
    original = listing.read_bytes()
    session = open_list(home, str(listing))
    checks = [False] * PAGE_SIZE
    checks[4] = checks[5] = True
    merged = merge_selected(session, selected(session, checks), 0.5)
    assert merged.rows[4].text == "sentence number 4 sentence number 5" and len(merged.rows) == 12
    assert merged.durations[merged.rows[4].wav_path] == pytest.approx(1.4 + 0.5 + 1.5, abs=1e-3)
    split = split_selected(merged, [0], 0.4)
    assert [r.wav_name for r in split.rows[:2]] == ["c00_part1.wav", "c00_part2.wav"]
    deleted = delete_rows(split, [12])
    assert len(deleted.rows) == 12 and deleted.unsaved
    with pytest.raises(SessionError, match="exactly one"):
        split_selected(deleted, [0, 1], 0.2)
    with pytest.raises(SessionError, match="at least two"):
        merge_selected(deleted, [0], 0.2)
    saved, summary = save(deleted)
    assert not saved.unsaved and "previous version kept as set.list." in summary and "1 unreadable" in summary
    parsed = read_list(listing)
    assert parsed.rows == deleted.rows and [e.line for e in parsed.errors] == ["this line is broken"]
    backups = list(listing.parent.glob("set.list.*.bak"))
    assert len(backups) == 1 and backups[0].read_bytes() == original


def test_opening_another_list_does_not_drop_unsaved_changes(dataset):
    home, _ = dataset
    session = open_list(home, "output/set/set.list")
    edited = delete_rows(session, [0])
    warned, note = open_or_warn(edited, "output/set/set.list")
    assert "unsaved changes" in note and warned.rows == edited.rows
    reopened, note = open_or_warn(warned, "output/set/set.list")
    assert note == "" and len(reopened.rows) == 13 and not reopened.unsaved
    clean, note = open_or_warn(session, "output/set/set.list")
    assert note == "" and clean.rows == session.rows


def test_report_groups_outside_links_bad_bytes_and_repeated_names(dataset, tmp_path_factory):
    home, listing = dataset
    clips = listing.parent / "clips"
    secret = tmp_path_factory.mktemp("secret")
    sf.write(secret / "s.wav", tone(1.0, SR), SR)
    (clips / "leak.wav").symlink_to(secret / "s.wav")
    long_name = "é" * 125 + ".wav"  # 254 bytes: a split must shorten the new names
    sf.write(clips / long_name, tone(1.5, SR), SR)
    lines = [
        b"clips/c00.wav|spk|EN|first",  # 1
        b"clips/leak.wav|spk|EN|a link leading out",  # 2
        b"clips/c00.wav|spk|EN|the same clip again",  # 3
        b"clips/c01.wav|spk|EN|\xff broken bytes",  # 4
        f"clips/{long_name}|spk|EN|long".encode(),  # 5
        b"../../../etc/passwd|spk|EN|outside",  # 6
    ]
    odd = listing.parent / "odd.list"
    odd.write_bytes(b"\n".join(lines) + b"\n")
    session = open_list(home, "output/set/odd.list")
    assert [r.text for r in session.rows] == ["first", "the same clip again", "long"]
    assert [(e.line_no, e.kind) for e in session.bad_lines] == [
        (2, "outside"),
        (4, "encoding"),
        (6, "outside"),
    ]
    assert [(e.line_no, e.kind) for e in session.notices] == [(3, "duplicate")]
    table = bad_lines_table(session)
    assert "| audio outside the data folder (not read) | 2, 6 | 2 |" in table
    assert "| clip name used by an earlier line | 3 | 1 |" in table and "| not valid UTF-8 | 4 | 1 |" in table
    assert "1 repeated clip names" in status_line(session)
    split = split_selected(session, [2], 0.5)
    new_names = [r.wav_name for r in split.rows[2:4]]
    assert all(len(n.encode()) <= 255 and (clips / n).is_file() for n in new_names)
    save(split)  # the unread lines go back byte for byte
    assert b"clips/c01.wav|spk|EN|\xff broken bytes\n" in odd.read_bytes()
