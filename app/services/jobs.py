"""Long-running work as child processes: start, watch, stop, and find again after a restart.

A job is ``python -m <module> --config <run.yaml>`` started with an argument list (never a shell
string), in its own process group, output to ``log.txt``. The child reports progress through the
status file of :mod:`app.runstatus` beside its config. Each job has a folder ``<jobs root>/<id>/``
holding ``job.json`` (what was started, pid, times, exit code) and ``log.txt``; listing the jobs
root is how a restarted UI finds running and finished jobs again.

Jobs that use the compute device (training) wait in ONE queue and run one at a time; other jobs
start at once. More than one GPU in a job's ``gpus`` runs it through ``torchrun`` (DDP).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import psutil

from app.fileio import atomic_write_text
from app.messages import Message
from app.runstatus import FINAL_STATES, STATUS_FILE, RunStatus, read_status
from app.settings import REPO_ROOT, child_environment

log = logging.getLogger(__name__)

JOB_FILE = "job.json"
LOG_FILE = "log.txt"
# Seconds a stopped job gets to save its checkpoint before it is killed.
STOP_GRACE_S = 30.0


class JobError(RuntimeError):
    """A job could not be started, found or stopped; the message says why."""


@dataclass(frozen=True)
class JobSpec:
    """What to run."""

    module: str  # python module with a main(), e.g. "app.train.sovits"
    config: Path  # the run's config file (run.yaml); the status file is written beside it
    name: str = ""  # label shown in the UI, e.g. "sovits: my_voice"
    kind: str = ""  # stable id of the work, e.g. "sovits", "gpt", "svc", "format"
    uses_device: bool = True  # waits in the one device queue
    gpus: tuple[int, ...] = ()  # CUDA device indices; more than one -> torchrun DDP
    extra_args: tuple[str, ...] = ()  # further argv after --config

    def argv(self, python: str) -> list[str]:
        module_args = ["--config", str(self.config), *self.extra_args]
        if len(self.gpus) > 1:
            return [python, "-m", "torch.distributed.run", "--standalone",
                    f"--nproc_per_node={len(self.gpus)}", "-m", self.module, *module_args]  # fmt: skip
        return [python, "-m", self.module, *module_args]

    def environment(self) -> dict[str, str]:
        overrides = {"PYTHONUNBUFFERED": "1"}
        if self.gpus:
            overrides["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in self.gpus)
        return child_environment(overrides)


@dataclass(frozen=True)
class JobRecord:
    """What ``job.json`` holds."""

    id: str
    spec: JobSpec
    created: float
    state: str = "queued"  # queued -> started -> ended (the run's own progress is in its status file)
    pid: int | None = None
    pid_create_time: float | None = None  # tells a live pid from a reused one
    started: float | None = None
    ended: float | None = None
    returncode: int | None = None
    stop_requested: bool = False
    argv: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class JobView:
    """A job as the UI shows it: the record plus the run's last status."""

    record: JobRecord
    status: RunStatus | None
    state: str  # queued, running, done, failed, stopped, lost
    folder: Path

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def log_path(self) -> Path:
        return self.folder / LOG_FILE


def _record_to_json(record: JobRecord) -> str:
    data = asdict(record)
    data["spec"]["config"] = str(record.spec.config)
    return json.dumps(data, indent=2)


def _record_from_json(text: str) -> JobRecord:
    data = json.loads(text)
    spec = data.pop("spec")
    spec["config"] = Path(spec["config"])
    spec["gpus"] = tuple(spec.get("gpus", ()))
    spec["extra_args"] = tuple(spec.get("extra_args", ()))
    data["argv"] = tuple(data.get("argv", ()))
    return JobRecord(spec=JobSpec(**spec), **data)


