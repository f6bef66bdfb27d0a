"""Who runs a job: an owner's lease in the job's folder, renewed while the job runs.

Several studio processes (replicas behind one address, or a CLI beside a server) may keep their
jobs on one shared volume. A process starting up must tell a job whose process died (resume it
later: "interrupted") from a job another live process is running right now (leave it alone).
The job file alone cannot: both say "running".

So the process that runs a job writes ``lease.json`` in its folder (owner id, host, pid, when it
was renewed, how long it holds) before the job starts, renews it every ``heartbeat_s`` while
the job runs (:class:`Heartbeat`), and removes it when the job ends. A job is someone else's as
long as its lease is live (renewed within ``ttl_s``); a job whose lease ran out, or that has none,
was cut off. Leases compare wall-clock times written by different hosts: their clocks must agree
to well within ``ttl_s`` (NTP does). A lease written in this machine's own process space (same
boot, same pid namespace) whose process is gone is dead at once: a killed CLI's job resumes
without waiting for the lease to run out.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from app.fileio import atomic_write_text

LEASE_FILE = "lease.json"
# A lease holds this long after its last renewal (several missed heartbeats: a busy disk or a
# paused process is not taken for a dead one).
LEASE_S = 60.0
# Seconds between renewals.
HEARTBEAT_S = 10.0

log = logging.getLogger(__name__)


def new_owner_id() -> str:
    """An id for one process's service: host, pid and a random part (a pid can be reused)."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Lease:
    """One owner's hold on a job folder."""

    owner: str
    host: str
    pid: int
    # Wall-clock seconds of the last renewal.
    renewed: float
    # Seconds it holds after ``renewed``.
    ttl_s: float
    # The process space its pid belongs to (boot id + pid namespace; "" when unknown).
    space: str = ""

    def live(self, now: float | None = None) -> bool:
        """True while the owner renewed it within ``ttl_s`` (and, in this process space, still runs)."""
        if (time.time() if now is None else now) >= self.renewed + self.ttl_s:
            return False
        return not (self.space and self.space == process_space() and not _running(self.pid))


@functools.cache
def process_space() -> str:
    """This machine's boot id and pid namespace: pids mean the same process only within one."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
        return f"{boot}:{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return ""


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def write_lease(folder: Path, owner: str, ttl_s: float = LEASE_S) -> Lease:
    """Take or renew ``owner``'s lease on ``folder`` (atomically)."""
    lease = Lease(owner, socket.gethostname(), os.getpid(), time.time(), ttl_s, process_space())
    atomic_write_text(Path(folder) / LEASE_FILE, json.dumps(asdict(lease)))
    return lease


def read_lease(folder: Path) -> Lease | None:
    """The lease on ``folder``; None when there is none or it cannot be read (an expired one then)."""
    try:
        data = json.loads((Path(folder) / LEASE_FILE).read_text(encoding="utf-8"))
        return Lease(
            str(data["owner"]),
            str(data["host"]),
            int(data["pid"]),
            float(data["renewed"]),
            float(data["ttl_s"]),
            str(data.get("space", "")),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("unreadable job lease in %s (%s): taken as expired", folder, exc)
        return None


def release_lease(folder: Path, owner: str) -> None:
    """Remove ``owner``'s lease on ``folder`` (another owner's is left alone)."""
    lease = read_lease(folder)
    if lease is not None and lease.owner == owner:
        (Path(folder) / LEASE_FILE).unlink(missing_ok=True)


def held_by_other(folder: Path, owner: str, now: float | None = None) -> Lease | None:
    """The live lease of another owner on ``folder``, else None."""
    lease = read_lease(folder)
    if lease is not None and lease.owner != owner and lease.live(now):
        return lease
    return None


class Heartbeat:
    """Renews one owner's leases every ``interval_s`` on a daemon thread, while folders are held."""

    def __init__(self, owner: str, ttl_s: float = LEASE_S, interval_s: float = HEARTBEAT_S) -> None:
        if not 0 < interval_s < ttl_s:
            raise ValueError(f"heartbeat interval {interval_s:g} s must be below the lease's {ttl_s:g} s")
        self.owner = owner
        self.ttl_s = ttl_s
        self.interval_s = interval_s
        self._folders: set[Path] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, folder: Path) -> None:
        """Take the lease on ``folder`` now and keep renewing it until :meth:`release`."""
        write_lease(folder, self.owner, self.ttl_s)
        with self._lock:
            self._folders.add(Path(folder))
            if self._stop.is_set():  # stopped earlier: renew again, on a new thread
                self._stop, self._thread = threading.Event(), None
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._beat, args=(self._stop,), name="job-leases", daemon=True
                )
                self._thread.start()

    def release(self, folder: Path) -> None:
        """Stop renewing ``folder``'s lease and remove it."""
        with self._lock:  # not while a beat renews it (it would come back)
            self._folders.discard(Path(folder))
            release_lease(folder, self.owner)

    def stop(self) -> None:
        """Stop renewing (the leases run out by themselves)."""
        self._stop.set()

    def _beat(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval_s):
            with self._lock:
                for folder in self._folders:
                    try:
                        write_lease(folder, self.owner, self.ttl_s)
                    except OSError as exc:  # a full or vanished volume: the next beat tries again
                        log.warning("cannot renew the job lease in %s: %s", folder, exc)
