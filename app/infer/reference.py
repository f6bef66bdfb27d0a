"""Reference clips: load, check, and trim a long clip to its best 3-10 s span cut at pauses.

Upstream refuses references outside 3-10 s (48,000-160,000 samples at 16 kHz). Here a clip in
that range is used as is; a longer one is cut into phrases at its pauses (the RMS slicer of
:mod:`app.audio.slicer`, on a peak-normalised copy so quiet recordings are cut too) and the run
of whole phrases spanning 3-10 s with the most speech is kept. A clip shorter than 3 s, silent,
or with less than 3 s of speech is refused with a message saying so.

Levels are checked on the whole clip first: a DC offset is removed (and noted); a clip with
nothing left after that (DC only, a constant) or a steady pure tone holds no speech and is
refused; a clipped or over-range clip is used, with a note saying so.

When a trimmed clip came with a prompt text, the text must be cut the same way: if the text has
exactly one clause per phrase (people pause at punctuation), the clauses of the kept phrases are
used; otherwise no prompt text can be trusted and the caller falls back to reference-free mode.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.audio.io import SILENCE_PEAK, AudioError, load_audio
from app.audio.slicer import SlicerOptions, find_segments, frame_rms
from app.infer.request import AudioSource, ReferenceAudioError
from app.messages import Message
from app.text.split import CLAUSE_MARKS

SAMPLE_RATE = 32000  # SoVITS rate: the timbre spectrogram and trimming work here
HUBERT_RATE = 16000  # HuBERT rate: the prompt tokens are computed here
MIN_SECONDS = 3.0  # upstream: 48,000 samples at 16 kHz
MAX_SECONDS = 10.0  # upstream: 160,000 samples at 16 kHz
# Longest clip read at all (a 10-minute upload is already far more than a reference needs).
MAX_SOURCE_SECONDS = 600.0
# Phrase finding on the peak-normalised clip: a pause is >= 200 ms below -40 dB of the peak;
# phrases keep up to 150 ms of their pauses so words are not clipped.
PHRASE_SLICER = SlicerOptions(
    threshold_db=-40.0, min_length_ms=300, min_interval_ms=200, hop_ms=10, max_sil_kept_ms=150
)
# Level checks. A mean beyond -40 dBFS is a DC offset (speech averages to ~0): removed.
DC_OFFSET = 0.01
# A sample at or above 0.99 of full scale counts as clipped; more than 0.1% of them: a clipped
# recording (a clean one normalised to 0 dBFS touches its peak a handful of times).
CLIP_LEVEL = 0.99
CLIPPED_FRACTION = 1e-3
# Pure-tone test: Hann frames of 1024 samples (31 Hz bins at 32 kHz); a frame whose strongest
# bin +-3 holds >= 90% of its energy is one sinusoid (a voiced frame's fundamental holds ~50-70%,
# the rest is in harmonics and formants). At most this many frames are looked at.
TONE_FRAME = 1024
TONE_BINS = 3
TONE_FRACTION = 0.9
TONE_MAX_FRAMES = 2000
# Edges left out of the "nothing after DC removal" test (a resampler rings at a step).
EDGE_SECONDS = 0.02
# Clause ends of a prompt text when it is matched to phrases: the split marks plus ; and 、.
_CLAUSE_END = re.compile("([" + re.escape("".join(sorted(CLAUSE_MARKS | set(";；、")))) + "]+)")


@dataclass(frozen=True)
class ReferenceClip:
    """A reference ready for encoding: the kept span at both model rates."""

    # (N,) float32 at 16 kHz, as loaded (HuBERT input; upstream feeds it unnormalised).
    wav16: np.ndarray
    # (M,) float32 at 32 kHz, as loaded (timbre spectrogram input).
    wav32: np.ndarray
    # Length of the whole clip in seconds.
    original_seconds: float
    # Kept span in seconds.
    start_seconds: float
    end_seconds: float
    # True when the span is not the whole clip.
    trimmed: bool
    # Pause-separated phrases of the whole clip, and the [first, last] phrase indices kept
    # (None when untrimmed or when the cut fell inside a phrase).
    phrase_count: int
    phrases_kept: tuple[int, int] | None
    # sha256 of the source bytes (cache key).
    sha256: str
    # What the level checks found and did (DC offset removed, clipping, over range), one
    # sentence each, for the request's notes.
    warnings: tuple[str, ...] = ()


def read_source(source: AudioSource, what: str = "reference clip") -> tuple[bytes, str]:
    """The bytes of ``source`` and a name for messages; missing files raise ReferenceAudioError."""
    field = _field(what)
    what = _clip_words(what)
    if isinstance(source, bytes):
        if not source:
            template = "the uploaded {what} is empty (0 bytes): upload an audio file"
            raise ReferenceAudioError(Message("ref.err.empty_upload", template, what=what), field)
        return source, Message("ref.name.uploaded", "uploaded {what}", what=what)
    path = Path(source)
    try:
        return path.read_bytes(), str(path)
    except FileNotFoundError:
        template = "{path}: {what} not found"
        raise ReferenceAudioError(
            Message("ref.err.not_found", template, path=str(path), what=what), field
        ) from None
    except IsADirectoryError:
        template = "{path}: is a folder, not an audio file"
        raise ReferenceAudioError(Message("ref.err.folder", template, path=str(path)), field) from None
    except OSError as exc:
        template = "{path}: cannot read the {what} ({problem})"
        fields = {"path": str(path), "what": what, "problem": str(exc.strerror or exc)}
        raise ReferenceAudioError(Message("ref.err.cannot_read", template, **fields), field) from None


def _clip_words(what: str) -> str:
    """``what`` as a Message when it is one of the pipeline's own clip names (the page translates it)."""
    if what == "reference clip":
        return Message("ref.clip.reference", "reference clip")
    if what == "extra reference clip":
        return Message("ref.clip.extra", "extra reference clip")
    return what


