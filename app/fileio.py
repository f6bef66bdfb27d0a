"""Atomic file writing: a reader sees the old file or the new one, never half of one.

Every writer in ``app/`` goes through here: the data is written to a hidden temporary file in the
target's folder (same file system, so the final :func:`os.replace` is atomic), and the temporary
file is removed when writing fails, leaving the old file untouched.

    atomic_write_text(path, text)
    atomic_write_bytes(path, data)
    with atomic_write(path, "wb") as fh: torch.save(obj, fh)
    with atomic_path(path) as tmp: soundfile.write(tmp, ...)   # writers that want a file name
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_path", "atomic_write", "atomic_write_bytes", "atomic_write_text"]


@contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """A temporary path beside ``path`` that replaces it when the block ends without an error.

    ``suffix`` defaults to the target's (writers such as soundfile pick the format from it). The
    parent folder is created. On an error the temporary file is removed and ``path`` is unchanged.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=target.suffix if suffix is None else suffix
    )
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_write(
    path: str | os.PathLike[str], mode: str = "w", encoding: str | None = "utf-8", **open_args: Any
) -> Iterator[IO[Any]]:
    """An open file (``mode`` "w" or "wb") whose content replaces ``path`` when the block succeeds."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write writes whole files: mode must be 'w' or 'wb', not {mode!r}")
    with atomic_path(path, suffix=".tmp") as tmp:
        if mode == "wb":
            with open(tmp, "wb") as fh:
                yield fh
        else:
            with open(tmp, "w", encoding=encoding, **open_args) as fh:
                yield fh


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (UTF-8 unless told)."""
    with atomic_write(path, "w", encoding=encoding) as fh:
        fh.write(text)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path, "wb") as fh:
        fh.write(data)
