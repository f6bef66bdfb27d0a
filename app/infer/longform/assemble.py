"""Assembly: the chosen take of every line joined into the whole audio, with subtitles and timestamps.

Written to ``<job>/out/`` (each file atomically)::

    <title>.wav              the whole audio (16-bit mono, the first voice's sample rate)
    lines/0007.wav           line 7's chosen take alone
    <title>.srt, .vtt        subtitles: reading: one cue per sentence segment; dubbing: one per cue
    <title>.timestamps.json  per line and per segment: start, end, text, take, seed, speed;
                             dubbing: the cue, the delay and whether it fit
    <title>.fit.json         dubbing only: the cues that did not fit their slot
    <title>.words.srt, .vtt  word timestamps only: one cue per word (or Chinese character)

Every time comes from sample counts of the audio written (the pipeline's segment lengths and the
silences put between lines), so subtitles match the audio to the sample; files round to 1 ms.

Reading: lines follow each other with ``line_pause`` of silence (``chapter_pause`` before a new
chapter). Dubbing: each line starts at its cue's start; a line that runs past the next cue's
start pushes that one later (its delay is reported), so nothing overlaps; the audio lasts at
least until the last cue's end.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from app.audio.resample import sinc_resample
from app.fileio import atomic_path, atomic_write_text
from app.infer.longform.fit import FitReport
from app.infer.longform.state import OUT_DIR, JobState, LineState
from app.infer.longform.subtitles import Cue, to_srt, to_vtt

# Marks the text stage may put before a short segment; not shown in subtitles.
_LEADING_MARKS = " .,;:!?。，；：！？、"
# Samples of silence written at a time.
SILENCE_BLOCK = 1 << 16


@dataclass(frozen=True)
class PlacedLine:
    """Where one line's chosen take sits in the whole audio."""

    index: int
    # Seconds from the start of the whole audio.
    start: float
    end: float
    # Sentence segments (start, end, text), seconds from the start of the whole audio.
    segments: tuple[tuple[float, float, str], ...]
    # Dubbing: seconds the line starts after its cue (0 when on time).
    delay: float = 0.0
    # Word timestamps: (start, end, word), seconds from the start of the whole audio.
    words: tuple[tuple[float, float, str], ...] = ()


@dataclass(frozen=True)
class Assembly:
    """What assembly wrote."""

    # The whole audio file and its length in seconds.
    audio: Path
    duration: float
    sample_rate: int
    subtitles_srt: Path
    subtitles_vtt: Path
    timestamps: Path
    # One file per line (chosen take), in order.
    line_files: tuple[Path, ...]
    placed: tuple[PlacedLine, ...]
    cues: tuple[Cue, ...]
    # Dubbing: one report per cue (empty when reading) and the report file (None when reading).
    fit: tuple[FitReport, ...] = ()
    fit_file: Path | None = None
    # Word timestamps: the word-level subtitles (None without them).
    words_srt: Path | None = None
    words_vtt: Path | None = None

    @property
    def unfit(self) -> tuple[FitReport, ...]:
        """The cues whose speech runs past their slot."""
        return tuple(r for r in self.fit if not r.fits)


def _read_take(folder: Path, line_state: LineState, rate: int) -> np.ndarray:
    """The chosen take of a line as int16 at ``rate`` (voices of other rates are resampled)."""
    take = line_state.takes[line_state.chosen]
    audio, sr = sf.read(folder / take.file, dtype="int16", always_2d=False)
    if sr != rate:  # voices of different sample rates: the first voice's wins
        wave = torch.from_numpy(audio.astype(np.float32) / 32768.0)
        audio = (sinc_resample(wave, sr, rate).clamp(-1, 1).numpy() * 32767).astype(np.int16)
    return audio


def _write_wav(path: Path, audio: np.ndarray, rate: int) -> None:
    with atomic_path(path) as tmp:
        sf.write(tmp, audio, rate, subtype="PCM_16", format="WAV")


def _write_silence(sink: sf.SoundFile, samples: int) -> None:
    """``samples`` zeros, written a block at a time (a long gap between cues is not one array)."""
    block = np.zeros(max(0, min(samples, SILENCE_BLOCK)), np.int16)
    while samples > 0:
        sink.write(block[: min(samples, SILENCE_BLOCK)])
        samples -= SILENCE_BLOCK


