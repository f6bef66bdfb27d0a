"""A bounded first-in-first-out queue in front of the compute device.

One worker thread runs the jobs one at a time: the device synthesises one request at a time, and
models are swapped between jobs, never during one (a job that started on a model finishes on it).
At most ``limit`` jobs wait behind the running one; :meth:`DeviceQueue.submit` refuses more at
once with :class:`QueueFull`, which carries a suggested wait, so an HTTP front end answers 503
with ``Retry-After`` instead of letting requests pile up (Ray Serve / TorchServe / Ollama do the
same). A process has one, owned by :class:`app.services.synthesis.SynthesisService`; interfaces
wait on the :class:`concurrent.futures.Future` it hands back, and blocking work never runs on an
event loop.
"""

from __future__ import annotations

import logging
import math
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from app.messages import Message

log = logging.getLogger(__name__)

T = TypeVar("T")

# Suggested wait before the first job has been timed (a short synthesis on a GPU or a CPU).
INITIAL_JOB_SECONDS = 2.0
# Recent job durations kept; their median is the expected job time (robust to the one slow job
# that loaded the models).
DURATION_WINDOW = 16
# Retry-After is clamped to this range (seconds).
RETRY_AFTER_RANGE = (1, 600)


class QueueFull(RuntimeError):
    """The queue holds ``limit`` waiting jobs besides the running one; try again later."""

    def __init__(self, pending: int, retry_after_s: int) -> None:
        super().__init__(
            Message(
                "queue.full",
                "the server is busy ({pending} requests running or waiting); retry in {seconds} s",
                pending=pending,
                seconds=retry_after_s,
            )
        )
        # Jobs running or waiting when the job was refused.
        self.pending = pending
        # Suggested wait in whole seconds (the HTTP Retry-After value).
        self.retry_after_s = retry_after_s


class DeviceQueue:
    """Run jobs one at a time on a worker thread, with at most ``limit`` jobs waiting.

    Args:
        limit: jobs allowed to wait behind the running one (``Settings.queue_limit``).
        name: worker thread name prefix (shows in logs and stack dumps).
    """

    def __init__(self, limit: int, name: str = "device") -> None:
        if limit < 0:
            raise ValueError(f"queue limit must be >= 0, got {limit}")
        self.limit = limit
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._pending = 0  # admitted jobs not finished: the running one + the waiting ones
        self._running = False  # a job is on the device now (pending also counts the waiting ones)
        self._durations: deque[float] = deque(maxlen=DURATION_WINDOW)
        self.completed = 0  # jobs finished (successfully or not)
        self.refused = 0  # submissions refused with QueueFull

    @property
    def pending(self) -> int:
        """Jobs running or waiting."""
        with self._lock:
            return self._pending

    @property
    def busy(self) -> bool:
        """A job is running now."""
        with self._lock:
            return self._running

    def retry_after(self, pending: int | None = None) -> int:
        """Seconds until a slot is likely free: typical job time times the jobs ahead, rounded up."""
        with self._lock:
            ahead = self._pending if pending is None else pending
            typical = statistics.median(self._durations) if self._durations else INITIAL_JOB_SECONDS
            estimate = typical * max(1, ahead - self.limit)
        low, high = RETRY_AFTER_RANGE
        return int(min(high, max(low, math.ceil(estimate))))

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        """Queue ``fn``; raises :class:`QueueFull` at once when ``limit`` jobs already wait.

        Cancelling the returned future before the job starts frees its slot.
        """
        with self._lock:
            if self._pending >= self.limit + 1:
                self.refused += 1
                pending = self._pending
                full = True
            else:
                self._pending += 1
                full = False
        if full:
            raise QueueFull(pending, self.retry_after(pending))
        try:
            future = self._executor.submit(self._timed, fn)
        except RuntimeError:  # shut down
            self._release(None)
            raise
        future.add_done_callback(lambda _: self._release(None))
        return future

    def _timed(self, fn: Callable[[], T]) -> T:
        with self._lock:
            self._running = True
        start = time.perf_counter()
        try:
            return fn()
        finally:
            elapsed = time.perf_counter() - start
            with self._lock:
                self._running = False
                self._durations.append(elapsed)

    def _release(self, _: object) -> None:
        with self._lock:
            self._pending -= 1
            self.completed += 1

    def shutdown(self, wait: bool = True) -> None:
        """Stop accepting jobs; waiting jobs are cancelled, the running one finishes."""
        self._executor.shutdown(wait=wait, cancel_futures=True)
