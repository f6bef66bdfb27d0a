"""The .list reader/writer: upstream's format, lenient reading, line-numbered errors, safe writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.data.filelist import (
    LANGUAGE_SPELLINGS,
    FileListError,
    ListRow,
    backups_of,
    format_list,
    language_of,
    make_row,
    parse_text,
    read_list,
    resolve_audio,
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


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "bad.list"
    path.write_bytes(b"a.wav|s|EN|ok\nb.wav|s|EN|\xff\xfe bad\n")
    with pytest.raises(FileListError, match="line 2 is not valid UTF-8"):
        read_list(path)
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


def test_resolve_audio_follows_upstream(tmp_path):
    row = make_row("/old/place/spk/a.wav", "spk", "en", "x")
    assert resolve_audio(row) == Path("/old/place/spk/a.wav")
    assert resolve_audio(row, "") == resolve_audio(row)
    assert resolve_audio(row, tmp_path) == tmp_path / "a.wav"
    windows = make_row(r"C:\Users\me\data\b.wav", "spk", "en", "x")
    assert windows.wav_name == "b.wav"
    assert resolve_audio(windows, tmp_path) == tmp_path / "b.wav"
    relative = make_row("clips/c.wav", "spk", "en", "x")
    assert resolve_audio(relative, base=tmp_path) == tmp_path / "clips" / "c.wav"
