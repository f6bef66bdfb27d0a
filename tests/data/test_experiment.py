"""Experiment file formats: the exact bytes upstream writes and reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.data.experiment import (
    ExperimentFileError,
    TextRow,
    format_name2text,
    format_semantic,
    parse_text_line,
    parse_word2ph,
    read_name2text,
    read_semantic,
    write_name2text,
    write_semantic,
)

# Lines as upstream's 1-get-text.py writes them: "%s\t%s\t%s\t%s" % (name, " ".join(phones), word2ph, norm_text).
UPSTREAM_ZH = "a.wav\tn i2 h ao3 .\t[2, 2, 1]\t你好."
UPSTREAM_EN = "b.wav\tHH AH0 L OW1 .\tNone\tHello."


def test_text_rows_print_as_upstream() -> None:
    zh = TextRow("a.wav", ("n", "i2", "h", "ao3", "."), (2, 2, 1), "你好.")
    en = TextRow("b.wav", ("HH", "AH0", "L", "OW1", "."), None, "Hello.")
    assert zh.to_line() == UPSTREAM_ZH
    assert en.to_line() == UPSTREAM_EN
    # webui.py joins the parts with "\n" and ends the file with one "\n".
    assert format_name2text([zh, en]) == f"{UPSTREAM_ZH}\n{UPSTREAM_EN}\n"
    assert parse_text_line(UPSTREAM_ZH) == zh
    assert parse_text_line(UPSTREAM_EN) == en


def test_word2ph_parsing() -> None:
    assert parse_word2ph("[1, 2, 2]") == (1, 2, 2)
    assert parse_word2ph("[]") == ()
    assert parse_word2ph("None") is None
    with pytest.raises(ExperimentFileError, match="neither a list"):
        parse_word2ph("1,2")
    with pytest.raises(ExperimentFileError, match="not a list of integers"):
        parse_word2ph("[1, x]")


def test_name2text_reader_skips_what_upstream_skips(tmp_path: Path) -> None:
    path = tmp_path / "2-name2text.txt"
    path.write_text(f"{UPSTREAM_ZH}\nbroken line without tabs\n\n{UPSTREAM_EN}\n", encoding="utf-8")
    rows = read_name2text(path)
    assert list(rows) == ["a.wav", "b.wav"]
    write_name2text(path, rows.values())
    assert path.read_text(encoding="utf-8") == f"{UPSTREAM_ZH}\n{UPSTREAM_EN}\n"
    with pytest.raises(ExperimentFileError, match="run dataset formatting first"):
        read_name2text(tmp_path / "missing.txt")


def test_semantic_file_has_upstreams_header_and_rows(tmp_path: Path) -> None:
    text = format_semantic([("a.wav", [1, 2, 3]), ("b.wav", (1023,))])
    assert text == "item_name\tsemantic_audio\na.wav\t1 2 3\nb.wav\t1023\n"
    path = write_semantic(tmp_path / "6-name2semantic.tsv", [("a.wav", [1, 2, 3])])
    assert read_semantic(path) == {"a.wav": (1, 2, 3)}
    path.write_text("item_name\tsemantic_audio\na.wav\t1 x\n", encoding="utf-8")
    with pytest.raises(ExperimentFileError, match="line 2"):
        read_semantic(path)
