"""app.devices: device choice and returning freed heap memory."""

from __future__ import annotations

import ctypes

import pytest
import torch

from app.devices import pick_device, pick_dtype, release_free_memory


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_freed_heap_memory_goes_back_to_the_os() -> None:
    # 200 MB in 4 KB malloc chunks (below glibc's mmap threshold, so they live in the heap), then
    # all freed except the last, which pins the heap top: glibc keeps the freed pages resident.
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    chunks = []
    for _ in range(50_000):
        p = libc.malloc(4096)
        ctypes.memset(p, 1, 4096)
        chunks.append(p)
    for p in chunks[:-1]:
        libc.free(p)
    before = _rss_mb()
    release_free_memory()
    after = _rss_mb()
    libc.free(chunks[-1])
    assert before - after > 100, (before, after)


def test_cpu_device_and_dtypes() -> None:
    assert pick_device("cpu").type == "cpu"
    assert pick_dtype(torch.device("cpu"), "bf16") == torch.bfloat16
    with pytest.raises(ValueError, match="fp16 is not supported on CPU"):
        pick_dtype(torch.device("cpu"), "fp16")
