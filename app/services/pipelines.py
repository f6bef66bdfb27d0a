"""The one owner of loaded TTS pipelines: loaded once per (GPT file, SoVITS file, device, precision).

Jobs of the synthesis service (:mod:`app.services.synthesis`, the one door the UI, the HTTP API
and jobs go through) ask :func:`shared_pipelines` for a pipeline; nothing else loads models. At most ``max_loaded`` pipelines stay in memory (one by default: a full v2 pipeline
holds about 1 GB); asking for another spec swaps it in under the cache's lock, so two requests
for the same spec load it once. A pipeline in use by a running synthesis stays alive until that
synthesis ends, even after it was swapped out.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace

from app.infer.pipeline import TTSPipeline
from app.infer.request import PipelineSpec

log = logging.getLogger(__name__)

Loader = Callable[[PipelineSpec], TTSPipeline]


def _file_key(spec: PipelineSpec) -> tuple[PipelineSpec, tuple[str, ...]]:
    """(spec with resolved paths, size:mtime of both files): a file rewritten in place reloads."""
    stamps = []
    for path in (spec.gpt_path, spec.sovits_path):
        try:
            st = path.stat()
            stamps.append(f"{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            stamps.append("missing")
    resolved = replace(spec, gpt_path=spec.gpt_path.resolve(), sovits_path=spec.sovits_path.resolve())
    return resolved, tuple(stamps)


class PipelineCache:
    """Loaded pipelines keyed by spec (and the files' size/mtime), least recently used dropped first."""

    def __init__(self, max_loaded: int = 1, loader: Loader = TTSPipeline.load) -> None:
        if max_loaded < 1:
            raise ValueError(f"max_loaded must be at least 1, got {max_loaded}")
        self.max_loaded = max_loaded
        self._loader = loader
        self._loaded: OrderedDict[tuple[PipelineSpec, tuple[str, ...]], TTSPipeline] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0  # how many times a pipeline was loaded (for tests and logs)

    def get(self, spec: PipelineSpec) -> TTSPipeline:
        """The pipeline of ``spec``, loading it (and dropping the least recently used) when needed.

        Raises :class:`~app.infer.request.ModelLoadError` when the models cannot be loaded (the
        pipeline swapped out for it is then loaded again on its next use).
        """
        key = _file_key(spec)
        with self._lock:
            found = self._loaded.get(key)
            if found is not None:
                self._loaded.move_to_end(key)
                return found
            # Drop before loading, so peak memory holds max_loaded pipelines, not one more.
            while len(self._loaded) >= self.max_loaded:
                (old, _), _ = self._loaded.popitem(last=False)
                log.info("unloading TTS pipeline %s + %s", old.gpt_path.name, old.sovits_path.name)
            pipeline = self._loader(spec)
            self.loads += 1
            self._loaded[key] = pipeline
            return pipeline

    def loaded(self) -> tuple[PipelineSpec, ...]:
        """Specs of the pipelines in memory, least recently used first."""
        with self._lock:
            return tuple(p.spec for p in self._loaded.values())

    def clear(self) -> None:
        """Unload everything."""
        with self._lock:
            self._loaded.clear()


@functools.lru_cache(maxsize=1)
def shared_pipelines() -> PipelineCache:
    """The process-wide cache every synthesis service shares (created on first use)."""
    return PipelineCache()
