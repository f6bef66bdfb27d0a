"""Long-form jobs in the studio: books, subtitles and scripts read in the background, through the device line.

A :class:`LongformService` keeps its jobs under ``output/longform/<id>/`` (the folder layout of
:mod:`app.infer.longform.state`). Each job runs on a thread of its own; every take it makes is
one streaming synthesis queued on the :class:`~app.services.synthesis.SynthesisService`, so a
long job takes turns on the device with the web UI's and the API's requests instead of holding
it. Stopping takes effect after the take being made; a job whose process died (a restart) is
found again as ``interrupted`` and continues from its last take with :meth:`LongformService.resume`.

Replicas may share one jobs folder: the process running a job holds a lease on its folder
(:mod:`app.infer.longform.lease`, renewed every few seconds), and a job counts as cut off only
when it says running but nobody's lease on it is live, so a replica starting up leaves the jobs
of its live neighbours alone; one whose owner died is found interrupted once the lease runs out.

Voices are saved presets (:mod:`app.services.presets`): :meth:`LongformService.preset_voice`
turns one into the models + request template the job stores, so a preset edited later does not
change a job already made.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from app.infer.longform import (
    Assembly,
    JobOptions,
    JobState,
    JobStateError,
    JobStopped,
    LineState,
    LongformJob,
    Script,
    Voice,
)
from app.infer.longform.lease import HEARTBEAT_S, LEASE_S, Heartbeat, held_by_other, new_owner_id, read_lease
from app.infer.longform.state import JOB_FILE
from app.infer.request import AudioChunk, ModelLoadError, PipelineSpec, TTSInputError, TTSRequest
from app.messages import Message
from app.paths import Layout
from app.services.device_queue import QueueFull
from app.services.model_choice import ModelChoiceStore, resolve_weight
from app.services.presets import PresetError, PresetStore
from app.services.synthesis import SynthesisService
from app.services.weights import list_weights, pipeline_spec

log = logging.getLogger(__name__)

# Seconds between tries when the device line is full.
RETRY_S = 2.0
# States of jobs that may be resumed.
RESUMABLE = ("stopped", "failed", "interrupted")
# States of a job under way (its owner's lease tells whether it still is).
UNDER_WAY = ("queued", "running")


class LongformError(ValueError):
    """A job cannot be found or changed as asked; the message says why and what to do."""


class JobNotFound(LongformError):
    """No job has that id."""


class VoiceError(ValueError):
    """A voice of a job cannot be made from its preset; ``voice`` names it ("" = the default voice)."""

    def __init__(self, message: str, voice: str, cause: Exception | None = None) -> None:
        super().__init__(message)
        self.voice = voice
        # The preset's or the model's own error (interfaces tell a missing preset from a bad one).
        self.cause = cause


@dataclass(frozen=True)
class JobSummary:
    """One job as lists show it."""

    id: str
    title: str
    kind: str
    # queued, running, done, stopped, failed, interrupted.
    state: str
    # Lines with all their takes, and lines.
    done: int
    total: int
    error: str
    created: float


class LongformService:
    """The long-form jobs of one data root.

    Args:
        root: folder of the jobs (``Layout.output / "longform"``), maybe shared with other processes.
        synthesis: the device's one line; every take is queued there.
        owner: this service's lease owner id (default: host, pid and a random part).
        lease_s, heartbeat_s: how long a job's lease holds, and how often it is renewed.
    """

    def __init__(
        self,
        root: Path,
        synthesis: SynthesisService,
        owner: str | None = None,
        lease_s: float = LEASE_S,
        heartbeat_s: float = HEARTBEAT_S,
    ) -> None:
        self.root = Path(root)
        self.synthesis = synthesis
        self.owner = owner or new_owner_id()
        self._leases = Heartbeat(self.owner, lease_s, heartbeat_s)
        self._lock = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}
        self._stops: dict[str, threading.Event] = {}
        self._jobs: dict[str, LongformJob] = {}
        self._recover()

    # --------------------------------------------------------------------------- voices
    @staticmethod
    def preset_voice(
        layout: Layout, preset_name: str, voice_name: str = "", device: str = "auto", precision: str = "fp32"
    ) -> Voice:
        """The preset ``preset_name`` as a job voice called ``voice_name`` (its models, else the current ones).

        Raises :class:`~app.services.presets.PresetError` or
        :class:`~app.infer.request.ModelLoadError` with what to change.
        """
        presets = PresetStore(layout.presets)
        preset = presets.get(preset_name)
        listing = list_weights(layout)
        chosen = [
            resolve_weight(layout, kind, value, listing) if value else None
            for kind, value in (("gpt", preset.gpt_weights), ("sovits", preset.sovits_weights))
        ]
        if None in chosen:
            current = ModelChoiceStore(layout).current(listing)
            chosen = [c or current[i] for i, c in enumerate(chosen)]
        spec = pipeline_spec(layout, chosen[0], chosen[1], device, precision)
        defaults = {k: v for k, v in preset.defaults().items() if k != "seed"}  # jobs seed each take
        request = TTSRequest(
            text=".",
            reference=str(presets.reference_path(preset)),
            extra_references=tuple(str(p) for p in presets.extra_paths(preset)),
            prompt_text=preset.prompt_text,
            prompt_language=preset.prompt_language,
            text_language=preset.text_language,
            **defaults,  # type: ignore[arg-type]
        )
        return Voice(voice_name, spec, request)

    @classmethod
    def script_voices(
        cls,
        layout: Layout,
        script: Script,
        default_preset: str,
        presets: dict[str, str] | None = None,
        device: str = "auto",
        precision: str = "fp32",
    ) -> tuple[Voice, ...]:
        """The voices of ``script``: ``default_preset`` for lines without a voice, and for each voice
        a line names the preset ``presets`` maps it to (by default the preset of the same name).

        Raises :class:`VoiceError` naming the voice, with the preset's or the model's problem.
        """
        mapping = dict(presets or {})
        unknown = sorted(set(mapping) - set(script.voices))
        if unknown:
            template = "the script has no voice named {names}"
            raise VoiceError(Message("longform.svc.no_voice", template, names=", ".join(unknown)), unknown[0])
        wanted = [("", default_preset)] + [(n, mapping.get(n, n)) for n in script.voices if n]
        voices = []
        for name, preset in wanted:
            try:
                voices.append(cls.preset_voice(layout, preset, name, device, precision))
            except (PresetError, ModelLoadError, TTSInputError) as exc:
                said = exc.args[0] if exc.args and isinstance(exc.args[0], Message) else str(exc)
                if name:
                    message = Message(
                        "longform.svc.voice", "voice {name}: {problem}", name=name, problem=said
                    )
                else:
                    message = Message(
                        "longform.svc.default_voice", "voice (default): {problem}", problem=said
                    )
                raise VoiceError(message, name, exc) from None
        return tuple(voices)

    # ---------------------------------------------------------------------------- jobs
    def submit(self, script: Script, voices: tuple[Voice, ...], options: JobOptions) -> str:
        """Start a job reading ``script`` with ``voices`` (the first is the default); its id."""
        if options.dub and not script.timed:
            template = "dubbing fits lines to subtitle cues: give an .srt or .vtt source, or turn it off"
            raise LongformError(Message("longform.svc.dub_untimed", template))
        job_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
        lines = tuple(LineState(line) for line in script.lines)
        folder = self.root / job_id
        folder.mkdir(parents=True)
        self._leases.hold(folder)  # before job.json says "queued": no neighbour takes it for cut off
        try:
            job = LongformJob.create(folder, JobState(script.kind, options, voices, lines))
        except BaseException:
            self._leases.release(folder)
            raise
        self._start(job_id, job)
        return job_id

    def _start(self, job_id: str, job: LongformJob) -> None:
        self._leases.hold(job.folder)
        stop = threading.Event()
        thread = threading.Thread(target=self._run, args=(job, stop), name=f"longform-{job_id}", daemon=True)
        with self._lock:
            self._jobs[job_id] = job
            self._stops[job_id] = stop
            self._threads[job_id] = thread
        thread.start()

    def _run(self, job: LongformJob, stop: threading.Event) -> None:
        try:
            job.run(self.speak, stop)
        except JobStopped:
            log.info("long-form job %s stopped", job.folder.name)
        except Exception:  # recorded in job.json as "failed" with its message
            log.exception("long-form job %s failed", job.folder.name)
        finally:
            self._leases.release(job.folder)

    def speak(self, spec: PipelineSpec, request: TTSRequest) -> Iterator[AudioChunk]:
        """One take, queued on the device line (waits while the line is full)."""
        while True:
            try:
                chunks = self.synthesis.open_stream(spec, request, token_chunks=False)
                break
            except QueueFull:
                time.sleep(RETRY_S)
        try:
            yield from chunks
        finally:
            chunks.cancel()  # the reader left early: stop the synthesis (a no-op once it ended)

    def _recover(self) -> None:
        """Jobs left queued or running by a process that died (no live lease) are marked interrupted."""
        for folder in sorted(self.root.glob(f"*/{JOB_FILE}")):
            try:
                self._checked(LongformJob.open(folder.parent))
            except JobStateError as exc:
                log.warning("skipping long-form job %s: %s", folder.parent, exc)

    def _checked(self, job: LongformJob) -> LongformJob:
        """``job``, marked interrupted when it says it is under way but nobody's lease on it is live."""
        if job.state.state in UNDER_WAY:
            lease = read_lease(job.folder)
            if lease is None or not lease.live():
                log.info("long-form job %s was cut off: marked interrupted", job.folder.name)
                job.set_state("interrupted")
        return job

    def _not_elsewhere(self, job_id: str) -> None:
        """Refuse to act on a job another live process runs."""
        lease = held_by_other(self.root / job_id, self.owner)
        if lease is not None and not self.running(job_id):
            template = (
                "job {job} is running in another studio process ({host}, pid {pid}): "
                "stop, resume or edit it there, or wait for it to end"
            )
            fields = {"job": job_id, "host": lease.host, "pid": lease.pid}
            raise LongformError(Message("longform.svc.elsewhere", template, **fields))

    def job(self, job_id: str) -> LongformJob:
        """The job ``job_id`` (the live one while it runs)."""
        with self._lock:
            live = self._jobs.get(job_id)
        if live is not None:
            return live
        folder = self.root / job_id
        if (
            not job_id
            or "/" in job_id
            or "\\" in job_id
            or job_id.startswith(".")
            or not (folder / JOB_FILE).is_file()
        ):
            template = "no long-form job {job!r}: list the jobs to see their ids"
            raise JobNotFound(Message("longform.svc.no_job", template, job=job_id))
        return self._checked(LongformJob.open(folder))

    def running(self, job_id: str) -> bool:
        with self._lock:
            thread = self._threads.get(job_id)
        return thread is not None and thread.is_alive()

    def list(self) -> list[JobSummary]:
        """Every job, newest first."""
        out = []
        for folder in sorted(self.root.glob(f"*/{JOB_FILE}"), reverse=True):
            try:
                state = self.job(folder.parent.name).state
            except (JobStateError, LongformError) as exc:
                log.warning("skipping long-form job %s: %s", folder.parent, exc)
                continue
            out.append(_summary(folder.parent.name, state))
        return out

    def summary(self, job_id: str) -> JobSummary:
        return _summary(job_id, self.job(job_id).state)

    def stop(self, job_id: str) -> None:
        """Ask a running job to stop after its current take."""
        with self._lock:
            stop = self._stops.get(job_id)
        self._not_elsewhere(job_id)
        if stop is None or not self.running(job_id):
            raise LongformError(Message("longform.svc.not_running", "job {job} is not running", job=job_id))
        stop.set()

    def resume(self, job_id: str) -> None:
        """Continue a stopped, failed or interrupted job from its last take."""
        if self.running(job_id):
            raise LongformError(Message("longform.svc.running", "job {job} is running already", job=job_id))
        self._not_elsewhere(job_id)
        job = self.job(job_id)
        if job.state.state not in RESUMABLE:
            template = "job {job} is {state}; only {resumable} jobs resume"
            fields = {"job": job_id, "state": job.state.state, "resumable": ", ".join(RESUMABLE)}
            raise LongformError(Message("longform.svc.not_resumable", template, **fields))
        self._start(job_id, LongformJob.open(job.folder))

    def wait(self, job_id: str, timeout: float | None = None) -> JobSummary:
        """Block until the job's thread ends (tests, the CLI); its summary."""
        with self._lock:
            thread = self._threads.get(job_id)
        if thread is not None:
            thread.join(timeout)
        return self.summary(job_id)

    def _idle(self, job_id: str) -> LongformJob:
        if self.running(job_id):
            template = "job {job} is still running: wait for it or stop it first"
            raise LongformError(Message("longform.svc.still_running", template, job=job_id))
        self._not_elsewhere(job_id)
        return self.job(job_id)

    def regenerate(self, job_id: str, line: int, text: str | None = None) -> Assembly:
        """A new take of one line (with ``text``: the line edited and its takes made anew); the rest is kept."""
        return self._idle(job_id).regenerate(self.speak, line, text)

    def choose(self, job_id: str, line: int, take: int) -> Assembly:
        """Use take ``take`` of ``line`` in the assembled outputs."""
        return self._idle(job_id).choose(line, take)

    def outputs(self, job_id: str) -> dict[str, Path]:
        """The files of a finished job by kind (audio, srt, vtt, timestamps; fit when dubbing)."""
        job = self.job(job_id)
        if job.state.state != "done":
            template = "job {job} is {state}: its outputs exist once it is done"
            raise LongformError(Message("longform.svc.not_done", template, job=job_id, state=job.state.state))
        return job.outputs()

    def shutdown(self) -> None:
        """Stop every running job after its current take."""
        with self._lock:
            stops = tuple(self._stops.values())
        for stop in stops:
            stop.set()
        self._leases.stop()  # leases of jobs still finishing a take run out by themselves


def _summary(job_id: str, state: JobState) -> JobSummary:
    return JobSummary(
        job_id,
        state.options.title,
        state.kind,
        state.state,
        state.done_lines,
        len(state.lines),
        state.error,
        state.created,
    )


@functools.cache
def shared_longform(root: Path, synthesis: SynthesisService) -> LongformService:
    """The one service of ``root`` per synthesis service (the web UI and the API of one server share it)."""
    return LongformService(root, synthesis)