def _field(what: str) -> str:
    """The TTSRequest field of a clip named ``what`` in messages."""
    return "extra_references" if what.startswith("extra") else "reference"


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _load(data: bytes, name: str, sr: int, field: str = "reference") -> np.ndarray:
    try:
        return load_audio(data, sr, max_seconds=MAX_SOURCE_SECONDS)
    except AudioError as exc:
        # The loader names "<N bytes of uploaded audio>"; say which clip it was instead.
        said = exc.args[0] if exc.args else None
        named = isinstance(said, Message) and said.key == "audio.err.named"
        detail = said.params["detail"] if named else str(exc).split(": ", 1)[-1]
        raise ReferenceAudioError(
            Message(
                "ref.err.unreadable",
                "{name}: {detail}. Use a WAV/FLAC/MP3/OGG recording of 3-10 s of clear speech",
                name=name,
                detail=detail,
            ),
            field,
        ) from None


def load_clip(source: AudioSource) -> ReferenceClip:
    """Read, check and (when longer than 10 s) trim a reference clip."""
    return decode_clip(*read_source(source))


def decode_clip(data: bytes, name: str) -> ReferenceClip:
    """:func:`load_clip` on a clip's bytes already read (``name`` is used in messages)."""
    wav32 = _load(data, name, SAMPLE_RATE)
    seconds = len(wav32) / SAMPLE_RATE
    if seconds < MIN_SECONDS:
        raise ReferenceAudioError(
            Message(
                "ref.err.short",
                "{name} is {seconds:.1f} s long; a reference must hold {low:g}-{high:g} s "
                "of speech: record or upload a longer clip",
                name=name,
                seconds=seconds,
                low=MIN_SECONDS,
                high=MAX_SECONDS,
            )
        )
    wav16 = _load(data, name, HUBERT_RATE)
    offset, warnings = check_levels(wav32, name)
    if offset:
        wav32, wav16 = without_offset(wav32), without_offset(wav16)
    digest = sha256_of(data)
    if seconds <= MAX_SECONDS:
        return ReferenceClip(wav16, wav32, seconds, 0.0, seconds, False, 0, None, digest, warnings)
    start, end, phrases, kept = best_span(wav32, SAMPLE_RATE, name)
    a16, b16 = round(start * HUBERT_RATE / SAMPLE_RATE), round(end * HUBERT_RATE / SAMPLE_RATE)
    return ReferenceClip(
        wav16=np.ascontiguousarray(wav16[a16:b16]),
        wav32=np.ascontiguousarray(wav32[start:end]),
        original_seconds=seconds,
        start_seconds=start / SAMPLE_RATE,
        end_seconds=end / SAMPLE_RATE,
        trimmed=True,
        phrase_count=phrases,
        phrases_kept=kept,
        sha256=digest,
        warnings=warnings,
    )


