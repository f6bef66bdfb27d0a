from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest
import yaml

from app.runstatus import read_metrics
from app.services.jobs import JobError, JobManager, JobSpec

CHILD = "tests.services.jobs_child"


def make_config(folder: Path, **values) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_job_runs_to_done_and_reports_progress(tmp_path):
    jobs = JobManager(tmp_path / "jobs", python=sys.executable)
    cfg = make_config(tmp_path / "run1", steps=5, sleep=0.01)
    view = jobs.submit(JobSpec(module=CHILD, config=cfg, name="t", kind="test"))
    done = jobs.wait(view.id, timeout=60)
    assert done.state == "done"
    assert done.status.step == 5 and done.status.progress == 1.0
    assert done.record.returncode == 0
    assert "step 5" in jobs.tail(view.id)
    assert [row["step"] for row in read_metrics(cfg.parent / "metrics.jsonl")] == [1, 2, 3, 4, 5]
    assert done.record.argv[:3] == (sys.executable, "-m", CHILD)


def test_failed_job_keeps_its_error(tmp_path):
    jobs = JobManager(tmp_path / "jobs")
    cfg = make_config(tmp_path / "run", steps=1, sleep=0.0, fail=True)
    view = jobs.wait(jobs.submit(JobSpec(module=CHILD, config=cfg)).id, timeout=60)
    assert view.state == "failed"
    assert view.status.last_error == "boom"
    assert view.record.returncode == 3


def test_device_jobs_wait_in_one_queue(tmp_path):
    jobs = JobManager(tmp_path / "jobs")
    first = jobs.submit(JobSpec(module=CHILD, config=make_config(tmp_path / "a", steps=20, sleep=0.05)))
    second = jobs.submit(JobSpec(module=CHILD, config=make_config(tmp_path / "b", steps=1, sleep=0.0)))
    assert jobs.get(first.id).state == "running"
    assert jobs.get(second.id).state == "queued"
    # a job that does not use the device starts at once
    side = jobs.submit(JobSpec(module=CHILD, config=make_config(tmp_path / "c", steps=1), uses_device=False))
    assert jobs.get(side.id).state in ("running", "done")
    assert jobs.wait(first.id, timeout=60).state == "done"
    assert jobs.wait(second.id, timeout=60).state == "done"
    assert jobs.get(second.id).record.started >= jobs.get(first.id).record.ended - 0.5


def test_stop_sends_sigterm_and_the_child_saves(tmp_path):
    jobs = JobManager(tmp_path / "jobs")
    cfg = make_config(tmp_path / "run", steps=1000, sleep=0.02)
    view = jobs.submit(JobSpec(module=CHILD, config=cfg))
    assert wait_for(
        lambda: (jobs.get(view.id).status or None) is not None and jobs.get(view.id).status.step >= 2
    )
    stopped = jobs.stop(view.id, grace_s=20)
    assert stopped.state == "stopped"
    assert "stopped cleanly" in jobs.tail(view.id)
    assert 2 <= stopped.status.step < 1000


def test_stopping_a_queued_job_never_starts_it(tmp_path):
    jobs = JobManager(tmp_path / "jobs")
    first = jobs.submit(JobSpec(module=CHILD, config=make_config(tmp_path / "a", steps=50, sleep=0.02)))
    second = jobs.submit(JobSpec(module=CHILD, config=make_config(tmp_path / "b", steps=1)))
    assert jobs.stop(second.id).state == "stopped"
    jobs.stop(first.id)
    jobs.poll()
    assert jobs.get(second.id).record.pid is None


def test_a_new_manager_finds_running_and_finished_jobs(tmp_path):
    root = tmp_path / "jobs"
    old = JobManager(root)
    done = old.wait(
        old.submit(JobSpec(module=CHILD, config=make_config(tmp_path / "a", steps=1))).id, timeout=60
    )
    running = old.submit(JobSpec(module=CHILD, config=make_config(tmp_path / "b", steps=1000, sleep=0.02)))
    assert wait_for(lambda: old.get(running.id).status is not None)

    fresh = JobManager(root)  # as after a UI restart
    views = {v.id: v for v in fresh.list()}
    assert views[done.id].state == "done"
    assert views[running.id].state == "running"
    assert fresh.stop(running.id, grace_s=20).state == "stopped"


def test_a_job_killed_while_nobody_watched_is_reported_lost(tmp_path):
    root = tmp_path / "jobs"
    old = JobManager(root)
    view = old.submit(JobSpec(module=CHILD, config=make_config(tmp_path / "a", steps=1000, sleep=0.02)))
    assert wait_for(lambda: old.get(view.id).status is not None)
    os.killpg(view.record.pid, signal.SIGKILL)
    old._procs.clear()  # forget the Popen handle, as a restarted process would not have it
    assert wait_for(lambda: JobManager(root).get(view.id).state != "running", timeout=10)
    assert JobManager(root).get(view.id).state == "lost"


def test_missing_config_is_refused(tmp_path):
    with pytest.raises(JobError, match="does not exist"):
        JobManager(tmp_path / "jobs").submit(JobSpec(module=CHILD, config=tmp_path / "nope.yaml"))


def test_more_than_one_gpu_runs_through_torchrun(tmp_path):
    spec = JobSpec(module="app.train.sovits", config=tmp_path / "run.yaml", gpus=(0, 1))
    argv = spec.argv("python")
    assert argv[:3] == ["python", "-m", "torch.distributed.run"]
    assert "--nproc_per_node=2" in argv and argv[-2:] == ["--config", str(tmp_path / "run.yaml")]
    assert spec.environment()["CUDA_VISIBLE_DEVICES"] == "0,1"
