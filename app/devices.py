"""Device and dtype choice, called explicitly (never at import time)."""

from __future__ import annotations

import functools

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
