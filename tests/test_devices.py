"""app.devices: device choice and returning freed heap memory."""

from __future__ import annotations

import ctypes

import pytest
import torch

from app.devices import hugepage_buffer, pick_device, pick_dtype, release_free_memory


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


def test_pages_of_a_read_only_file_map_are_given_back_unchanged(tmp_path) -> None:
    from app.devices import release_file_pages

    path = tmp_path / "weights.bin"
    data = torch.arange(16 * 2**20, dtype=torch.float32)  # 64 MB
    path.write_bytes(data.numpy().tobytes())
    storage = torch.UntypedStorage.from_file(str(path), shared=False, nbytes=path.stat().st_size)
    mapped = torch.empty(0).set_(storage, 0, (data.numel(),))
    assert torch.equal(mapped, data)  # every page read: resident
    before = _rss_mb()
    freed = release_file_pages(path)
    assert freed >= 60 * 2**20 and before - _rss_mb() > 50
    assert torch.equal(mapped, data)  # read back from the file
    # A written page (copied on write) would be lost: such a map is left alone.
    mapped[0] = -1.0
    assert release_file_pages(path) == 0 and mapped[0].item() == -1.0 and torch.equal(mapped[1:], data[1:])
    assert release_file_pages(tmp_path / "not-mapped.bin") == 0


@pytest.mark.parametrize("nbytes", [1, 4096, (2 << 20) + 5, 5 << 20])
def test_hugepage_buffer_is_aligned_and_usable(nbytes: int) -> None:
    buf = hugepage_buffer(nbytes)
    assert buf.shape == (nbytes,) and buf.dtype == torch.uint8 and buf.data_ptr() % (2 << 20) == 0
    buf.fill_(7)
    assert int(buf.sum()) == 7 * nbytes
