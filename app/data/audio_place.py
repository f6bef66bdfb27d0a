"""Where the audio a ``.list`` names is: the one resolver every reader of listed audio paths uses.

A listed path may be relative (taken from the list's folder), absolute, hold ``..``, be a Windows
path (``C:\\data\\a.wav``, ``\\\\server\\share\\a.wav``, ``clips\\a.wav``) or lead through symbolic
links. :meth:`AudioPlace.locate` resolves it (links followed) and requires the result to lie
inside the place's boundary: the chosen audio folder, else the data folder, else the list's folder.
A path that leads elsewhere raises :class:`AudioPathError`, whose ``kind`` is a
:data:`app.data.filelist.ISSUE_KINDS` key, and the file is never opened.

With an audio folder, only the file name of a listed path counts (upstream's dataset step does the
same), so a dataset that moved, or a list written on Windows, still finds its clips. Without one,
a Windows drive or network path cannot mean anything here and is refused with what to do.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

from app.data.filelist import OUTSIDE, WINDOWS_PATH, LineError, ListRow, listed_name
from app.messages import Message

# "C:\x" or "C:/x" (a drive) and "\\server\share\x" (UNC; "//server/share" is absolute here too).
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")
_WINDOWS_UNC = re.compile(r"^(\\\\|\\/|/\\)")


class AudioPathError(ValueError):
    """A listed audio path that is not used; ``kind`` says why (``outside`` or ``windows-path``)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def is_windows_absolute(listed: str) -> bool:
    """True for a drive (``C:\\...``) or network share (``\\\\server\\share\\...``) path."""
    return bool(_WINDOWS_DRIVE.match(listed) or _WINDOWS_UNC.match(listed))


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


@dataclass(frozen=True)
class AudioPlace:
    """How a list's audio paths map to files, and the folder they must stay in."""

    audio_dir: Path | None = None  # folder holding the clips, looked up by file name; None: paths as listed
    base: Path | None = None  # folder relative listed paths are taken from (the list's folder)
    root: Path | None = None  # data folder: nothing outside it is used; None: only audio_dir / base bound it

    @property
    def boundary(self) -> Path | None:
        """The folder every clip must resolve into (None: unbounded, only for callers without a root)."""
        folder = self.audio_dir or self.root or self.base
        return Path(folder).resolve() if folder is not None else None

    def _candidate(self, listed: str) -> Path:
        if self.audio_dir is not None:
            name = listed_name(listed)
            if name in {"", ".", ".."}:
                template = "{listed!r} names no file to look up in {folder}"
                raise AudioPathError(
                    OUTSIDE, Message("place.no_name", template, listed=listed, folder=str(self.audio_dir))
                )
            return Path(self.audio_dir) / name
        if is_windows_absolute(listed):
            raise AudioPathError(
                WINDOWS_PATH,
                Message(
                    "place.windows",
                    "{listed!r} is a Windows drive or network path; set the audio folder to where these "
                    "clips are now and they are found by file name",
                    listed=listed,
                ),
            )
        # A relative path written on Windows ("clips\\a.wav") means the same folders here.
        path = Path(*PureWindowsPath(listed).parts) if "\\" in listed else Path(listed)
        if not path.is_absolute() and self.base is not None:
            path = Path(self.base) / path
        return path

    def locate(self, listed: ListRow | str) -> Path:
        """The file ``listed`` (a row, or a path as written in a list) names, symbolic links resolved.

        Raises :class:`AudioPathError` when it lies outside the boundary or cannot mean a file here.
        The file need not exist (new clips are located before they are written).
        """
        text = listed.wav_path if isinstance(listed, ListRow) else str(listed)
        candidate = self._candidate(text.strip())
        try:
            resolved = candidate.resolve()
        except (OSError, ValueError, RuntimeError) as exc:  # NUL byte, link loop, name too long
            reason = Message(
                "place.unresolved", "{listed!r} cannot be resolved ({problem})", listed=text, problem=str(exc)
            )
            raise AudioPathError(OUTSIDE, reason) from None
        boundary = self.boundary
        if boundary is None:
            return resolved
        root = Path(self.root).resolve() if self.root is not None else boundary
        if not (_inside(resolved, boundary) and _inside(resolved, root)) or resolved == boundary:
            fields = {"listed": text, "resolved": str(resolved), "folder": str(boundary)}
            if self.audio_dir is not None:
                template = "{listed!r} leads to {resolved}, outside the audio folder {folder}; it is not read"
                message = Message("place.outside_audio", template, **fields)
            else:
                template = "{listed!r} leads to {resolved}, outside the data folder {folder}; it is not read"
                message = Message("place.outside_data", template, **fields)
            raise AudioPathError(OUTSIDE, message)
        return resolved

    def path(self, listed: ListRow | str) -> Path:
        """Same as :meth:`locate` (the name callers of the proofreading code use)."""
        return self.locate(listed)


@dataclass(frozen=True)
class LocatedRows:
    """The rows of a list whose audio is inside the place, and the lines refused."""

    rows: tuple[ListRow, ...]  # rows kept, in file order
    line_numbers: tuple[int, ...]  # 1-based line of each kept row
    files: tuple[Path, ...]  # resolved audio file of each kept row (may not exist)
    refused: tuple[LineError, ...]  # rows whose path leads outside or is a bare Windows path


def locate_rows(rows: Sequence[ListRow], line_numbers: Sequence[int], place: AudioPlace) -> LocatedRows:
    """Split rows into those whose audio :meth:`AudioPlace.locate` accepts and issues for the others."""
    kept, numbers, files, refused = [], [], [], []
    for row, line_no in zip(rows, line_numbers, strict=True):
        try:
            files.append(place.locate(row))
        except AudioPathError as exc:
            refused.append(LineError(line_no, row.to_line(), exc.args[0], exc.kind))
            continue
        kept.append(row)
        numbers.append(line_no)
    return LocatedRows(tuple(kept), tuple(numbers), tuple(files), tuple(refused))
