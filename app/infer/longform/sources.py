"""What a long-form job reads: plain text, Markdown, EPUB chapters, SRT/VTT subtitles, voice scripts.

Every reader returns a :class:`Script`: the lines to speak, in order, each with the voice that
speaks it ("" = the job's default voice), its language ("" = the voice's), its chapter and, for
subtitles, its cue times. Formats:

- ``.txt``: one line per paragraph (paragraphs are separated by blank lines; a paragraph's own
  line breaks are joined with spaces).
- ``.md``: as text, with headings starting chapters (and read out), emphasis, links, images,
  code blocks, HTML tags and list markers taken away.
- ``.epub``: the spine's documents in reading order, one chapter each (its title: the first
  heading), one line per paragraph or heading; parsed with the standard library only.
- ``.srt`` / ``.vtt``: one line per cue with its start and end; inline tags (``<i>``, ``{\\an8}``)
  dropped, a cue's lines joined.
- ``.list`` / ``.script``: ``voice|text`` or ``voice|language|text`` per line (``#`` starts a
  comment); the four-field ``.list`` layout ``wav|speaker|language|text`` reads the speaker as the
  voice. Several voices in one script.

Errors are :class:`SourceError` (a ``ValueError``) naming the line and what to change.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
from dataclasses import dataclass
from html.parser import HTMLParser
from io import BytesIO
from pathlib import Path
from xml.etree import ElementTree

from app.infer.longform.subtitles import parse_time
from app.messages import Message

# Source kinds by file suffix.
SUFFIX_KINDS = {
    ".txt": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".epub": "epub",
    ".srt": "srt",
    ".vtt": "vtt",
    ".list": "script",
    ".script": "script",
}
KINDS = ("text", "markdown", "epub", "srt", "vtt", "script")
# Kinds whose lines carry cue times (dubbing fits each line to its cue).
TIMED_KINDS = ("srt", "vtt")
# Bigger sources are a mistake (a 10-hour audiobook's text is ~ 600 kB).
MAX_SOURCE_BYTES = 64 << 20


class SourceError(ValueError):
    """The source cannot be read as the kind it was given for; the message says where and why."""


@dataclass(frozen=True)
class Line:
    """One line of a script: what one synthesis speaks."""

    # The words.
    text: str
    # Voice name ("" = the job's default voice).
    voice: str = ""
    # Language mode id ("" = the voice's default).
    language: str = ""
    # Chapter (or heading) this line belongs to ("" = none).
    chapter: str = ""
    # Cue start and end in seconds (subtitle sources only).
    start: float | None = None
    end: float | None = None


@dataclass(frozen=True)
class Script:
    """A parsed source."""

    # One of KINDS.
    kind: str
    # The lines in reading order (never empty).
    lines: tuple[Line, ...]

    @property
    def timed(self) -> bool:
        """True for subtitle sources (every line has a cue)."""
        return self.kind in TIMED_KINDS

    @property
    def voices(self) -> tuple[str, ...]:
        """The voice names the lines use, first use first ("" for the default voice)."""
        return tuple(dict.fromkeys(line.voice for line in self.lines))


def kind_of(filename: str) -> str:
    """The source kind of a file name; raises :class:`SourceError` for an unknown suffix."""
    suffix = Path(filename).suffix.lower()
    if suffix not in SUFFIX_KINDS:
        known = ", ".join(sorted(SUFFIX_KINDS))
        template = "{name}: unknown source type {suffix!r}; use one of {choices}"
        fields = {"name": filename, "suffix": suffix or "(no suffix)", "choices": known}
        raise SourceError(Message("source.err.suffix", template, **fields))
    return SUFFIX_KINDS[suffix]


def read_source(path: str | Path, kind: str | None = None) -> Script:
    """Read the file at ``path`` (its suffix gives the kind unless ``kind`` is given)."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_SOURCE_BYTES:
            template = "{name}: larger than {megabytes} MB; split it into parts"
            message = Message(
                "source.err.too_large", template, name=str(path), megabytes=MAX_SOURCE_BYTES >> 20
            )
            raise SourceError(message)
        data = path.read_bytes()
    except OSError as exc:
        template = "{name}: cannot read the file ({problem})"
        fields = {"name": str(path), "problem": str(exc.strerror or exc)}
        raise SourceError(Message("source.err.cannot_read", template, **fields)) from None
    return parse_source(data, kind or kind_of(path.name), str(path))


