"""Running a long-form job: every missing take of every line, then assembly; resumable at any point.

:class:`LongformJob` owns one job folder (:mod:`app.infer.longform.state`). :meth:`LongformJob.run`
makes the takes still missing, line by line, writing each take's file and then ``job.json``
(both atomically), so a job killed at any moment resumes where it stopped: a take is either
complete on disk and listed, or made again. Each take is one :class:`~app.infer.request.TTSRequest`
handed to a :data:`Speak` callable (the CLI runs a pipeline directly; the studio's service queues
it on the device line), which yields the pipeline's audio chunks.

Dubbing (``options.dub``, subtitle sources): a take longer than its cue is made again faster
(:mod:`app.infer.longform.fit`), with the same seed, within ``max_speed``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import soundfile as sf

from app.devices import release_free_memory
from app.fileio import atomic_path
from app.infer.longform.assemble import Assembly, assemble
from app.infer.longform.fit import MAX_ATTEMPTS, next_speed
from app.infer.longform.sources import Line
from app.infer.longform.state import (
    JOB_FILE,
    OUT_DIR,
    JobState,
    JobStateError,
    LineState,
    Take,
    Voice,
    load,
    save,
    take_file,
)
from app.infer.request import SPEED_RANGE, AudioChunk, PipelineSpec, TTSRequest
from app.messages import Message, said

log = logging.getLogger(__name__)

# (models, request) -> the pipeline's audio chunks of that request (the last one carries the result).
Speak = Callable[[PipelineSpec, TTSRequest], Iterable[AudioChunk]]
# Called after every take: (lines with all their takes, lines).
Progress = Callable[[int, int], None]


class JobStopped(RuntimeError):
    """The job was asked to stop; what was made so far is kept."""


class LongformJob:
    """One job folder: its state, the takes still to make, the assembled outputs."""

    def __init__(self, folder: Path, state: JobState) -> None:
        self.folder = Path(folder)
        self.state = state
        self._lock = threading.RLock()

    @classmethod
    def create(cls, folder: Path, state: JobState) -> LongformJob:
        """A new job in ``folder`` (must not hold one yet)."""
        folder = Path(folder)
        if (folder / JOB_FILE).exists():
            template = "{folder} holds a job already: resume it or choose another folder"
            raise JobStateError(Message("job.err.exists", template, folder=str(folder)))
        for voice_name in dict.fromkeys(s.line.voice for s in state.lines):
            state.voice(voice_name)  # every voice a line names is there
        now = time.time()
        job = cls(folder, dataclasses.replace(state, created=now, updated=now))
        job.save()
        return job

    @classmethod
    def open(cls, folder: Path) -> LongformJob:
        """The job in ``folder``."""
        return cls(Path(folder), load(Path(folder)))

    def save(self) -> None:
        with self._lock:
            self.state = dataclasses.replace(self.state, updated=time.time())
            save(self.folder, self.state)

    def set_state(self, value: str, error: str = "") -> None:
        """Record the job's state (``queued``, ``running``, ...) and why it failed."""
        with self._lock:
            self.state = dataclasses.replace(self.state, state=value, error=error)
            self.save()

    # ---------------------------------------------------------------------------- running
    def run(
        self, speak: Speak, stop: threading.Event | None = None, progress: Progress | None = None
    ) -> Assembly:
        """Make every missing take, then assemble; raises :class:`JobStopped` when ``stop`` is set."""
        stop = stop or threading.Event()
        self.set_state("running")
        try:
            for index in range(len(self.state.lines)):
                while len(self.state.lines[index].takes) < self.state.options.takes:
                    if stop.is_set():
                        raise JobStopped(Message("job.stopped", "stopped"))
                    self._add_take(speak, index)
                    if progress is not None:
                        progress(self.state.done_lines, len(self.state.lines))
            result = self.assemble()
        except JobStopped:
            self.set_state("stopped")
            raise
        except Exception as exc:
            self.set_state("failed", said(exc))  # a Message stays one: the page translates it
            raise
        self.set_state("done")
        return result

    def _add_take(self, speak: Speak, index: int, choose: bool = False) -> Take:
        with self._lock:
            line_state = self.state.lines[index]
            number = line_state.made + 1
            seed = self.state.seed_for(index, number)
        voice = self.state.voice(line_state.line.voice)
        audio, sample_rate, take = self._speak_line(speak, voice, line_state.line, seed)
        take = dataclasses.replace(take, file=take_file(index, number))
        with atomic_path(self.folder / take.file) as tmp:
            sf.write(tmp, audio, sample_rate, subtype="PCM_16", format="WAV")
        with self._lock:
            current = self.state.lines[index]
            takes = (*current.takes, take)
            chosen = len(takes) - 1 if choose else current.chosen
            self._set_line(index, dataclasses.replace(current, takes=takes, made=number, chosen=chosen))
        log.info("line %d take %d: %.2f s at speed %.2f", index, number, take.seconds, take.speed)
        # The take's decoder activations and audio are freed; handed back to the OS rather than left
        # in glibc's heap, a book of hundreds of takes keeps the memory of one (~1 ms).
        release_free_memory()
        return take

    def _set_line(self, index: int, line_state: LineState) -> None:
        lines = list(self.state.lines)
        lines[index] = line_state
        self.state = dataclasses.replace(self.state, lines=tuple(lines))
        self.save()

    def _speak_line(self, speak: Speak, voice: Voice, line: Line, seed: int) -> tuple[np.ndarray, int, Take]:
        """Synthesise ``line``; when dubbing, again faster until it fits its cue or reaches max_speed."""
        speed = voice.request.speed
        fit = self.state.options.fit
        slot = (line.end - line.start) if (line.start is not None and line.end is not None) else None
        for _ in range(MAX_ATTEMPTS):
            audio, rate, take = _speak_once(
                speak, voice, line, seed, speed, self.state.options.word_timestamps
            )
            if not self.state.options.dub or slot is None:
                break
            faster = next_speed(take.seconds, slot, speed, fit)
            if faster is None or faster <= speed:
                break
            speed = min(faster, SPEED_RANGE[1])
        return audio, rate, take

    # ------------------------------------------------------------------- editing lines
    def regenerate(self, speak: Speak, index: int, text: str | None = None) -> Assembly:
        """Make a new take of line ``index`` (chosen), or with new ``text`` its takes anew; reassemble.

        Only this line is synthesised; the other lines' takes are kept.
        """
        with self._lock:
            if not 0 <= index < len(self.state.lines):
                raise _no_line(index, len(self.state.lines))
            current = self.state.lines[index]
            if text is not None and " ".join(text.split()) != current.line.text:
                if not text.strip():
                    raise JobStateError(Message("job.err.empty_text", "the new text of the line is empty"))
                edited = dataclasses.replace(current.line, text=" ".join(text.split()))
                self._set_line(index, dataclasses.replace(current, line=edited, takes=(), chosen=0))
                for _ in range(self.state.options.takes):
                    self._add_take(speak, index)
            else:
                self._add_take(speak, index, choose=True)
            return self.assemble()

    def choose(self, index: int, take: int) -> Assembly:
        """Assemble take ``take`` of line ``index`` from now on."""
        with self._lock:
            if not 0 <= index < len(self.state.lines):
                raise _no_line(index, len(self.state.lines))
            current = self.state.lines[index]
            if not 0 <= take < len(current.takes):
                template = "line {index} has {count} take(s); take {take} does not exist"
                fields = {"index": index, "count": len(current.takes), "take": take}
                raise JobStateError(Message("job.err.no_take", template, **fields))
            self._set_line(index, dataclasses.replace(current, chosen=take))
            return self.assemble()

    def outputs(self) -> dict[str, Path]:
        """The assembled files that exist, by kind: audio, srt, vtt, timestamps and (dubbing) fit."""
        out = self.folder / OUT_DIR
        title = self.state.options.title
        names = {
            "audio": ".wav",
            "srt": ".srt",
            "vtt": ".vtt",
            "timestamps": ".timestamps.json",
            "fit": ".fit.json",
            "words_srt": ".words.srt",
            "words_vtt": ".words.vtt",
        }
        paths = {kind: out / f"{title}{suffix}" for kind, suffix in names.items()}
        return {kind: path for kind, path in paths.items() if path.is_file()}

    def assemble(self) -> Assembly:
        """Write the outputs from the chosen takes (every line must have one)."""
        with self._lock:
            missing = [i for i, s in enumerate(self.state.lines) if not s.takes]
            if missing:
                template = "{count} line(s) have no take yet (first: line {first})"
                message = Message("job.err.untaken", template, count=len(missing), first=missing[0])
                raise JobStateError(message)
            return assemble(self.folder, self.state)