# Who the level notes are about (a Message, so the UI says it in the reader's language).
THE_REFERENCE = Message("ref.what.reference", "The reference clip")
AN_EXTRA_REFERENCE = Message("ref.what.extra", "An extra reference clip")


def check_levels(
    wav32: np.ndarray, name: str, what: str = THE_REFERENCE, field: str = "reference"
) -> tuple[float, tuple[str, ...]]:
    """The DC offset to remove from a 32 kHz clip (0.0: none worth removing) and notes on its
    levels, each a sentence starting with ``what`` (no file names: notes go out as they are).

    Raises :class:`ReferenceAudioError` (naming ``name``, for ``field``) when nothing but an
    offset or a pure tone is there.
    """
    warnings: list[str] = []
    offset = float(wav32.mean())
    if abs(offset) > DC_OFFSET:
        wav32 = wav32 - offset
        warnings.append(
            Message(
                "ref.note.dc",
                "{what} had a DC offset of {offset:+.3f} (of full scale); it was removed.",
                what=what,
                offset=offset,
            )
        )
    else:
        offset = 0.0
    edge = round(EDGE_SECONDS * SAMPLE_RATE)
    middle = wav32[edge:-edge] if len(wav32) > 4 * edge else wav32
    if float(np.abs(middle).max(initial=0.0)) < SILENCE_PEAK:
        template = (
            "{name} holds no speech: without its DC offset it is silent (a constant signal). "
            "Record or upload a clip of clear speech"
        )
        raise ReferenceAudioError(Message("ref.err.constant", template, name=name), field)
    if tone_fraction(wav32) >= TONE_FRACTION:
        raise ReferenceAudioError(
            Message(
                "ref.err.tone",
                "{name} holds no speech: it is a steady pure tone. Record or upload a clip of clear speech",
                name=name,
            ),
            field,
        )
    peak = float(np.abs(wav32).max())
    if peak > 1.0:
        warnings.append(
            Message(
                "ref.note.over",
                "{what} goes over full scale (peak {peak:.2f}); it was scaled down as upstream does "
                "(divided by the peak, at most 2), and may sound distorted.",
                what=what,
                peak=peak,
            )
        )
    else:
        clipped = float(np.mean(np.abs(wav32) >= CLIP_LEVEL))
        if clipped > CLIPPED_FRACTION:
            warnings.append(
                Message(
                    "ref.note.clipped",
                    "{what} is clipped ({clipped:.1%} of its samples at full scale); the voice may sound "
                    "distorted: record at a lower level for a better result.",
                    what=what,
                    clipped=clipped,
                )
            )
    return offset, tuple(warnings)


def without_offset(wav: np.ndarray) -> np.ndarray:
    """``wav`` minus its mean (the DC offset), float32."""
    return (wav - wav.mean()).astype(np.float32)


def tone_fraction(wav: np.ndarray) -> float:
    """Median share of each loud frame's energy at its strongest frequency (+-3 bins): ~1 for a pure tone."""
    count = (len(wav) - TONE_FRAME) // (TONE_FRAME // 2) + 1
    if count < 1:
        return 0.0
    starts = np.linspace(0, len(wav) - TONE_FRAME, min(count, TONE_MAX_FRAMES)).astype(np.int64)
    frames = wav[starts[:, None] + np.arange(TONE_FRAME)] * np.hanning(TONE_FRAME)  # (F, 1024)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # (F, 513)
    energy = power.sum(axis=1)
    loud = energy > 0.01 * energy.max(initial=0.0)
    if not loud.any():
        return 0.0
    power, energy = power[loud], energy[loud]
    peak = power.argmax(axis=1)
    bins = np.arange(power.shape[1])
    near = np.abs(bins[None, :] - peak[:, None]) <= TONE_BINS  # (F, 513)
    return float(np.median((power * near).sum(axis=1) / energy))


