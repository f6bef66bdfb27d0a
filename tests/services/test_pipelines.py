"""The loaded-pipeline cache: one load per spec, swap under a lock, reload when a file changes."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from app.infer import ModelLoadError, PipelineSpec
from app.services.pipelines import PipelineCache, shared_pipelines


class FakePipeline:
    def __init__(self, spec: PipelineSpec) -> None:
        self.spec = spec


def _spec(tmp_path: Path, name: str, precision: str = "fp32") -> PipelineSpec:
    for suffix in (".ckpt", ".pth"):
        (tmp_path / f"{name}{suffix}").touch()
    return PipelineSpec(
        tmp_path / f"{name}.ckpt",
        tmp_path / f"{name}.pth",
        tmp_path / "h",
        tmp_path / "b",
        precision=precision,
    )


def _slow_loader(calls: list[PipelineSpec], delay: float = 0.0):
    def load(spec: PipelineSpec) -> FakePipeline:
        calls.append(spec)
        time.sleep(delay)
        return FakePipeline(spec)

    return load


def test_same_spec_loads_once_and_another_swaps_it_out(tmp_path):
    calls: list[PipelineSpec] = []
    cache = PipelineCache(loader=_slow_loader(calls))
    a, b = _spec(tmp_path, "a"), _spec(tmp_path, "b")
    first = cache.get(a)
    assert cache.get(a) is first and len(calls) == 1 and cache.loaded() == (a,)
    cache.get(b)
    assert len(calls) == 2 and cache.loaded() == (b,)  # one pipeline in memory
    assert cache.get(a) is not first and len(calls) == 3
    cache.get(_spec(tmp_path, "a", precision="fast"))  # precision is part of the key
    assert len(calls) == 4 and cache.loads == 4


def test_lru_keeps_the_recent_ones(tmp_path):
    calls: list[PipelineSpec] = []
    cache = PipelineCache(max_loaded=2, loader=_slow_loader(calls))
    a, b, c = (_spec(tmp_path, n) for n in "abc")
    cache.get(a), cache.get(b), cache.get(a), cache.get(c)
    assert cache.loaded() == (a, c) and len(calls) == 3
    cache.clear()
    assert cache.loaded() == ()
    with pytest.raises(ValueError, match="at least 1"):
        PipelineCache(max_loaded=0)


def test_a_rewritten_file_is_loaded_again(tmp_path):
    calls: list[PipelineSpec] = []
    cache = PipelineCache(loader=_slow_loader(calls))
    a = _spec(tmp_path, "a")
    cache.get(a)
    later = time.time() + 5
    os.utime(a.gpt_path, (later, later))
    cache.get(a)
    assert len(calls) == 2


def test_concurrent_requests_for_one_spec_load_it_once(tmp_path):
    calls: list[PipelineSpec] = []
    cache = PipelineCache(loader=_slow_loader(calls, delay=0.3))
    a = _spec(tmp_path, "a")
    got: list[FakePipeline] = []
    threads = [threading.Thread(target=lambda: got.append(cache.get(a))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len({id(p) for p in got}) == 1


def test_a_failed_load_raises_and_leaves_nothing_half_loaded(tmp_path):
    def broken(spec: PipelineSpec):
        raise ModelLoadError(f"{spec.gpt_path}: corrupt")

    cache = PipelineCache(loader=broken)
    with pytest.raises(ModelLoadError, match="corrupt"):
        cache.get(_spec(tmp_path, "a"))
    assert cache.loaded() == ()


def test_the_shared_cache_is_one_object():
    assert shared_pipelines() is shared_pipelines()
