"""DeviceQueue: one job at a time, at most `limit` waiting, prompt refusal with a retry estimate."""

from __future__ import annotations

import threading
import time

import pytest

from app.services.device_queue import DeviceQueue, QueueFull


def _blocker(gate: threading.Event, started: threading.Event | None = None):
    def job() -> str:
        if started is not None:
            started.set()
        assert gate.wait(10), "test gate never opened"
        return "done"

    return job


def test_runs_one_at_a_time_in_order_and_refuses_beyond_the_limit():
    queue = DeviceQueue(limit=2)
    gate, started = threading.Event(), threading.Event()
    order: list[int] = []
    running = []
    lock = threading.Lock()

    def job(i: int):
        def run() -> int:
            with lock:
                running.append(i)
                assert len(running) == 1, "two jobs ran at once"
            gate.wait(10)
            order.append(i)
            with lock:
                running.remove(i)
            return i

        return run

    first = queue.submit(lambda: (started.set(), job(0)())[1])
    assert started.wait(5)
    waiting = [queue.submit(job(i)) for i in (1, 2)]
    assert queue.pending == 3
    t0 = time.perf_counter()
    with pytest.raises(QueueFull) as info:
        queue.submit(job(3))
    assert time.perf_counter() - t0 < 0.5  # refused at once, not after waiting
    assert info.value.retry_after_s >= 1 and info.value.pending == 3
    assert queue.refused == 1
    gate.set()
    assert [f.result(10) for f in (first, *waiting)] == [0, 1, 2]
    assert order == [0, 1, 2]
    time.sleep(0.05)  # done callbacks run right after the results
    assert queue.pending == 0
    assert queue.submit(lambda: 7).result(5) == 7  # room again
    queue.shutdown()


def test_zero_limit_allows_only_the_running_job():
    queue = DeviceQueue(limit=0)
    gate = threading.Event()
    running = queue.submit(_blocker(gate))
    with pytest.raises(QueueFull):
        queue.submit(lambda: None)
    gate.set()
    assert running.result(5) == "done"
    queue.shutdown()


def test_cancelled_waiting_job_frees_its_slot_and_never_runs():
    queue = DeviceQueue(limit=1)
    gate, started = threading.Event(), threading.Event()
    running = queue.submit(_blocker(gate, started))
    assert started.wait(5)
    ran = threading.Event()
    waiting = queue.submit(ran.set)
    with pytest.raises(QueueFull):
        queue.submit(lambda: None)
    assert waiting.cancel()
    assert queue.pending == 1
    spare = queue.submit(lambda: "spare")
    gate.set()
    assert running.result(5) == "done" and spare.result(5) == "spare"
    assert not ran.is_set()
    queue.shutdown()


def test_errors_reach_the_caller_and_free_the_slot():
    queue = DeviceQueue(limit=0)

    def boom() -> None:
        raise RuntimeError("model exploded")

    with pytest.raises(RuntimeError, match="model exploded"):
        queue.submit(boom).result(5)
    time.sleep(0.05)
    assert queue.pending == 0 and queue.completed == 1
    queue.shutdown()


def test_retry_after_follows_measured_job_time():
    queue = DeviceQueue(limit=0)
    assert queue.retry_after(1) == 2  # nothing measured yet: the initial guess
    queue.submit(lambda: time.sleep(2.5)).result(5)  # one slow job (say, loading the models)
    for _ in range(4):
        queue.submit(lambda: time.sleep(0.01)).result(5)
    assert queue.retry_after(1) == 1  # short jobs: the minimum; the slow one does not dominate
    gate, started = threading.Event(), threading.Event()
    slow = queue.submit(_blocker(gate, started))
    assert started.wait(5)
    queue._durations.extend([7.2] * 9)  # as if jobs took ~7 s
    with pytest.raises(QueueFull) as info:
        queue.submit(lambda: None)
    assert info.value.retry_after_s == 8
    gate.set()
    slow.result(5)
    queue.shutdown()


def test_negative_limit_is_refused():
    with pytest.raises(ValueError, match="queue limit"):
        DeviceQueue(limit=-1)
