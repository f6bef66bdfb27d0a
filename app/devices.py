"""Device and dtype choice, called explicitly (never at import time)."""

from __future__ import annotations

import functools
import os

import torch


def pick_device(preference: str = "auto") -> torch.device:
    """Return the device to compute on: ``auto`` takes the first CUDA GPU when present, else CPU."""
    if preference in ("", "auto"):
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    device = torch.device(preference)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {preference!r} was asked for but no CUDA GPU is available; use 'cpu'")
    return device


def pick_dtype(device: torch.device, precision: str = "fp32") -> torch.dtype:
    """Map a precision name (fp32, fp16, bf16) to a dtype usable on ``device``."""
    table = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if precision not in table:
        raise ValueError(f"unknown precision {precision!r}; choose one of {sorted(table)}")
    if device.type == "cpu" and precision == "fp16":
        raise ValueError("fp16 is not supported on CPU; use fp32 or bf16")
    return table[precision]


def cuda_device_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def release_free_memory() -> None:
    """Hand freed heap memory back to the OS (glibc ``malloc_trim``); a no-op elsewhere.

    Loading models frees large temporaries (state dicts, unpacked weights) in the middle of the
    heap, where glibc keeps them for reuse and they stay in the process's resident memory; a
    long-lived server that loads a few models then carries ~100-200 MB it never uses again.
    Cheap (a walk over the free lists): call it after loads and large one-off computations.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim():  # type: ignore[no-untyped-def]
    """glibc's ``malloc_trim``, looked up once; None off Linux or with another libc (musl)."""
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")  # runs ldconfig: once per process, not per call
    if name is None:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None


MADV_DONTNEED = 4  # Linux <sys/mman.h>
MADV_HUGEPAGE = 14
_HUGE_PAGE = 2 << 20


def hugepage_buffer(nbytes: int) -> torch.Tensor:
    """A ``(nbytes,)`` uint8 CPU tensor, 2 MB aligned, whose memory the kernel is asked to back with
    2 MB pages (``madvise(MADV_HUGEPAGE)`` before any page is touched; honoured when transparent huge
    pages are ``always`` or ``madvise``, the usual settings). For weights streamed in full on every
    step: with 4 KB pages each 4 KB read costs a TLB miss. Elsewhere, or when refused, the same
    buffer on ordinary pages.
    """
    rounded = -(-nbytes // _HUGE_PAGE) * _HUGE_PAGE
    raw = torch.empty(rounded + _HUGE_PAGE, dtype=torch.uint8)
    start = raw.data_ptr() + (-raw.data_ptr()) % _HUGE_PAGE
    madvise = _madvise()
    if madvise is not None and rounded:
        madvise(start, rounded, MADV_HUGEPAGE)
    offset = start - raw.data_ptr()
    return raw[offset : offset + nbytes]


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def release_file_pages(path: str | os.PathLike) -> int:
    """Drop this process's pages of its private, never written memory maps of ``path``; returns bytes.

    A model memory-mapped from its file (HuBERT's weights) keeps every page it touched resident
    between uses. The pages of a private mapping that was only read are the file's bytes, so
    ``madvise(MADV_DONTNEED)`` gives them up without changing anything the process sees: the next
    read maps them again from the page cache (a few ms for a few hundred MB). A mapping with
    written (copied) pages is left alone, since dropping those would bring the file's bytes back.
    Linux only; elsewhere nothing is done and 0 returned.
    """
    if _madvise() is None:
        return 0
    freed = 0
    for start, end, rss in clean_file_maps(path):
        if rss and drop_pages(start, end):
            freed += rss
    return freed


def drop_pages(start: int, end: int) -> bool:
    """``madvise(MADV_DONTNEED)`` on the whole pages inside ``[start, end)``; True when done.

    Only for addresses inside a map from :func:`clean_file_maps` (anything else would lose data).
    """
    madvise = _madvise()
    page = _PAGE
    lo, hi = -(-start // page) * page, end // page * page
    return madvise is not None and hi > lo and madvise(lo, hi - lo, MADV_DONTNEED) == 0


def clean_file_maps(path: str | os.PathLike) -> list[tuple[int, int, int]]:
    """(start, end, resident bytes) of this process's private maps of ``path`` with no written page."""
    target = os.fsencode(os.path.realpath(path))
    found: list[tuple[int, int, int]] = []
    current: list | None = None
    try:
        with open("/proc/self/smaps", "rb") as fh:
            for line in fh:
                head = line.split(None, 5)
                if head and b"-" in head[0] and len(head) >= 5 and not head[0].endswith(b":"):
                    current = None
                    perms = head[1]
                    if len(head) == 6 and head[5].rstrip(b"\n") == target and perms.endswith(b"p"):
                        lo, hi = (int(v, 16) for v in head[0].split(b"-"))
                        current = [lo, hi, 0, 0]
                        found.append(current)  # type: ignore[arg-type]
                elif current is not None and head and head[0] in (b"Rss:", b"Anonymous:"):
                    current[2 if head[0] == b"Rss:" else 3] = int(head[1]) * 1024
    except OSError:
        return []
    return [(lo, hi, rss) for lo, hi, rss, written in found if written == 0]  # type: ignore[misc]


@functools.cache
def _madvise():  # type: ignore[no-untyped-def]
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        fn = ctypes.CDLL(name, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn
