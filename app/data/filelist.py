"""Annotation lists (``.list``): one clip per line, ``wav_path|speaker|LANG|text``, UTF-8.

This is upstream GPT-SoVITS's dataset format (written by its ASR tools, read by its dataset
formatting step ``1-get-text.py`` and its proofreading tool). We read it leniently and report
every line we cannot use with its line number; nothing is dropped silently:

- a UTF-8 byte-order mark and Windows line endings are accepted;
- the text is everything after the third ``|`` (``split("|", 3)``), so a ``|`` inside the text
  survives (upstream's ``split("|")`` would reject such a line);
- blank lines are not rows and are skipped;
- a line with fewer than four fields, an empty path or text, or a language code upstream does
  not train on becomes a :class:`LineError` that keeps the raw line, so an editor can show it and
  :func:`write_list` can write it back unchanged;
- the file is decoded line by line: a line that is not valid UTF-8 is one :class:`LineError`
  (its bytes kept, so a save writes them back unchanged) and the other lines are read as usual.

Every issue has a kind (:data:`ISSUE_KINDS`); :func:`group_issues` turns thousands of them into
one entry per kind with a count and the first line numbers, which is what a report shows.

Writes are atomic (temp file + rename) and keep a timestamped backup of the file they replace.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PureWindowsPath
from typing import Protocol

from app.fileio import atomic_write
from app.messages import Message

# The spellings upstream's 1-get-text.py accepts, mapped to the language id used for training.
LANGUAGE_SPELLINGS: dict[str, str] = {
    "ZH": "zh",
    "zh": "zh",
    "JP": "ja",
    "jp": "ja",
    "JA": "ja",
    "ja": "ja",
    "EN": "en",
    "En": "en",
    "en": "en",
    "KO": "ko",
    "Ko": "ko",
    "ko": "ko",
    "YUE": "yue",
    "Yue": "yue",
    "yue": "yue",
}
# The language ids in a stable order (UI choices).
LANGUAGES: tuple[str, ...] = ("zh", "en", "ja", "ko", "yue")
# How we write each language id: upstream's ASR writes ``info.language.upper()``.
LANGUAGE_CODES: dict[str, str] = {lang: lang.upper() for lang in LANGUAGES}
FIELD_SEPARATOR = "|"
# Older backups beyond this many are removed, so repeated saves do not fill the folder.
MAX_BACKUPS = 20
_BACKUP_SUFFIX = ".bak"
_BOM = b"\xef\xbb\xbf"
# Undecodable bytes of a line are kept as surrogates ("surrogateescape"): written back byte for byte.
_KEEP_BYTES = "surrogateescape"

# Kinds of issue a line can have, and how a report names each (one entry per kind).
FIELDS, EMPTY, LANGUAGE, ENCODING = "fields", "empty", "language", "encoding"
OUTSIDE, WINDOWS_PATH, DUPLICATE, MISSING = "outside", "windows-path", "duplicate", "missing"
ISSUE_KINDS: dict[str, str] = {
    FIELDS: "not 4 fields wav_path|speaker|language|text",
    EMPTY: "empty audio path or text",
    LANGUAGE: "language not usable",
    ENCODING: "not valid UTF-8",
    OUTSIDE: "audio outside the data folder (not read)",
    WINDOWS_PATH: "Windows path with no audio folder set (not read)",
    DUPLICATE: "clip name used by an earlier line",
    MISSING: "audio file not found",
}
# Line numbers an issue group lists; the rest are counted.
SHOWN_LINES = 10


class FileListError(ValueError):
    """A ``.list`` file cannot be read or a row cannot be written; the message says which and why."""


def language_of(code: str) -> str:
    """Language id (``zh``, ``en``, ``ja``, ``ko``, ``yue``) of an upstream language code.

    Raises :class:`FileListError` for a code upstream does not train on.
    """
    try:
        return LANGUAGE_SPELLINGS[code.strip()]
    except KeyError:
        accepted = ", ".join(sorted(LANGUAGE_SPELLINGS))
        raise FileListError(
            Message(
                "list.err.language",
                "unknown language code {code!r}; use one of {accepted}",
                code=code,
                accepted=accepted,
            )
        ) from None


@dataclass(frozen=True)
class ListRow:
    """One annotated clip: a line ``wav_path|speaker|lang|text``."""

    wav_path: str  # audio path exactly as written in the list (absolute, relative or a bare name)
    speaker: str  # speaker name (upstream's ASR uses the input folder's name)
    lang: str  # language code as spelled in the file, e.g. "ZH", "ja", "EN"
    text: str  # transcript, one line; may contain "|"

    def __post_init__(self) -> None:
        for name in ("wav_path", "speaker", "lang", "text"):
            value = getattr(self, name)
            if "\n" in value or "\r" in value:
                raise FileListError(
                    Message(
                        "list.err.line_break",
                        "{field} {value!r} contains a line break; a row must stay on one line",
                        field=name,
                        value=value,
                    )
                )
        for name in ("wav_path", "speaker", "lang"):
            if FIELD_SEPARATOR in getattr(self, name):
                raise FileListError(
                    Message(
                        "list.err.separator",
                        "{field} {value!r} must not contain '|'",
                        field=name,
                        value=getattr(self, name),
                    )
                )
        if not self.wav_path.strip():
            raise FileListError(Message("list.err.no_path", "the audio path is empty"))
        if not self.text.strip():
            raise FileListError(Message("list.err.no_text", "{file}: the text is empty", file=self.wav_path))
        language_of(self.lang)

    @property
    def language(self) -> str:
        """Language id: ``zh``, ``en``, ``ja``, ``ko`` or ``yue``."""
        return LANGUAGE_SPELLINGS[self.lang]

    @property
    def wav_name(self) -> str:
        """File name of the audio, whether the list was written on Windows or POSIX."""
        return listed_name(self.wav_path)

    def to_line(self) -> str:
        """The row as one ``.list`` line, without the line ending."""
        return FIELD_SEPARATOR.join((self.wav_path, self.speaker, self.lang, self.text))

    def with_text(self, text: str) -> ListRow:
        """A copy with new text; surrounding whitespace is trimmed."""
        return replace(self, text=text.strip())

    def with_language(self, language: str) -> ListRow:
        """A copy with a new language (an id such as ``ja`` or any accepted code such as ``JP``)."""
        return replace(self, lang=LANGUAGE_CODES[language_of(language)])


def make_row(wav_path: str | os.PathLike, speaker: str, language: str, text: str) -> ListRow:
    """Build a row the way upstream's ASR writes it (language code upper case, text trimmed)."""
    return ListRow(str(wav_path), speaker.strip(), LANGUAGE_CODES[language_of(language)], text.strip())