def assemble(folder: Path, state: JobState) -> Assembly:
    """Write the outputs of ``state``'s chosen takes under ``folder/out``.

    The whole audio is streamed to its file line by line (memory holds one line's take, not the
    book), then renamed into place.
    """
    out = folder / OUT_DIR
    first = state.lines[0]
    rate = sf.info(str(folder / first.takes[first.chosen].file)).samplerate
    title = state.options.title
    audio_path = out / f"{title}.wav"
    with atomic_path(audio_path) as tmp, sf.SoundFile(tmp, "w", rate, 1, "PCM_16", format="WAV") as sink:
        placed, fit, line_files = _place_lines(folder, state, rate, sink)
        total = sink.frames
    cues = _cues(state, placed)
    srt, vtt, stamps = out / f"{title}.srt", out / f"{title}.vtt", out / f"{title}.timestamps.json"
    atomic_write_text(srt, to_srt(cues))
    atomic_write_text(vtt, to_vtt(cues))
    atomic_write_text(stamps, json.dumps(_timestamps(state, placed, fit), ensure_ascii=False, indent=1))
    fit_file = None
    if state.options.dub:
        fit_file = out / f"{title}.fit.json"
        unfit = [_fit_json(r, placed[r.line]) for r in fit if not r.fits]
        atomic_write_text(
            fit_file, json.dumps({"cues": len(fit), "unfit": unfit}, ensure_ascii=False, indent=1)
        )
    words_srt = words_vtt = None
    if state.options.word_timestamps:
        words = tuple(Cue(a, b, text) for p in placed for a, b, text in p.words)
        words_srt, words_vtt = out / f"{title}.words.srt", out / f"{title}.words.vtt"
        atomic_write_text(words_srt, to_srt(words))
        atomic_write_text(words_vtt, to_vtt(words))
    return Assembly(
        audio_path, total / rate, rate, srt, vtt, stamps, tuple(line_files), tuple(placed), cues,
        tuple(fit), fit_file, words_srt, words_vtt,
    )  # fmt: skip


def _place_lines(
    folder: Path, state: JobState, rate: int, sink: sf.SoundFile
) -> tuple[list[PlacedLine], list[FitReport], list[Path]]:
    """Write every line's chosen take (and the silences between) to ``sink``; where each one went."""
    placed: list[PlacedLine] = []
    fit: list[FitReport] = []
    line_files = []
    cursor = 0  # samples written so far
    dub, options = state.options.dub, state.options
    for index, line_state in enumerate(state.lines):
        audio = _read_take(folder, line_state, rate)
        line = line_state.line
        if dub and line.start is not None:
            begin = max(round(line.start * rate), cursor)
        elif index == 0:
            begin = 0
        else:
            chapter = line.chapter != state.lines[index - 1].line.chapter
            begin = cursor + round((options.chapter_pause if chapter else options.line_pause) * rate)
        _write_silence(sink, begin - cursor)
        sink.write(audio)
        cursor = begin + len(audio)
        take = line_state.takes[line_state.chosen]
        offset = begin / rate
        segments = tuple((offset + a, offset + b, text) for a, b, text in take.segments)
        words = tuple((offset + a, offset + b, text) for a, b, text in take.words)
        delay = max(0.0, offset - line.start) if dub and line.start is not None else 0.0
        placed.append(PlacedLine(index, offset, cursor / rate, segments, delay, words))
        if dub and line.start is not None and line.end is not None:
            slot, seconds = line.end - line.start, len(audio) / rate
            fit.append(FitReport(index, slot, seconds, take.speed, seconds <= slot + options.fit.tolerance_s))
        path = folder / OUT_DIR / "lines" / f"{index:04d}.wav"
        _write_wav(path, audio, rate)
        line_files.append(path)
    if dub:
        last_end = max((s.line.end or 0.0) for s in state.lines)
        _write_silence(sink, round(last_end * rate) - cursor)
    return placed, fit, line_files


def _cues(state: JobState, placed: list[PlacedLine]) -> tuple[Cue, ...]:
    if state.options.dub:
        return tuple(Cue(p.start, p.end, state.lines[p.index].line.text) for p in placed)
    cues = []
    for p in placed:
        own = state.lines[p.index].line.text
        for start, end, text in p.segments:
            # One segment: the line as written; several: the pipeline's pieces (it may have put
            # a mark before a short piece, as upstream does).
            shown = own if len(p.segments) == 1 else text.lstrip(_LEADING_MARKS) or own
            if end > start:
                cues.append(Cue(start, end, shown))
    return tuple(cues)


def _fit_json(report: FitReport, placed: PlacedLine) -> dict[str, object]:
    return {
        "line": report.line,
        "slot": round(report.slot, 3),
        "duration": round(report.duration, 3),
        "overflow": round(report.overflow, 3),
        "speed": round(report.speed, 3),
        "delay": round(placed.delay, 3),
    }


def _timestamps(state: JobState, placed: list[PlacedLine], fit: list[FitReport]) -> dict[str, object]:
    reports = {r.line: r for r in fit}
    lines = []
    for p in placed:
        line_state = state.lines[p.index]
        take = line_state.takes[line_state.chosen]
        entry: dict[str, object] = {
            "line": p.index,
            "voice": line_state.line.voice,
            "chapter": line_state.line.chapter,
            "text": line_state.line.text,
            "start": round(p.start, 4),
            "end": round(p.end, 4),
            "take": line_state.chosen,
            "seed": take.seed,
            "speed": round(take.speed, 4),
            "segments": [{"start": round(a, 4), "end": round(b, 4), "text": t} for a, b, t in p.segments],
        }
        if state.options.word_timestamps:
            entry["words"] = [{"start": round(a, 4), "end": round(b, 4), "text": t} for a, b, t in p.words]
        if p.index in reports:
            report = reports[p.index]
            entry["cue"] = [line_state.line.start, line_state.line.end]
            entry["delay"] = round(p.delay, 4)
            entry["fits"] = report.fits
        lines.append(entry)
    return {"title": state.options.title, "lines": lines}