def parse_source(data: bytes | str, kind: str, name: str = "source") -> Script:
    """Parse ``data`` (bytes, or text for the text formats) as ``kind``."""
    if kind not in KINDS:
        template = "{name}: unknown source kind {kind!r}; use one of {choices}"
        raise SourceError(
            Message("source.err.kind", template, name=name, kind=kind, choices=", ".join(KINDS))
        )
    if kind == "epub":
        if isinstance(data, str):
            template = "{name}: an EPUB is a binary file; pass its bytes"
            raise SourceError(Message("source.err.epub_text", template, name=name))
        lines = _epub_lines(data, name)
    else:
        text = _decode(data, name) if isinstance(data, bytes) else data
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = _TEXT_READERS[kind](text, name)
    if not lines:
        template = "{name}: no text to read was found in this {kind} source"
        raise SourceError(Message("source.err.no_text", template, name=name, kind=kind))
    return Script(kind, tuple(lines))


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        template = "{name}: line {line} is not UTF-8 text; save the file as UTF-8"
        raise SourceError(Message("source.err.not_utf8", template, name=name, line=line)) from None


def _collapse(text: str) -> str:
    return " ".join(text.split())


# ------------------------------------------------------------------------------- plain text
def _text_lines(text: str, name: str) -> list[Line]:
    return [Line(_collapse(p)) for p in re.split(r"\n\s*\n", text) if p.strip()]


# --------------------------------------------------------------------------------- markdown
_MD_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_MD_EMPHASIS = re.compile(r"(\*{1,3}|_{1,3}|~~|`)(?=\S)(.+?)(?<=\S)\1")
_MD_TAG = re.compile(r"<[^>]+>")
_MD_BULLET = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_MD_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def _md_inline(text: str) -> str:
    text = _MD_IMAGE.sub("", text)
    text = _MD_LINK.sub(r"\1", text)
    text = _MD_TAG.sub("", text)
    previous = None
    while previous != text:  # nested emphasis: **_word_**
        previous, text = text, _MD_EMPHASIS.sub(r"\2", text)
    return _collapse(text.lstrip("> "))


def _markdown_lines(text: str, name: str) -> list[Line]:
    lines: list[Line] = []
    chapter, paragraph, fenced = "", [], False

    def flush() -> None:
        spoken = _md_inline(" ".join(paragraph))
        if spoken:
            lines.append(Line(spoken, chapter=chapter))
        paragraph.clear()

    for raw in text.split("\n"):
        if raw.lstrip().startswith(("```", "~~~")):
            flush()
            fenced = not fenced
            continue
        heading = _MD_HEADING.match(raw)
        if fenced or re.fullmatch(r"\s*([-*_]\s*){3,}", raw):
            continue
        if heading:
            flush()
            chapter = _md_inline(heading.group(2))
            paragraph.append(heading.group(2))
            flush()
        elif not raw.strip() or _MD_BULLET.match(raw):
            flush()
            paragraph.append(_MD_BULLET.sub("", raw))
        else:
            paragraph.append(raw)
    flush()
    return lines


# -------------------------------------------------------------------------------- subtitles
_CUE_TIMES = re.compile(r"^\s*(\S+)\s*-->\s*(\S+)")
_SUB_TAG = re.compile(r"<[^>]*>|\{\\[^}]*\}")


def _cue_lines(text: str, name: str, vtt: bool) -> list[Line]:
    blocks = [b for b in re.split(r"\n\s*\n", text.strip()) if b.strip()]
    if vtt:
        if not blocks or not blocks[0].startswith("WEBVTT"):
            template = "{name}: a WebVTT file starts with 'WEBVTT'; this one does not"
            raise SourceError(Message("source.err.not_vtt", template, name=name))
        blocks = blocks[1:]
    lines: list[Line] = []
    for number, block in enumerate(blocks, 1):
        rows = block.strip().split("\n")
        if vtt and rows[0].startswith(("NOTE", "STYLE", "REGION")):
            continue
        where = {"name": name, "number": number, "head": rows[0][:40]}
        timing = next((i for i, row in enumerate(rows) if "-->" in row), None)
        match = _CUE_TIMES.match(rows[timing]) if timing is not None else None
        if timing is None or match is None:
            template = "{name}: cue {number} ({head!r}) has no 'start --> end' time line"
            raise SourceError(Message("source.err.cue_no_time", template, **where))
        try:
            start, end = parse_time(match.group(1)), parse_time(match.group(2))
        except ValueError as exc:
            template = "{name}: cue {number} ({head!r}): {problem}"
            said = exc.args[0] if exc.args and isinstance(exc.args[0], Message) else str(exc)
            raise SourceError(Message("source.err.cue_time", template, **where, problem=said)) from None
        if end <= start:
            template = (
                "{name}: cue {number} ({head!r}): the cue ends ({end:.3f} s) before it starts ({start:.3f} s)"
            )
            raise SourceError(Message("source.err.cue_order", template, **where, start=start, end=end))
        spoken = _collapse(_SUB_TAG.sub("", " ".join(rows[timing + 1 :])))
        if spoken:
            lines.append(Line(spoken, start=start, end=end))
    return lines


def _srt_lines(text: str, name: str) -> list[Line]:
    return _cue_lines(text, name, vtt=False)


