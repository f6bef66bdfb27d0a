"""Source readers: text, Markdown, EPUB, SRT, VTT and voice scripts; errors that say where."""

from __future__ import annotations

import io
import zipfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.infer.longform.sources import SourceError, kind_of, parse_source
from app.infer.longform.subtitles import Cue, format_time, parse_time, to_srt, to_vtt


def test_text_paragraphs_become_lines():
    script = parse_source("First line\ncontinues.\n\n\nSecond one.\n", "text")
    assert [line.text for line in script.lines] == ["First line continues.", "Second one."]
    assert not script.timed and script.voices == ("",)


def test_markdown_headings_start_chapters_and_markup_goes():
    md = (
        "# Part *One*\n\nSome **bold** and a [link](http://x).\n\n"
        "```\ncode()\n```\n- item one\n- item two\n\n## Two\n\n![img](a.png)Text <b>here</b>.\n"
    )
    lines = parse_source(md, "markdown").lines
    assert [(ln.chapter, ln.text) for ln in lines] == [
        ("Part One", "Part One"),
        ("Part One", "Some bold and a link."),
        ("Part One", "item one"),
        ("Part One", "item two"),
        ("Two", "Two"),
        ("Two", "Text here."),
    ]


def _epub(chapters: list[str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("mimetype", "application/epub+zip")
        z.writestr(
            "META-INF/container.xml",
            '<?xml version="1.0"?><container xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
            '<rootfiles><rootfile full-path="OEBPS/content.opf"/></rootfiles></container>',
        )
        items = "".join(f'<item id="c{i}" href="text/c{i}.xhtml"/>' for i in range(len(chapters)))
        spine = "".join(f'<itemref idref="c{i}"/>' for i in reversed(range(len(chapters))))
        z.writestr(
            "OEBPS/content.opf",
            f'<package xmlns="http://www.idpf.org/2007/opf"><manifest>{items}</manifest><spine>{spine}</spine></package>',
        )
        for i, body in enumerate(chapters):
            z.writestr(
                f"OEBPS/text/c{i}.xhtml", f"<html><head><title>x</title></head><body>{body}</body></html>"
            )
    return buf.getvalue()


def test_epub_reads_the_spine_in_order():
    data = _epub(["<h1>Alpha</h1><p>One &amp; two.</p>", "<h2>Beta</h2><p>Three</p><p>Four</p>"])
    lines = parse_source(data, "epub").lines  # the spine lists chapter 1 before chapter 0
    assert [(ln.chapter, ln.text) for ln in lines] == [
        ("Beta", "Beta"), ("Beta", "Three"), ("Beta", "Four"), ("Alpha", "Alpha"), ("Alpha", "One & two."),
    ]  # fmt: skip


def test_epub_errors_say_what_is_wrong():
    with pytest.raises(SourceError, match="not an EPUB"):
        parse_source(b"plain bytes", "epub")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("mimetype", "application/epub+zip")
    with pytest.raises(SourceError, match=r"lacks META-INF/container\.xml"):
        parse_source(buf.getvalue(), "epub")


SRT = """1
00:00:01,000 --> 00:00:02,500
<i>Hello</i> there,
general.

2
00:00:03,000 --> 00:00:04,000
{\\an8}Bye.
"""


def test_srt_and_vtt_cues():
    lines = parse_source(SRT, "srt").lines
    assert [(ln.text, ln.start, ln.end) for ln in lines] == [
        ("Hello there, general.", 1.0, 2.5),
        ("Bye.", 3.0, 4.0),
    ]
    vtt = "WEBVTT\n\nNOTE a comment\n\nintro\n00:01.000 --> 00:02.000 align:start\nHi.\n\n01:00:00.500 --> 01:00:01.000\nLate.\n"
    lines = parse_source(vtt, "vtt").lines
    assert [(ln.text, ln.start, ln.end) for ln in lines] == [("Hi.", 1.0, 2.0), ("Late.", 3600.5, 3601.0)]
    assert parse_source(SRT, "srt").timed


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        ("1\n00:00:02,000 --> 00:00:01,000\nx\n", "srt", "cue 1 .*ends .* before it starts"),
        ("1\n00:00:0x,000 --> 00:00:01,000\nx\n", "srt", "is not a time"),
        ("1\nno times\nx\n", "srt", "no 'start --> end'"),
        ("00:01.000 --> 00:02.000\nx\n", "vtt", "starts with 'WEBVTT'"),
        ("alice|hello\njust text\n", "script", "line 2 has no '|'"),
        ("|hello\n", "script", "line 1: the voice and the text must not be empty"),
        ("\n\n", "text", "no text to read"),
    ],
)
def test_bad_sources_name_the_place(text, kind, message):
    with pytest.raises(SourceError, match=message):
        parse_source(text, kind, "in.x")


def test_voice_scripts_with_several_voices():
    text = "# cast\nalice|Hello.\nbob|en|Hi there.\nclip.wav|alice|EN|Four | fields.\n"
    lines = parse_source(text, "script").lines
    assert [(ln.voice, ln.language, ln.text) for ln in lines] == [
        ("alice", "", "Hello."), ("bob", "en", "Hi there."), ("alice", "en", "Four | fields."),
    ]  # fmt: skip
    assert parse_source(text, "script").voices == ("alice", "bob")


def test_kind_of_and_bad_bytes():
    assert kind_of("Book.EPUB") == "epub" and kind_of("a.list") == "script"
    with pytest.raises(SourceError, match=r"unknown source type '\.docx'"):
        kind_of("a.docx")
    with pytest.raises(SourceError, match="line 2 is not UTF-8"):
        parse_source(b"ok\n\xff\xfe bad\n", "text", "t.txt")


@given(st.lists(st.floats(min_value=0, max_value=360000, allow_nan=False), min_size=1, max_size=5))
def test_subtitle_times_round_trip_to_the_millisecond(times):
    cues = [Cue(t, t + 1.0, f"cue {i}") for i, t in enumerate(times)]
    srt = parse_source(to_srt(cues), "srt").lines
    vtt = parse_source(to_vtt(cues), "vtt").lines
    for cue, a, b in zip(cues, srt, vtt, strict=True):
        assert abs(a.start - cue.start) <= 0.0005 + 1e-9 and a.start == b.start and a.text == cue.text
        assert parse_time(format_time(cue.start)) == a.start