@dataclass(frozen=True)
class LineError:
    """A line of a ``.list`` file that is not a usable row."""

    line_no: int  # 1-based line number in the file
    line: str  # the raw line, without its line ending (undecodable bytes kept as surrogates)
    reason: str  # what is wrong, in words
    kind: str = FIELDS  # one of ISSUE_KINDS

    def __str__(self) -> str:
        return f"line {self.line_no}: {self.reason}: {self.shown!r}"

    @property
    def shown(self) -> str:
        """The line for display: undecodable bytes as U+FFFD."""
        return self.line.encode("utf-8", _KEEP_BYTES).decode("utf-8", "replace")


@dataclass(frozen=True)
class ParsedList:
    """The rows of a ``.list`` file and the lines that could not be used."""

    rows: tuple[ListRow, ...]  # usable rows in file order
    errors: tuple[LineError, ...]  # every other non-blank line, in file order
    line_numbers: tuple[int, ...]  # 1-based line number of each row, parallel to ``rows``


def parse_line(line: str, line_no: int = 1) -> ListRow | LineError:
    """Parse one line (without its line ending) into a row, or say why it is not one."""
    fields = line.split(FIELD_SEPARATOR, 3)
    if len(fields) < 4:
        return LineError(
            line_no,
            line,
            Message(
                "list.issue.fields",
                "expected 4 fields wav_path|speaker|language|text separated by '|', found {count}",
                count=len(fields),
            ),
        )
    wav_path, speaker, lang, text = (f.strip() for f in fields)
    if not wav_path:
        return LineError(
            line_no, line, Message("list.issue.no_path", "the audio path (field 1) is empty"), EMPTY
        )
    if not text:
        return LineError(line_no, line, Message("list.issue.no_text", "the text (field 4) is empty"), EMPTY)
    if lang not in LANGUAGE_SPELLINGS:
        accepted = ", ".join(sorted(LANGUAGE_SPELLINGS))
        reason = Message(
            "list.issue.language",
            "unknown language code {code!r} (field 3); use one of {accepted}",
            code=lang,
            accepted=accepted,
        )
        return LineError(line_no, line, reason, LANGUAGE)
    try:
        return ListRow(wav_path, speaker, lang, text)
    except FileListError as exc:  # e.g. a NUL or a break inside a field
        return LineError(line_no, line, exc.args[0])