def best_span(
    wav: np.ndarray, sr: int, name: str = "reference clip"
) -> tuple[int, int, int, tuple[int, int] | None]:
    """(start, end) in samples of the run of whole phrases spanning 3-10 s with the most speech.

    Also returns the number of phrases and the kept phrase range. Without such a run (one phrase
    longer than 10 s), the first 10 s of speech are cut at their quietest point after 3 s.
    """
    peak = float(np.abs(wav).max(initial=0.0))
    if peak == 0.0:
        raise ReferenceAudioError(
            Message("ref.err.silent", "{name} is silent: record or upload a clip of clear speech", name=name)
        )
    phrases = find_segments(wav / peak, sr, PHRASE_SLICER)
    lo, hi = round(MIN_SECONDS * sr), round(MAX_SECONDS * sr)
    speech = sum(p.end - p.start for p in phrases)
    if speech < lo:
        raise ReferenceAudioError(
            Message(
                "ref.err.little_speech",
                "{name} holds only {speech:.1f} s of speech in {seconds:.1f} s; a reference "
                "needs {low:g}-{high:g} s of speech",
                name=name,
                speech=speech / sr,
                seconds=len(wav) / sr,
                low=MIN_SECONDS,
                high=MAX_SECONDS,
            )
        )
    best: tuple[int, int, int, int] | None = None  # (speech, -first, first, last)
    for i in range(len(phrases)):
        voiced = 0
        for j in range(i, len(phrases)):
            if phrases[j].end - phrases[i].start > hi:
                break
            voiced += phrases[j].end - phrases[j].start
            if phrases[j].end - phrases[i].start >= lo and (best is None or (voiced, -i) > best[:2]):
                best = (voiced, -i, i, j)
    if best is not None:
        i, j = best[2], best[3]
        return phrases[i].start, phrases[j].end, len(phrases), (i, j)
    # One phrase longer than 10 s: cut the first 10 s of it at the quietest 10 ms after 3 s.
    start = phrases[0].start if phrases else 0
    hop = sr // 100
    window = wav[start : start + hi] / peak
    rms = frame_rms(window, 2 * hop, hop)
    first = lo // hop
    cut = first + int(np.argmin(rms[first:])) if len(rms) > first else len(rms)
    return start, min(start + cut * hop, len(wav)), len(phrases), None


def clause_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each clause of ``text``: cut after each run of clause marks, blanks dropped."""
    spans, begin = [], 0
    for mark in _CLAUSE_END.finditer(text):
        spans.append((begin, mark.end()))
        begin = mark.end()
    spans.append((begin, len(text)))
    return [(a, b) for a, b in spans if text[a:b].strip()]


def clauses(text: str) -> list[str]:
    """The clauses of ``text`` (marks kept, surrounding blanks stripped)."""
    return [text[a:b].strip() for a, b in clause_spans(text)]


def matching_prompt(prompt_text: str, clip: ReferenceClip) -> str | None:
    """The part of ``prompt_text`` spoken in the kept span of a trimmed clip, or None if unknown.

    Only when the text has one clause per phrase of the clip can the kept phrases be mapped to
    clauses; any other count means the pauses do not follow the punctuation.
    """
    if not clip.trimmed:
        return prompt_text
    if clip.phrases_kept is None:
        return None
    spans = clause_spans(prompt_text)
    if len(spans) != clip.phrase_count:
        return None
    first, last = clip.phrases_kept
    return prompt_text[spans[first][0] : spans[last][1]].strip()


def load_extra(source: AudioSource) -> tuple[np.ndarray, str]:
    """An extra (timbre-only) reference at 32 kHz and its sha256; any length up to 10 minutes."""
    data, name = read_source(source, "extra reference clip")
    return _load(data, name, SAMPLE_RATE, "extra_references"), sha256_of(data)