def _alive(record: JobRecord) -> bool:
    if record.pid is None:
        return False
    try:
        proc = psutil.Process(record.pid)
        if record.pid_create_time is not None and abs(proc.create_time() - record.pid_create_time) > 1.0:
            return False  # the pid was reused by another process
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class JobManager:
    """Starts and tracks jobs under one folder. Thread-safe; one instance per process."""

    def __init__(self, root: Path, python: str = sys.executable, cwd: Path = REPO_ROOT) -> None:
        self.root = Path(root)
        self.python = python
        self.cwd = cwd
        self._lock = threading.RLock()
        self._procs: dict[str, subprocess.Popen] = {}

    # -- files ---------------------------------------------------------------------------------
    def _folder(self, job_id: str) -> Path:
        return self.root / job_id

    def _save(self, record: JobRecord) -> None:
        folder = self._folder(record.id)
        folder.mkdir(parents=True, exist_ok=True)
        # 0o666 under the umask: an ordinary file, as open() makes one.
        atomic_write_text(folder / JOB_FILE, _record_to_json(record), permissions=0o666)

    def _load(self, job_id: str) -> JobRecord:
        path = self._folder(job_id) / JOB_FILE
        try:
            return _record_from_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            message = Message(
                "jobs.err.no_job", "no job {job!r} under {root}", job=job_id, root=str(self.root)
            )
            raise JobError(message) from None
        except (ValueError, TypeError, KeyError) as exc:
            template = "{path}: unreadable job record ({problem})"
            raise JobError(
                Message("jobs.err.unreadable", template, path=str(path), problem=str(exc))
            ) from exc

    # -- public API ----------------------------------------------------------------------------
    def submit(self, spec: JobSpec) -> JobView:
        """Record a job and start it now, or queue it when it needs the busy device."""
        if not Path(spec.config).is_file():
            template = "config file {path} does not exist; write the run's config first"
            raise JobError(Message("jobs.err.no_config", template, path=str(spec.config)))
        job_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
        record = JobRecord(id=job_id, spec=spec, created=time.time())
        with self._lock:
            self._save(record)
            self.poll()
        return self.get(job_id)

    def list(self) -> list[JobView]:
        """Every job under the root, newest first (also those started by an earlier process)."""
        self.poll()
        views = []
        for path in sorted(self.root.glob(f"*/{JOB_FILE}"), reverse=True):
            try:
                views.append(self._view(self._load(path.parent.name)))
            except JobError as exc:
                log.warning("%s", exc)
        return views

    def get(self, job_id: str) -> JobView:
        with self._lock:
            return self._view(self._reap(job_id))

    def stop(self, job_id: str, grace_s: float = STOP_GRACE_S) -> JobView:
        """Ask a job to stop (SIGTERM to its process group; the trainer saves and exits), kill it after ``grace_s``."""
        with self._lock:
            record = self._load(job_id)
            if record.state == "queued":
                record = replace(record, state="ended", ended=time.time(), stop_requested=True)
                self._save(record)
                return self._view(record)
            record = replace(record, stop_requested=True)
            self._save(record)
        if record.state == "started" and _alive(record):
            self._signal(record, signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            while time.monotonic() < deadline and self._running(job_id, record):
                self._reap(job_id)
                time.sleep(0.1)
            if self._running(job_id, record):
                log.warning("job %s did not stop within %.0f s; killing it", job_id, grace_s)
                self._signal(record, signal.SIGKILL)
                proc = self._procs.get(job_id)
                if proc is not None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(timeout=10)
        self.poll()
        return self.get(job_id)

    def tail(self, job_id: str, lines: int = 200) -> str:
        """The last ``lines`` lines of a job's output."""
        path = self._folder(job_id) / LOG_FILE
        try:
            with path.open("rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - 256 * lines))
                text = fh.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait(self, job_id: str, timeout: float | None = None) -> JobView:
        """Block until the job has ended (or ``timeout`` seconds passed)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.poll()
            view = self.get(job_id)
            if view.state in FINAL_STATES:
                return view
            if deadline is not None and time.monotonic() > deadline:
                return view
            time.sleep(0.2)

    def poll(self) -> None:
        """Reap ended children and start queued jobs when the device is free."""
        with self._lock:
            records = []
            for path in sorted(self.root.glob(f"*/{JOB_FILE}")):
                try:
                    records.append(self._reap(path.parent.name))
                except JobError as exc:
                    log.warning("%s", exc)
            device_busy = any(r.state == "started" and r.spec.uses_device and _alive(r) for r in records)
            for record in sorted(records, key=lambda r: r.created):
                if record.state != "queued":
                    continue
                if record.spec.uses_device:
                    if device_busy:
                        continue
                    device_busy = True
                self._start(record)

    # -- internals -----------------------------------------------------------------------------
    def _start(self, record: JobRecord) -> JobRecord:
        folder = self._folder(record.id)
        argv = record.spec.argv(self.python)
        with (folder / LOG_FILE).open("ab") as out:
            try:
                proc = subprocess.Popen(
                    argv,
                    cwd=self.cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=record.spec.environment(),
                    start_new_session=True,  # own process group: stop() signals the whole tree
                )
            except OSError as exc:
                record = replace(record, state="ended", ended=time.time(), returncode=-1)
                self._save(record)
                template = "could not start {command}: {problem}"
                message = Message("jobs.err.start", template, command=" ".join(argv), problem=str(exc))
                raise JobError(message) from exc
        self._procs[record.id] = proc
        try:
            create_time = psutil.Process(proc.pid).create_time()
        except psutil.NoSuchProcess:
            create_time = None
        record = replace(
            record,
            state="started",
            pid=proc.pid,
            pid_create_time=create_time,
            started=time.time(),
            argv=tuple(argv),
        )
        self._save(record)
        log.info("started job %s: %s", record.id, " ".join(argv))
        return record

    def _reap(self, job_id: str) -> JobRecord:
        record = self._load(job_id)
        if record.state != "started":
            return record
        proc = self._procs.get(job_id)
        if proc is not None:
            code = proc.poll()
            if code is None:
                return record
            self._procs.pop(job_id, None)
        elif _alive(record):
            return record
        else:
            code = None  # started by an earlier process; its exit code is unknown
        record = replace(record, state="ended", ended=time.time(), returncode=code)
        self._save(record)
        return record

    def _running(self, job_id: str, record: JobRecord) -> bool:
        """Whether the job's process still runs. Our own children are asked through their Popen
        handle: a process whose main thread has exited while other threads still finish shows as
        a zombie to psutil, yet cannot be reaped (nor has it written its last files) until they do."""
        proc = self._procs.get(job_id)
        if proc is not None:
            return proc.poll() is None
        return _alive(record)

    def _signal(self, record: JobRecord, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(record.pid, sig)

    def _view(self, record: JobRecord) -> JobView:
        status = read_status(Path(record.spec.config).parent / STATUS_FILE)
        if record.state == "queued":
            state = "stopped" if record.stop_requested else "queued"
        elif record.state == "started":
            state = "running"
        elif status is not None and status.state in FINAL_STATES:
            state = status.state
        elif record.stop_requested:
            state = "stopped"
        elif record.returncode == 0:
            state = "done"
        elif record.returncode is None:
            state = "lost"  # no final status and no exit code: it died while nobody watched
        else:
            state = "failed"
        return JobView(record=record, status=status, state=state, folder=self._folder(record.id))


def recorded_jobs(root: Path) -> list[tuple[JobRecord, bool]]:
    """Every job recorded under ``root``, newest first, with whether its process is alive.

    Read only: unlike :meth:`JobManager.list` nothing is started or reaped, so an observer in
    another process (``/metrics`` of an API replica) can look without taking part.
    """
    found = []
    for path in sorted(Path(root).glob(f"*/{JOB_FILE}"), reverse=True):
        try:
            record = _record_from_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, TypeError, KeyError):
            continue  # being written by its manager, or not a job record
        found.append((record, record.state == "started" and _alive(record)))
    return found


def running_gpu_indices(views: Sequence[JobView]) -> set[int]:
    """GPU indices used by running jobs (to warn before starting inference on a busy GPU)."""
    return {g for v in views if v.state == "running" for g in v.record.spec.gpus}
