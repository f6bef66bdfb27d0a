"""A long-form job on disk: its voices, options, lines and takes in one ``job.json``.

Layout of a job folder::

    job.json            JobState (rewritten atomically after every take: a kill loses at most
                        the take being made, and a resumed job skips every take already written)
    takes/0007-1.wav    take 1 of line 7 (16-bit mono)
    out/                what assembly writes (see app.infer.longform.assemble)

Voices are stored whole (models, reference, prompt, sampling defaults) so that resuming or
regenerating a line uses exactly the voice the job started with.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.fileio import atomic_write_text
from app.infer.longform.fit import FitOptions
from app.infer.longform.sources import KINDS, Line
from app.infer.request import MAX_PAUSE_SECONDS, MAX_SEED, PipelineSpec, TTSRequest
from app.messages import Message, rebuilt, record

JOB_FILE = "job.json"
TAKES_DIR = "takes"
OUT_DIR = "out"
FORMAT_VERSION = 1
# queued -> running -> done | stopped | failed; "interrupted": the process died while it ran.
STATES = ("queued", "running", "done", "stopped", "failed", "interrupted")
MAX_TAKES = 8


class JobStateError(ValueError):
    """A job file or an option is not usable; the message says what to change."""


@dataclass(frozen=True)
class Voice:
    """One voice of a job: the models and the request every line it speaks starts from."""

    # Name used by script lines ("" = the default voice).
    name: str
    # The models.
    spec: PipelineSpec
    # Reference, prompt, languages and sampling defaults; its text is replaced per line.
    request: TTSRequest


@dataclass(frozen=True)
class Take:
    """One synthesis of a line."""

    # The seed it was made with.
    seed: int
    # Its file, relative to the job folder.
    file: str
    # Seconds of speech (the trailing pause excluded).
    seconds: float
    # The speed it was spoken at.
    speed: float
    # (start, end, text) of each sentence segment inside the take, seconds.
    segments: tuple[tuple[float, float, str], ...] = ()
    # With word timestamps: (start, end, word) of every word inside the take, seconds.
    words: tuple[tuple[float, float, str], ...] = ()


@dataclass(frozen=True)
class LineState:
    """A line and its takes."""

    line: Line
    takes: tuple[Take, ...] = ()
    # Index into takes of the take assembled.
    chosen: int = 0
    # Takes made for this line so far (numbers new takes and their seeds; never decreases).
    made: int = 0


@dataclass(frozen=True)
class JobOptions:
    """How a job reads its lines."""

    # Name of the output files (the whole audio, subtitles).
    title: str = "longform"
    # Takes made per line (pick one per line afterwards).
    takes: int = 1
    # Base seed: take k of line i uses a seed derived from it, i and k.
    seed: int = 0
    # Silence between lines and before a new chapter, seconds (reading, not dubbing).
    line_pause: float = 0.5
    chapter_pause: float = 1.5
    # Fit each line to its cue (subtitle sources only).
    dub: bool = False
    fit: FitOptions = field(default_factory=FitOptions)
    # Word/character timestamps (the GPT's tokens aligned to the phones): in the timestamps JSON
    # and as word-level subtitles (<title>.words.srt / .words.vtt).
    word_timestamps: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.takes <= MAX_TAKES:
            template = "takes must be between 1 and {most}, got {value}"
            raise JobStateError(Message("job.err.takes", template, most=MAX_TAKES, value=self.takes))
        if not 0 <= self.seed <= MAX_SEED:
            template = "seed must be between 0 and {most}, got {value}"
            raise JobStateError(Message("job.err.seed", template, most=MAX_SEED, value=self.seed))
        for name in ("line_pause", "chapter_pause"):
            if not 0.0 <= getattr(self, name) <= MAX_PAUSE_SECONDS:
                template = "{name} must be between 0 and {most:g} s"
                raise JobStateError(Message("job.err.pause", template, name=name, most=MAX_PAUSE_SECONDS))
        if not self.title.strip() or any(c in self.title for c in '/\\:*?"<>|') or len(self.title) > 80:
            template = 'title {title!r}: use up to 80 characters without / \\ : * ? " < > |'
            raise JobStateError(Message("job.err.title", template, title=self.title))


@dataclass(frozen=True)
class JobState:
    """Everything a job knows (``job.json``)."""

    # Source kind (app.infer.longform.sources.KINDS).
    kind: str
    options: JobOptions
    voices: tuple[Voice, ...]
    lines: tuple[LineState, ...]
    state: str = "queued"
    # Why it failed ("" otherwise).
    error: str = ""
    # Seconds since the epoch.
    created: float = 0.0
    updated: float = 0.0

    def voice(self, name: str) -> Voice:
        """The voice called ``name`` (the first voice for "")."""
        for voice in self.voices:
            if voice.name == name:
                return voice
        if name == "" and self.voices:
            return self.voices[0]
        raise JobStateError(Message("job.err.no_voice", "no voice named {name!r} in this job", name=name))

    @property
    def done_lines(self) -> int:
        """Lines that have all their takes."""
        return sum(1 for s in self.lines if len(s.takes) >= self.options.takes)

    def seed_for(self, index: int, take: int) -> int:
        """Seed of take number ``take`` of line ``index`` (deterministic, distinct per take)."""
        return (self.options.seed + 1_000_003 * index + 7919 * take) % (MAX_SEED + 1)


def take_file(index: int, number: int) -> str:
    """File of take ``number`` of line ``index``, relative to the job folder."""
    return f"{TAKES_DIR}/{index:04d}-{number}.wav"


# ------------------------------------------------------------------------ JSON round trip
def _request_json(request: TTSRequest) -> dict[str, Any]:
    if isinstance(request.reference, bytes) or any(isinstance(r, bytes) for r in request.extra_references):
        template = "a job's voices must name their reference clips by path, not by bytes"
        raise JobStateError(Message("job.err.bytes", template))
    data = {n: getattr(request, n) for n in request.__dataclass_fields__}
    data["reference"] = str(request.reference)
    data["extra_references"] = [str(r) for r in request.extra_references]
    return data


def _spec_json(spec: PipelineSpec) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(spec).items()}


def to_json(state: JobState) -> str:
    """``job.json`` text of ``state``."""
    data = {
        "format": FORMAT_VERSION,
        "kind": state.kind,
        "options": dataclasses.asdict(state.options),
        "voices": [
            {"name": v.name, "spec": _spec_json(v.spec), "request": _request_json(v.request)}
            for v in state.voices
        ],
        "lines": [dataclasses.asdict(s) for s in state.lines],
        "state": state.state,
        "error": state.error,
        # The error's key and values (when it is a Message): the page words it in its reader's language.
        "error_said": record(state.error),
        "created": state.created,
        "updated": state.updated,
    }
    return json.dumps(data, ensure_ascii=False, indent=1)


def _take(data: dict[str, Any]) -> Take:
    segments = tuple((float(a), float(b), str(t)) for a, b, t in data.pop("segments", ()))
    words = tuple((float(a), float(b), str(t)) for a, b, t in data.pop("words", ()))
    return Take(segments=segments, words=words, **data)


def from_json(text: str) -> JobState:
    """The :class:`JobState` of a ``job.json`` text; :class:`JobStateError` when it is not one."""
    try:
        data = json.loads(text)
        if data.get("format") != FORMAT_VERSION or data.get("kind") not in KINDS:
            template = "not a long-form job file of format {format}"
            raise JobStateError(Message("job.err.format", template, format=FORMAT_VERSION))
        options = dict(data["options"])
        options["fit"] = FitOptions(**options["fit"])
        voices = tuple(
            Voice(v["name"], PipelineSpec(**v["spec"]), TTSRequest(**v["request"])) for v in data["voices"]
        )
        lines = tuple(
            LineState(
                line=Line(**s["line"]),
                takes=tuple(_take(dict(t)) for t in s["takes"]),
                chosen=int(s["chosen"]),
                made=int(s["made"]),
            )
            for s in data["lines"]
        )
        state = data["state"] if data["state"] in STATES else "failed"
        return JobState(
            kind=data["kind"],
            options=JobOptions(**options),
            voices=voices,
            lines=lines,
            state=state,
            error=rebuilt(data.get("error_said"), data.get("error")) or str(data.get("error", "")),
            created=float(data.get("created", 0.0)),
            updated=float(data.get("updated", 0.0)),
        )
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
        template = "damaged long-form job file ({problem})"
        message = Message("job.err.damaged", template, problem=f"{type(exc).__name__}: {exc}")
        raise JobStateError(message) from None


def save(folder: Path, state: JobState) -> None:
    """Write ``state`` to ``folder/job.json`` atomically."""
    atomic_write_text(folder / JOB_FILE, to_json(state))


def load(folder: Path) -> JobState:
    """Read ``folder/job.json``."""
    path = folder / JOB_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        template = "{path}: cannot read the job file ({problem})"
        fields = {"path": str(path), "problem": str(exc.strerror or exc)}
        raise JobStateError(Message("job.err.cannot_read", template, **fields)) from None
    return from_json(text)
