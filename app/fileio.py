"""Atomic file writing: a reader sees the old file or the new one, never half of one.

Every writer in ``app/`` goes through here: the data is written to a hidden temporary file in the
target's folder (same file system, so the final :func:`os.replace` is atomic), and the temporary
file is removed when writing fails, leaving the old file untouched.

    atomic_write_text(path, text)
    atomic_write_bytes(path, data)
    with atomic_write(path, "wb") as fh: torch.save(obj, fh)
    with atomic_path(path) as tmp: soundfile.write(tmp, ...)   # writers that want a file name

The temporary file is created like :func:`tempfile.mkstemp` creates one: mode ``0o600`` (private to
the user) unless ``permissions`` says otherwise, masked by the umask as :func:`open` masks it; pass
``permissions=0o666`` for the mode a plain ``open(path, "w")`` would give.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_path", "atomic_write", "atomic_write_bytes", "atomic_write_text"]


# Tries at a free temporary name before giving up (tempfile.mkstemp's TMP_MAX is 10000; 8 random hex
# characters collide with a live temporary file so rarely that a few tries suffice).
_NAME_TRIES = 100
_TOKEN_BYTES = 4  # random bytes in a temporary name (8 hex characters)
_NAME_MAX = 255  # bytes in one file name (app.paths.NAME_MAX; fileio imports nothing of app)


def _temporary_prefix(name: str, suffix: str) -> str:
    """``.<name>.``, the name cut (at a character) so the temporary name stays within a file name's 255 bytes."""
    room = _NAME_MAX - len(os.fsencode(suffix)) - 2 - 2 * _TOKEN_BYTES  # the dots and the random hex
    cut = os.fsencode(name)[: max(0, room)].decode("utf-8", "ignore")
    return f".{cut}."


def _create_temporary(folder: Path, prefix: str, suffix: str, permissions: int) -> Path:
    """Create an empty, new file ``<prefix><random><suffix>`` in ``folder`` with ``permissions``."""
    for _ in range(_NAME_TRIES):
        name = folder / f"{prefix}{secrets.token_hex(_TOKEN_BYTES)}{suffix}"
        try:
            # O_EXCL: never open a file someone else made (mkstemp's guarantee).
            fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL, permissions)
        except FileExistsError:
            continue
        os.close(fd)
        return name
    raise FileExistsError(f"no free temporary name for {prefix}*{suffix} in {folder}")


@contextmanager
def atomic_path(
    path: str | os.PathLike[str], suffix: str | None = None, permissions: int = 0o600
) -> Iterator[Path]:
    """A temporary path beside ``path`` that replaces it when the block ends without an error.

    ``suffix`` defaults to the target's (writers such as soundfile pick the format from it). The
    parent folder is created. On an error the temporary file is removed and ``path`` is unchanged.
    ``permissions``: mode of the new file, masked by the umask (0o600, private, as mkstemp makes).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    end = target.suffix if suffix is None else suffix
    tmp = _create_temporary(target.parent, _temporary_prefix(target.name, end), end, permissions)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_write(
    path: str | os.PathLike[str],
    mode: str = "w",
    encoding: str | None = "utf-8",
    permissions: int = 0o600,
    newline: str | None = None,
) -> Iterator[IO[Any]]:
    """An open file (``mode`` "w" or "wb") whose content replaces ``path`` when the block succeeds.

    ``newline`` as :func:`open` takes it in text mode (``""`` writes "\\n" untranslated).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write writes whole files: mode must be 'w' or 'wb', not {mode!r}")
    with atomic_path(path, suffix=".tmp", permissions=permissions) as tmp:
        if mode == "wb":
            with open(tmp, "wb") as fh:
                yield fh
        else:
            with open(tmp, "w", encoding=encoding, newline=newline) as fh:
                yield fh


def atomic_write_text(
    path: str | os.PathLike[str], text: str, encoding: str = "utf-8", permissions: int = 0o600
) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8 unless told; "\\n" as the platform's newline)."""
    with atomic_write(path, "w", encoding=encoding, permissions=permissions) as fh:
        fh.write(text)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, permissions: int = 0o600) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path, "wb", permissions=permissions) as fh:
        fh.write(data)


@contextmanager
def exclusive_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created empty if absent) for a read-modify-write.

    Processes sharing a data folder (API replicas) take turns; ``flock`` also works on NFSv4
    (Linux maps it to a POSIX lock there). Where there is no ``fcntl`` (Windows) it only runs the block.
    """
    try:
        import fcntl
    except ImportError:  # Windows: one process per data folder there
        yield
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
