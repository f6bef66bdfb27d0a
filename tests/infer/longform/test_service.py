"""The long-form service (app.services.longform): jobs through the device line, stop, resume after a restart.

Here rather than in tests/services: it runs on the tiny pipeline and voices of tests/infer."""

from __future__ import annotations

import threading
import time

import pytest

from app.infer.longform import JobOptions, JobState, LineState, LongformJob, parse_source
from app.infer.longform.lease import Heartbeat, read_lease, write_lease
from app.infer.longform.state import load
from app.services.longform import LongformError, LongformService
from app.services.synthesis import SynthesisService


class TinySource:
    """Pipelines for the service: the session's tiny pipeline whatever the spec; counts syntheses."""

    def __init__(self, pipeline, gate: threading.Event | None = None) -> None:
        self.pipeline = pipeline
        self.gate = gate
        self.texts: list[str] = []
        source = self

        class Counting:
            def stream(self, request, token_chunks=True, options=None):
                source.texts.append(request.text)
                if source.gate is not None:
                    source.gate.wait(60)
                return pipeline.stream(request, token_chunks=token_chunks, options=options)

        self.counting = Counting()

    def get(self, spec):
        return self.counting

    def loaded(self):
        return ()


@pytest.fixture
def synthesis(pipeline):
    service = SynthesisService.create(4, TinySource(pipeline))
    yield service
    service.shutdown(wait=False)


def _script(text: str = "One.\n\nTwo.\n\nThree."):
    return parse_source(text, "text")


def test_a_job_runs_on_the_device_line_and_can_be_stopped_and_resumed(tmp_path, synthesis, voices):
    gate = threading.Event()
    synthesis.pipelines.gate = gate  # every take waits for the gate
    service = LongformService(tmp_path / "longform", synthesis)
    job_id = service.submit(_script(), voices[:1], JobOptions(title="book"))
    assert service.running(job_id)
    deadline = time.monotonic() + 60
    while not synthesis.pipelines.texts:  # the first take is on the device, held at the gate
        assert time.monotonic() < deadline
        time.sleep(0.01)
    service.stop(job_id)
    gate.set()
    summary = service.wait(job_id, 120)
    assert summary.state == "stopped" and summary.done == 1  # the take under way was finished
    with pytest.raises(LongformError, match="not running"):
        service.stop(job_id)
    service.resume(job_id)
    assert service.wait(job_id, 120).state == "done"
    assert synthesis.pipelines.texts == ["One.", "Two.", "Three."]
    assert sorted(service.outputs(job_id)) == ["audio", "srt", "timestamps", "vtt"]
    assert synthesis.queue.completed >= 3  # each take went through the device's line


def test_a_job_cut_off_by_a_restart_is_found_interrupted_and_resumes(tmp_path, synthesis, voices, speaker):
    root = tmp_path / "longform"
    script = _script()
    state = JobState(script.kind, JobOptions(), voices[:1], tuple(LineState(ln) for ln in script.lines))
    job = LongformJob.create(root / "20260101-000000-abcdef", state)
    job.set_state("running")
    job._add_take(speaker, 0)  # the process made one take, then died
    service = LongformService(root, synthesis)  # the studio starts again
    [summary] = service.list()
    assert summary.state == "interrupted" and summary.done == 1
    with pytest.raises(LongformError, match="interrupted: its outputs exist once it is done"):
        service.outputs(summary.id)
    service.resume(summary.id)
    assert service.wait(summary.id, 120).state == "done"
    assert synthesis.pipelines.texts == ["Two.", "Three."]
    assert load(root / summary.id).done_lines == 3
    with pytest.raises(LongformError, match=r"no long-form job '\.\./x'"):
        service.job("../x")


def test_replicas_on_one_folder_leave_each_others_live_jobs_alone(tmp_path, synthesis, voices):
    gate = threading.Event()
    synthesis.pipelines.gate = gate
    root = tmp_path / "longform"
    first = LongformService(root, synthesis, owner="replica-a", lease_s=5.0, heartbeat_s=0.05)
    job_id = first.submit(_script("One.\n\nTwo."), voices[:1], JobOptions(title="book"))
    deadline = time.monotonic() + 60
    while not synthesis.pipelines.texts:  # the first take is on the device, held at the gate
        assert time.monotonic() < deadline
        time.sleep(0.01)
    renewed = read_lease(root / job_id).renewed
    second = LongformService(root, synthesis, owner="replica-b")  # a neighbour starts up
    assert second.summary(job_id).state == "running"  # not taken for a job cut off
    for action in (second.resume, second.stop, lambda j: second.choose(j, 0, 0)):
        with pytest.raises(LongformError, match="running in another studio process"):
            action(job_id)
    time.sleep(0.3)
    assert read_lease(root / job_id).renewed > renewed  # the owner keeps renewing its lease
    gate.set()
    assert first.wait(job_id, 120).state == "done"
    assert read_lease(root / job_id) is None and second.summary(job_id).state == "done"


def test_a_job_is_interrupted_only_when_its_owners_lease_ran_out(tmp_path, synthesis, voices):
    root = tmp_path / "longform"
    script = _script()
    state = JobState(script.kind, JobOptions(), voices[:1], tuple(LineState(ln) for ln in script.lines))
    for name, owner, ttl in (("dead", "gone", 0.1), ("live", "neighbour", 60.0), ("none", None, 0)):
        job = LongformJob.create(root / name, state)
        job.set_state("running")
        if owner is not None:
            write_lease(root / name, owner, ttl)
    time.sleep(0.2)  # the dead owner's lease runs out
    service = LongformService(root, synthesis)
    states = {s.id: s.state for s in service.list()}
    assert states == {"dead": "interrupted", "live": "running", "none": "interrupted"}
    # The neighbour dies later: once its lease has run out, the job is found interrupted and resumes.
    write_lease(root / "live", "neighbour", 0.1)
    time.sleep(0.2)
    assert service.summary("live").state == "interrupted"
    service.resume("live")
    assert service.wait("live", 120).state == "done"


def test_a_lease_of_a_process_gone_from_this_machine_is_dead_at_once(tmp_path):
    import dataclasses
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    lease = write_lease(tmp_path, "cli", 60.0)
    assert lease.live()  # this process, renewed just now
    assert not dataclasses.replace(lease, pid=proc.pid).live()  # same machine, process gone
    assert dataclasses.replace(lease, pid=proc.pid, space="other-host").live()  # elsewhere: the clock decides
    assert not dataclasses.replace(lease, renewed=lease.renewed - 61).live()


def test_a_heartbeat_renews_until_released_and_again_after_a_stop(tmp_path):
    beat = Heartbeat("me", ttl_s=5.0, interval_s=0.02)
    beat.hold(tmp_path)
    first = read_lease(tmp_path).renewed
    time.sleep(0.2)
    assert read_lease(tmp_path).renewed > first
    beat.stop()
    beat.hold(tmp_path)  # a service used again after shutdown renews again
    second = read_lease(tmp_path).renewed
    time.sleep(0.2)
    assert read_lease(tmp_path).renewed > second
    beat.release(tmp_path)
    assert read_lease(tmp_path) is None
    with pytest.raises(ValueError, match="must be below"):
        Heartbeat("me", ttl_s=1.0, interval_s=1.0)
