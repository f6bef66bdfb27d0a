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
  :func:`write_list` can write it back unchanged.

Writes are atomic (temp file + rename) and keep a timestamped backup of the file they replace.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PureWindowsPath

from app.fileio import atomic_write

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
        raise FileListError(f"unknown language code {code!r}; use one of {accepted}") from None


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
                raise FileListError(f"{name} {value!r} contains a line break; a row must stay on one line")
        for name in ("wav_path", "speaker", "lang"):
            if FIELD_SEPARATOR in getattr(self, name):
                raise FileListError(f"{name} {getattr(self, name)!r} must not contain '|'")
        if not self.wav_path.strip():
            raise FileListError("the audio path is empty")
        if not self.text.strip():
            raise FileListError(f"{self.wav_path}: the text is empty")
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
    line: str  # the raw line, without its line ending
    reason: str  # what is wrong, in words

    def __str__(self) -> str:
        return f"line {self.line_no}: {self.reason}: {self.line!r}"


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
            f"expected 4 fields wav_path|speaker|language|text separated by '|', found {len(fields)}",
        )
    wav_path, speaker, lang, text = (f.strip() for f in fields)
    if not wav_path:
        return LineError(line_no, line, "the audio path (field 1) is empty")
    if not text:
        return LineError(line_no, line, "the text (field 4) is empty")
    if lang not in LANGUAGE_SPELLINGS:
        accepted = ", ".join(sorted(LANGUAGE_SPELLINGS))
        return LineError(line_no, line, f"unknown language code {lang!r} (field 3); use one of {accepted}")
    return ListRow(wav_path, speaker, lang, text)


def parse_text(content: str) -> ParsedList:
    """Parse the content of a ``.list`` file (BOM and CRLF tolerated)."""
    rows: list[ListRow] = []
    numbers: list[int] = []
    errors: list[LineError] = []
    # splitlines() would also break on \x0b, \x1c, U+2028 ...: only real line endings count.
    lines = content.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parsed = parse_line(line, line_no)
        if isinstance(parsed, LineError):
            errors.append(parsed)
        else:
            rows.append(parsed)
            numbers.append(line_no)
    return ParsedList(tuple(rows), tuple(errors), tuple(numbers))


def read_list(path: str | os.PathLike) -> ParsedList:
    """Read and parse a ``.list`` file. Raises :class:`FileListError` if it cannot be read as UTF-8."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileListError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise FileListError(f"{path}: is a folder, not a .list file") from None
    try:
        content = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_no = data[: exc.start].count(b"\n") + 1
        raise FileListError(
            f"{path}: line {line_no} is not valid UTF-8 (byte {exc.start}); save the file as UTF-8"
        ) from None
    return parse_text(content)


def format_list(rows: Iterable[ListRow], extra_lines: Iterable[str] = ()) -> str:
    """The text of a ``.list`` file: one line per row, then ``extra_lines`` verbatim, LF endings."""
    lines = [row.to_line() for row in rows]
    for line in extra_lines:
        if "\n" in line or "\r" in line:
            raise FileListError(f"kept line {line!r} contains a line break")
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
    data = format_list(rows, extra_lines).encode("utf-8")
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


def resolve_audio(
    row: ListRow | str, audio_dir: str | os.PathLike | None = None, base: str | os.PathLike | None = None
) -> Path:
    """Where the audio of ``row`` (or of a path as written in a list) is, following upstream's dataset step.

    With no ``audio_dir`` (``None`` or empty) the path in the list is used as written; a relative
    one is taken from ``base`` (e.g. the list's folder) when given. With an ``audio_dir`` the
    file is ``audio_dir / <file name of the listed path>``, so a dataset folder that moved, or a
    list written on Windows, still resolves.
    """
    listed = row.wav_path if isinstance(row, ListRow) else row
    if audio_dir is not None and str(audio_dir).strip():
        return Path(audio_dir) / listed_name(listed)
    path = Path(listed)
    if not path.is_absolute() and base is not None:
        return Path(base) / path
    return path