def _vtt_lines(text: str, name: str) -> list[Line]:
    return _cue_lines(text, name, vtt=True)


# ---------------------------------------------------------------------------------- scripts
def _script_lines(text: str, name: str) -> list[Line]:
    lines: list[Line] = []
    for number, raw in enumerate(text.split("\n"), 1):
        row = raw.strip()
        if not row or row.startswith("#"):
            continue
        fields = [f.strip() for f in row.split("|", 3)]
        if len(fields) < 2:
            template = "{name}: line {number} has no '|': write 'voice|text' or 'voice|language|text'"
            raise SourceError(Message("source.err.no_bar", template, name=name, number=number))
        if len(fields) == 2:
            voice, language, spoken = fields[0], "", fields[1]
        elif len(fields) == 3:
            voice, language, spoken = fields
        else:
            voice, language, spoken = fields[1], fields[2].lower(), fields[3]
        if not voice or not spoken:
            template = "{name}: line {number}: the voice and the text must not be empty"
            raise SourceError(Message("source.err.empty_field", template, name=name, number=number))
        lines.append(Line(_collapse(spoken), voice=voice, language=language))
    return lines


_TEXT_READERS = {
    "text": _text_lines,
    "markdown": _markdown_lines,
    "srt": _srt_lines,
    "vtt": _vtt_lines,
    "script": _script_lines,
}


# ------------------------------------------------------------------------------------- EPUB
_BLOCKS = {"p", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "td", "dd", "dt", "br"}
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_SKIPPED = {"script", "style", "head", "title", "nav"}


class _Blocks(HTMLParser):
    """Text blocks of an (X)HTML document: (is a heading, text), in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[bool, str]] = []
        self._parts: list[str] = []
        self._heading = False
        self._skip = 0

    def _flush(self) -> None:
        text = _collapse("".join(self._parts))
        if text:
            self.blocks.append((self._heading, text))
        self._parts, self._heading = [], False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self._skip += 1
        elif tag in _BLOCKS:
            self._flush()
            self._heading = tag in _HEADINGS

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCKS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self._parts.append(data)

    def close(self) -> None:
        super().close()
        self._flush()


def _xml(book: zipfile.ZipFile, member: str, name: str) -> ElementTree.Element:
    try:
        return ElementTree.fromstring(book.read(member))
    except KeyError:
        template = "{name}: the EPUB lacks {member}; the file is damaged"
        raise SourceError(Message("source.err.epub_lacks", template, name=name, member=member)) from None
    except ElementTree.ParseError as exc:
        template = "{name}: {member} is not well-formed XML ({problem})"
        fields = {"name": name, "member": member, "problem": str(exc)}
        raise SourceError(Message("source.err.epub_xml", template, **fields)) from None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _spine(book: zipfile.ZipFile, name: str) -> list[str]:
    """Members of the book's spine, in reading order."""
    container = _xml(book, "META-INF/container.xml", name)
    rootfile = next((e.get("full-path") for e in container.iter() if _local(e.tag) == "rootfile"), None)
    if not rootfile:
        template = "{name}: META-INF/container.xml names no package file; the EPUB is damaged"
        raise SourceError(Message("source.err.epub_package", template, name=name))
    package = _xml(book, rootfile, name)
    base = posixpath.dirname(rootfile)
    manifest = {
        e.get("id"): posixpath.normpath(posixpath.join(base, e.get("href", "")))
        for e in package.iter()
        if _local(e.tag) == "item"
    }
    order = [e.get("idref") for e in package.iter() if _local(e.tag) == "itemref" and e.get("linear") != "no"]
    return [manifest[i] for i in order if i in manifest]


def _epub_lines(data: bytes, name: str) -> list[Line]:
    try:
        book = zipfile.ZipFile(BytesIO(data))
    except zipfile.BadZipFile:
        template = "{name}: not an EPUB (an EPUB is a zip archive); export the book again"
        raise SourceError(Message("source.err.not_epub", template, name=name)) from None
    lines: list[Line] = []
    with book:
        for number, member in enumerate(_spine(book, name), 1):
            try:
                html = book.read(member).decode("utf-8", errors="replace")
            except KeyError:
                template = "{name}: the spine names {member}, which the EPUB lacks"
                message = Message("source.err.epub_spine", template, name=name, member=member)
                raise SourceError(message) from None
            parser = _Blocks()
            parser.feed(html)
            parser.close()
            if not parser.blocks:
                continue
            headings = [text for heading, text in parser.blocks if heading]
            # Untitled: "Chapter 3", a Message the page words in its reader's language.
            chapter = (
                headings[0] if headings else Message("source.chapter", "Chapter {number}", number=number)
            )
            lines.extend(Line(text, chapter=chapter) for _, text in parser.blocks)
    return lines
