"""The .list reader/writer: upstream's format, lenient reading, line-numbered errors, safe writes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.data.filelist import (
    LANGUAGE_SPELLINGS,
    SHOWN_LINES,
    FileListError,
    ListRow,
    backups_of,
    duplicate_names,
    format_list,
    group_issues,
    language_of,
    make_row,
    parse_bytes,
    parse_text,
    read_list,
    write_list,
)


def test_reads_upstream_rows_with_bom_crlf_and_pipes_in_text(tmp_path):
    path = tmp_path / "spk.list"
    content = (
        "\ufeff/data/spk/a.wav|spk|ZH|你好。\r\n"
        "\r\n"
        "/data/spk/b.wav|spk|EN|Either this | or that.\r\n"
        "b2.wav|spk|ja|こんにちは\r\n"
    )
    path.write_bytes(content.encode("utf-8"))
    parsed = read_list(path)
    assert parsed.errors == ()
    assert [r.wav_path for r in parsed.rows] == ["/data/spk/a.wav", "/data/spk/b.wav", "b2.wav"]
    assert parsed.rows[1].text == "Either this | or that."
    assert [r.language for r in parsed.rows] == ["zh", "en", "ja"]
    assert parsed.line_numbers == (1, 3, 4)


def test_every_bad_line_is_reported_with_its_number_and_kept():
    content = "\n".join(
        [
            "a.wav|spk|EN|fine",  # 1
            "only|three|fields",  # 2
            "b.wav|spk|EN|   ",  # 3 empty text
            "c.wav|spk|FR|bonjour",  # 4 unknown language
            "|spk|EN|no path",  # 5
            "d.wav|spk|yue|粵語",  # 6
        ]
    )
    parsed = parse_text(content)
    assert [r.wav_path for r in parsed.rows] == ["a.wav", "d.wav"]
    assert [e.line_no for e in parsed.errors] == [2, 3, 4, 5]
    assert "4 fields" in parsed.errors[0].reason
    assert "text" in parsed.errors[1].reason
    assert "'FR'" in parsed.errors[2].reason and "JP" in parsed.errors[2].reason
    assert "audio path" in parsed.errors[3].reason
    assert parsed.errors[2].line == "c.wav|spk|FR|bonjour"
    assert "line 4" in str(parsed.errors[2])
    # Nothing dropped: every non-blank line is a row or an error.
    assert len(parsed.rows) + len(parsed.errors) == 6


@pytest.mark.parametrize("code", sorted(LANGUAGE_SPELLINGS))
def test_upstream_language_spellings_are_accepted(code):
    row = parse_text(f"x.wav|s|{code}|t").rows[0]
    assert row.lang == code
    assert row.language == LANGUAGE_SPELLINGS[code]


def test_language_ids():
    assert language_of("JP") == "ja" and language_of("Yue") == "yue"
    with pytest.raises(FileListError, match="unknown language code 'de'"):
        language_of("de")


def test_an_invalid_utf8_line_is_reported_and_the_rest_read(tmp_path):
    path = tmp_path / "bad.list"
    raw = b"a.wav|s|EN|ok\nb.wav|s|EN|\xff\xfe bad\nc.wav|s|EN|fine\n"
    path.write_bytes(raw)
    parsed = read_list(path)
    assert [r.wav_path for r in parsed.rows] == ["a.wav", "c.wav"] and parsed.line_numbers == (1, 3)
    (bad,) = parsed.errors
    assert (bad.line_no, bad.kind) == (2, "encoding") and "not valid UTF-8" in bad.reason
    assert "\ufffd" in bad.shown and str(bad)
    # Written back, the undecodable line keeps its bytes.
    write_list(path, parsed.rows, extra_lines=[bad.line], backup=False)
    assert path.read_bytes() == b"a.wav|s|EN|ok\nc.wav|s|EN|fine\nb.wav|s|EN|\xff\xfe bad\n"
    with pytest.raises(FileListError, match="file not found"):
        read_list(tmp_path / "missing.list")


def test_rows_refuse_what_would_break_the_format():
    with pytest.raises(FileListError, match="line break"):
        ListRow("a.wav", "s", "EN", "two\nlines")
    with pytest.raises(FileListError, match="must not contain"):
        ListRow("a|b.wav", "s", "EN", "t")
    with pytest.raises(FileListError, match="empty"):
        ListRow("a.wav", "s", "EN", " ")
    with pytest.raises(FileListError, match="unknown language"):
        ListRow("a.wav", "s", "xx", "t")
    assert make_row("/x/a.wav", " spk ", "ja", " text ").to_line() == "/x/a.wav|spk|JA|text"


def test_write_round_trips_keeps_malformed_lines_and_backs_up(tmp_path):
    path = tmp_path / "out" / "v.list"
    rows = [make_row("/d/a.wav", "v", "en", "Hello | world"), make_row("/d/b.wav", "v", "zh", "你好")]
    first = write_list(path, rows)
    assert first.backup is None and first.rows == 2
    assert path.read_text(encoding="utf-8") == "/d/a.wav|v|EN|Hello | world\n/d/b.wav|v|ZH|你好\n"
    assert read_list(path).rows == tuple(rows)

    before = path.read_bytes()
    second = write_list(path, rows[:1], extra_lines=["broken line"])
    assert second.backup is not None and second.backup.parent == path.parent
    assert second.backup.read_bytes() == before
    assert not second.backup.name.endswith(".list")
    assert backups_of(path) == [second.backup]
    again = read_list(path)
    assert again.rows == tuple(rows[:1])
    assert [e.line for e in again.errors] == ["broken line"]
    # No temp files left behind.
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([path.name, second.backup.name])


def test_backups_are_pruned_to_the_newest(tmp_path, monkeypatch):
    import app.data.filelist as fl

    monkeypatch.setattr(fl, "MAX_BACKUPS", 3)
    path = tmp_path / "v.list"
    row = make_row("a.wav", "v", "en", "x")
    for i in range(6):
        write_list(path, [row.with_text(f"version {i}")])
    kept = backups_of(path)
    assert len(kept) == 3
    # The newest backup holds the version before the last write.
    assert read_list(kept[-1]).rows[0].text == "version 4"
    assert read_list(kept[0]).rows[0].text == "version 2"


def test_format_refuses_kept_lines_with_breaks():
    with pytest.raises(FileListError):
        format_list([], ["a\nb"])


# -- many issues: reported once per kind, with counts and line numbers, the good rows kept ---------------
_GOOD = "clips/g{i}.wav|spk|EN|good {i}"
_BAD = {
    "fields": b"only|two",
    "empty": b"clips/e.wav|spk|EN|   ",
    "language": b"clips/l.wav|spk|DE|hallo",
    "encoding": b"clips/u.wav|spk|EN|\xff\xfe\xfa",
    "duplicate": b"elsewhere/g0.wav|spk|EN|same name as line 1",
}


@settings(max_examples=60, deadline=None)
@given(
    kinds=st.lists(st.sampled_from(sorted(_BAD)), max_size=300), goods=st.integers(1, 30), seed=st.randoms()
)
def test_a_list_with_many_bad_lines_keeps_its_good_rows_and_groups_issues(kinds, goods, seed):
    lines = [_GOOD.format(i=i).encode() for i in range(goods)] + [_BAD[k] for k in kinds]
    seed.shuffle(lines)
    lines.insert(0, _GOOD.format(i=0).encode())  # line 1: the first use of g0.wav
    parsed = parse_bytes(b"\r\n".join(lines) + b"\n")
    duplicates = duplicate_names(parsed.rows, parsed.line_numbers)
    expected_rows = 1 + goods + kinds.count("duplicate")
    assert len(parsed.rows) == expected_rows
    groups = {g.kind: g for g in group_issues([*parsed.errors, *duplicates])}
    for kind in set(kinds):
        numbers = [n for n, line in enumerate(lines, 1) if line == _BAD[kind]]
        if kind == "duplicate":  # the good g0 rows repeat the name too
            numbers = sorted(numbers + [n for n, line in enumerate(lines, 1) if line == lines[0] and n > 1])
        group = groups.pop(kind)
        assert group.count == len(numbers) and group.line_numbers == tuple(numbers[:SHOWN_LINES])
        assert str(group).count("\n") == 0 and len(str(group)) < 400  # one short line, however many
    # Nothing else was reported, except g0's own repeats (shuffled good rows include another g0).
    assert set(groups) <= {"duplicate"}


def test_issue_groups_say_how_many_more():
    parsed = parse_text("\n".join(["x"] * 25))
    (group,) = group_issues(parsed.errors)
    assert group.count == 25 and group.lines_text.endswith("… (+15 more)") and group.title.startswith("not 4")
    assert group.line_numbers == tuple(range(1, 11))