def _speak_once(
    speak: Speak, voice: Voice, line: Line, seed: int, speed: float, word_timestamps: bool = False
) -> tuple[np.ndarray, int, Take]:
    """One synthesis of ``line``: int16 speech (trailing pause cut) at its rate and its :class:`Take`."""
    request = dataclasses.replace(
        voice.request,
        text=line.text,
        text_language=line.language or voice.request.text_language,
        seed=seed,
        speed=speed,
        word_timestamps=word_timestamps,
    )
    parts: dict[int, list[np.ndarray]] = {}
    rate, texts, words = 0, (), ()
    for chunk in speak(voice.spec, request):
        rate = chunk.sample_rate
        if len(chunk.audio):
            parts.setdefault(chunk.segment, []).append(chunk.audio)
        if chunk.result is not None:
            texts, words = chunk.result.segments, chunk.result.words
    if not rate or not parts:
        template = "the synthesis of {text!r} gave no audio"
        raise JobStateError(Message("job.err.no_audio", template, text=line.text[:40]))
    pause = round(rate * request.pause_seconds)  # the runner's pause after every segment
    segments, pieces, offset, timed = [], [], 0, []
    for seg in sorted(parts):
        audio = np.concatenate(parts[seg])
        speech = max(0, len(audio) - pause)
        text = texts[seg].strip() if seg < len(texts) else ""
        segments.append((offset / rate, (offset + speech) / rate, text))
        for word in words[seg] if seg < len(words) else ():
            timed.append((offset / rate + word.start, offset / rate + word.end, word.text))
        pieces.append(audio)
        offset += len(audio)
    whole = np.concatenate(pieces)[: max(0, offset - pause)]
    if word_timestamps and len(words) != len(parts):
        template = "the synthesis gave no word timestamps: this pipeline cannot align its tokens"
        raise JobStateError(Message("job.err.no_words", template))
    return whole, rate, Take(seed, "", len(whole) / rate, speed, tuple(segments), tuple(timed))


def _no_line(index: int, count: int) -> JobStateError:
    template = "line {index} does not exist: lines are 0 to {last}"
    return JobStateError(Message("job.err.no_line", template, index=index, last=count - 1))