def _decoded(raw: bytes, line_no: int) -> str | LineError:
    """One line's text, or an :data:`ENCODING` issue that keeps its bytes."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        kept = raw.decode("utf-8", _KEEP_BYTES)
        template = "not valid UTF-8 (byte {byte} of the line); save the file as UTF-8"
        reason = Message("list.issue.encoding", template, byte=exc.start + 1)
        return LineError(line_no, kept, reason, ENCODING)


def _parse_lines(lines: Iterable[str | bytes]) -> ParsedList:
    rows: list[ListRow] = []
    numbers: list[int] = []
    errors: list[LineError] = []
    for line_no, line in enumerate(lines, start=1):
        text = _decoded(line, line_no) if isinstance(line, bytes) else line
        if isinstance(text, str):
            if not text.strip():
                continue
            parsed = parse_line(text, line_no)
        else:
            parsed = text
        if isinstance(parsed, LineError):
            errors.append(parsed)
        else:
            rows.append(parsed)
            numbers.append(line_no)
    return ParsedList(tuple(rows), tuple(errors), tuple(numbers))


def parse_text(content: str) -> ParsedList:
    """Parse the content of a ``.list`` file (BOM and CRLF tolerated)."""
    # splitlines() would also break on \x0b, \x1c, U+2028 ...: only real line endings count.
    return _parse_lines(content.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n"))


def parse_bytes(data: bytes) -> ParsedList:
    """Parse a ``.list`` file's bytes line by line: an undecodable line is an issue, not the file's end."""
    # In UTF-8 the bytes of "\r" and "\n" never occur inside a character: splitting bytes is safe.
    return _parse_lines(data.removeprefix(_BOM).replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n"))


def read_list(path: str | os.PathLike) -> ParsedList:
    """Read and parse a ``.list`` file. Raises :class:`FileListError` when the file cannot be read."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileListError(Message("list.err.not_found", "{file}: file not found", file=str(path))) from None
    except IsADirectoryError:
        raise FileListError(
            Message("list.err.folder", "{file}: is a folder, not a .list file", file=str(path))
        ) from None
    except OSError as exc:
        raise FileListError(
            Message(
                "list.err.unreadable",
                "{file}: cannot be read ({problem})",
                file=str(path),
                problem=str(exc.strerror or exc),
            )
        ) from None
    return parse_bytes(data)


def duplicate_names(rows: Sequence[ListRow], line_numbers: Sequence[int]) -> tuple[LineError, ...]:
    """A :data:`DUPLICATE` issue for every row whose file name an earlier row already uses.

    The file name is the clip's key in every experiment file, so two rows may not share it.
    """
    first: dict[str, int] = {}
    issues = []
    for row, line_no in zip(rows, line_numbers, strict=True):
        earlier = first.setdefault(row.wav_name, line_no)
        if earlier != line_no:
            reason = Message(
                "list.issue.duplicate",
                "line {earlier} already uses the file name {name!r}; clip names must be unique",
                earlier=earlier,
                name=row.wav_name,
            )
            issues.append(LineError(line_no, row.to_line(), reason, DUPLICATE))
    return tuple(issues)


class Issue(Protocol):
    """What :func:`group_issues` reads of an issue (a :class:`LineError`, a formatting problem, ...)."""

    @property
    def kind(self) -> str: ...
    @property
    def line_no(self) -> int | None: ...
    @property
    def reason(self) -> str: ...


@dataclass(frozen=True)
class IssueGroup:
    """All issues of one kind: how many, on which lines (the first few), and one example."""

    kind: str  # one of ISSUE_KINDS (or a caller's own kind)
    count: int  # issues of this kind
    line_numbers: tuple[int, ...]  # the first SHOWN_LINES line numbers, in file order
    example: str  # the first issue's reason

    @property
    def title(self) -> str:
        return ISSUE_KINDS.get(self.kind, self.kind)

    @property
    def lines_text(self) -> str:
        """``"3, 7, 9"`` or ``"3, 7, 9, … (+120 more)"``."""
        text = ", ".join(str(n) for n in self.line_numbers)
        more = self.count - len(self.line_numbers)
        return f"{text}, … (+{more} more)" if more > 0 else text

    def __str__(self) -> str:
        where = f"line {self.lines_text}" if self.count == 1 else f"{self.count} lines: {self.lines_text}"
        return f"{self.title}, {where} (e.g. {self.example})"


def group_issues(issues: Iterable[Issue]) -> tuple[IssueGroup, ...]:
    """One :class:`IssueGroup` per kind, in the order kinds first occur; line numbers sorted."""
    by_kind: dict[str, list[Issue]] = {}
    for issue in issues:
        by_kind.setdefault(issue.kind, []).append(issue)
    groups = []
    for kind, found in by_kind.items():
        ordered = sorted(found, key=lambda i: i.line_no if i.line_no is not None else 0)
        numbers = tuple(i.line_no for i in ordered if i.line_no is not None)
        groups.append(IssueGroup(kind, len(found), numbers[:SHOWN_LINES], ordered[0].reason))
    return tuple(groups)


def format_list(rows: Iterable[ListRow], extra_lines: Iterable[str] = ()) -> str:
    """The text of a ``.list`` file: one line per row, then ``extra_lines`` verbatim, LF endings."""
    lines = [row.to_line() for row in rows]
    for line in extra_lines:
        if "\n" in line or "\r" in line:
            raise FileListError(
                Message("list.err.kept_break", "kept line {line!r} contains a line break", line=line)
            )
        lines.append(line)
    return "".join(line + "\n" for line in lines)


@dataclass(frozen=True)
class WriteResult:
    """Where a list was written and where the file it replaced was kept."""

    path: Path  # the written .list file
    backup: Path | None  # copy of the previous content, None when there was no previous file
    rows: int  # number of rows written
    kept_lines: int  # malformed lines written back verbatim


def backups_of(path: str | os.PathLike) -> list[Path]:
    """Backups :func:`write_list` made of ``path``, oldest first."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    found = path.parent.glob(f"{path.name}.*{_BACKUP_SUFFIX}")
    return sorted(p for p in found if _is_backup_name(p.name, path.name))


def _is_backup_name(name: str, of: str) -> bool:
    stamp = name.removeprefix(of + ".").removesuffix(_BACKUP_SUFFIX)
    return name.startswith(of + ".") and len(stamp) == 19 and stamp.replace("-", "").isdigit()


def _backup_path(path: Path) -> Path:
    # <name>.list.<YYYYmmdd-HHMMSS>-<NNN>.bak: names sort by time (the counter orders saves within
    # one second), and the name no longer ends in .list, so a backup is never taken for a dataset.
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime())
    prefix = f"{path.name}.{stamp}-"
    # Next counter after the highest one of this second (pruning may have removed lower ones).
    taken = [
        int(p.name[len(prefix) : -len(_BACKUP_SUFFIX)]) for p in backups_of(path) if p.name.startswith(prefix)
    ]
    return path.with_name(f"{prefix}{max(taken, default=-1) + 1:03d}{_BACKUP_SUFFIX}")


def _write_atomic(path: Path, data: bytes) -> None:
    with atomic_write(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())  # on disk before the rename: hand-made labels survive a power cut


def write_list(
    path: str | os.PathLike,
    rows: Sequence[ListRow],
    *,
    extra_lines: Sequence[str] = (),
    backup: bool = True,
) -> WriteResult:
    """Write ``rows`` (then ``extra_lines``, e.g. malformed lines kept verbatim) to ``path`` atomically.

    When ``path`` exists and ``backup`` is true, its previous bytes are first copied to
    ``<name>.<YYYYmmdd-HHMMSS>-<NNN>.bak`` beside it; only the newest :data:`MAX_BACKUPS` backups are kept.
    """
    path = Path(path)
    data = format_list(rows, extra_lines).encode("utf-8", _KEEP_BYTES)
    path.parent.mkdir(parents=True, exist_ok=True)
    saved: Path | None = None
    if backup and path.exists():
        saved = _backup_path(path)
        _write_atomic(saved, path.read_bytes())
    _write_atomic(path, data)
    if saved is not None:
        for old in backups_of(path)[:-MAX_BACKUPS]:
            old.unlink(missing_ok=True)
    return WriteResult(path, saved, len(rows), len(extra_lines))


def listed_name(wav_path: str) -> str:
    """File name of a listed audio path, whether the list was written on Windows or POSIX."""
    # PureWindowsPath splits on both "/" and "\\" (upstream's os.path.basename on Linux does not).
    return PureWindowsPath(wav_path).name
