"""The one audio loader and writer.

``load_audio(source, sr)`` returns float32 mono samples at ``sr`` for a path or raw bytes. WAV, FLAC,
OGG and MP3 go through libsndfile (``soundfile``); anything else (m4a, aac, opus in mp4, video files)
through the ``ffmpeg`` command when it is installed. Every failure raises :class:`AudioError` whose
message names the source and says what was wrong.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from app.fileio import atomic_path
from app.messages import Message

# Sanity limits checked on the header before anything is decoded (a hostile header can claim
# absurd sizes; libsndfile has had overflow bugs in exactly that class).
MAX_CHANNELS = 16
MAX_SAMPLE_RATE = 384_000
MIN_SAMPLE_RATE = 1_000
# Peak below which a clip counts as silent: -80 dBFS.
SILENCE_PEAK = 1e-4
FFMPEG_TIMEOUT_S = 600
# File extensions load_audio reads: containers libsndfile decodes itself (Ogg holds Vorbis or Opus;
# MP3 since libsndfile 1.1), then those that go through ffmpeg. A folder of audio is scanned for
# these; a file named explicitly is always tried, whatever its extension.
SOUNDFILE_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif")
FFMPEG_EXTENSIONS = (".m4a", ".aac", ".wma", ".mp4", ".webm", ".mkv")
AUDIO_EXTENSIONS = SOUNDFILE_EXTENSIONS + FFMPEG_EXTENSIONS

Source = str | os.PathLike | bytes


class AudioError(ValueError):
    """Audio that cannot be used; the message names the source and the problem."""


def _refusal(name: object, detail: Message) -> AudioError:
    """``name: detail``; ``detail`` is kept apart (a caller that names the file its own way uses it alone)."""
    return AudioError(Message("audio.err.named", "{name}: {detail}", name=str(name), detail=detail))


def _too_long(name: str, seconds: float, limit: float) -> AudioError:
    template = "{seconds:.1f} s is longer than the {limit:.0f} s limit"
    return _refusal(name, Message("audio.err.too_long", template, seconds=seconds, limit=limit))


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says (nothing decoded)."""

    sample_rate: int  # Hz
    channels: int
    frames: int  # samples per channel
    format: str  # container name, e.g. "WAV", "FLAC", or "ffmpeg"

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def _name(source: Source) -> str:
    if isinstance(source, bytes):
        return f"<{len(source)} bytes of uploaded audio>"
    return str(source)


def _open(source: Source):
    return io.BytesIO(source) if isinstance(source, bytes) else source


def _check_exists(source: Source) -> None:
    if isinstance(source, bytes):
        if not source:
            raise AudioError(Message("audio.err.empty_upload", "the uploaded audio is empty (0 bytes)"))
        return
    path = Path(source)
    if not path.exists():
        raise _refusal(path, Message("audio.err.not_found", "file not found"))
    if path.is_dir():
        raise _refusal(path, Message("audio.err.folder", "is a folder, not an audio file"))
    if path.stat().st_size == 0:
        raise _refusal(path, Message("audio.err.empty", "file is empty (0 bytes)"))


def _check_header(info: AudioInfo, name: str) -> None:
    if not (MIN_SAMPLE_RATE <= info.sample_rate <= MAX_SAMPLE_RATE):
        template = "sample rate {rate} Hz is outside {low}-{high} Hz"
        fields = {"rate": info.sample_rate, "low": MIN_SAMPLE_RATE, "high": MAX_SAMPLE_RATE}
        raise _refusal(name, Message("audio.err.rate", template, **fields))
    if not (1 <= info.channels <= MAX_CHANNELS):
        template = "{channels} channels is not supported (1-{most})"
        raise _refusal(
            name, Message("audio.err.channels", template, channels=info.channels, most=MAX_CHANNELS)
        )


def audio_info(source: Source) -> AudioInfo:
    """Read the header of ``source`` without decoding the samples."""
    _check_exists(source)
    name = _name(source)
    try:
        info = sf.info(_open(source))
        result = AudioInfo(int(info.samplerate), int(info.channels), int(info.frames), str(info.format))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        probed = _ffprobe(source)
        if probed is None:
            template = "not a readable audio file ({problem})"
            raise _refusal(name, Message("audio.err.unreadable", template, problem=str(exc))) from exc
        result = probed
    _check_header(result, name)
    return result


def _ffmpeg_input(source: str | os.PathLike[str]) -> str:
    """A file as ffmpeg/ffprobe must be told it: ``file:`` + absolute path.

    Without the protocol a name such as ``-x.mp3`` reads as an option and ``concat:a|b.mp3`` or
    ``http:x.mp3`` as another protocol; with it, any file name means that file.
    """
    return "file:" + os.path.abspath(source)


def _ffprobe(source: Source) -> AudioInfo | None:
    """Header through ffprobe, for containers libsndfile does not read; None when unavailable."""
    exe = shutil.which("ffprobe")
    if exe is None or isinstance(source, bytes):
        return None
    cmd = [exe, "-v", "error", "-select_streams", "a:0", "-show_entries",
           "stream=sample_rate,channels,duration:format=duration", "-of", "default=noprint_wrappers=1",
           "-i", _ffmpeg_input(source)]  # fmt: skip
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return None
    pairs = [line.split("=", 1) for line in out.splitlines() if "=" in line]
    fields = dict(pairs)
    # The stream's duration first; Matroska/WebM leave it "N/A" and only the container knows it.
    durations = [_float_or_nan(value) for key, value in pairs if key == "duration"]
    duration = next((d for d in durations if np.isfinite(d)), float("nan"))
    try:
        rate, channels = int(fields["sample_rate"]), int(fields["channels"])
    except (KeyError, ValueError):
        return None
    frames = int(duration * rate) if np.isfinite(duration) else 0
    return AudioInfo(rate, channels, frames, "ffmpeg")


def _float_or_nan(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


def _decode_soundfile(source: Source) -> tuple[np.ndarray, int]:
    data, rate = sf.read(_open(source), dtype="float32", always_2d=True)
    return data, int(rate)


def _decode_ffmpeg(source: Source, sr: int | None) -> tuple[np.ndarray, int]:
    exe = shutil.which("ffmpeg")
    if exe is None:
        template = (
            "this format needs ffmpeg, which is not installed "
            "(Debian/Ubuntu: sudo apt-get install ffmpeg), or convert the file to WAV/FLAC first"
        )
        raise _refusal(_name(source), Message("audio.err.no_ffmpeg", template))
    rate = sr or 44100
    cmd = [exe, "-nostdin", "-v", "error", "-i", "pipe:0" if isinstance(source, bytes) else _ffmpeg_input(source),
           "-f", "f32le", "-acodec", "pcm_f32le", "-ac", "1", "-ar", str(rate), "pipe:1"]  # fmt: skip
    try:
        proc = subprocess.run(
            cmd,
            input=source if isinstance(source, bytes) else None,
            capture_output=True,
            timeout=FFMPEG_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        template = "decoding took longer than {seconds} s"
        raise _refusal(
            _name(source), Message("audio.err.timeout", template, seconds=FFMPEG_TIMEOUT_S)
        ) from exc
    if proc.returncode != 0:
        reason = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        template = "not a readable audio file ({problem})"
        problem = reason[-1] if reason else "ffmpeg failed"
        raise _refusal(_name(source), Message("audio.err.unreadable", template, problem=problem))
    return np.frombuffer(proc.stdout, dtype=np.float32).reshape(-1, 1).copy(), rate


def resample(wav: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample float32 audio (shape ``(T,)`` or ``(T, C)``) with soxr's high-quality filter."""
    if sr_in == sr_out:
        return wav.astype(np.float32, copy=False)
    # "HQ" is the filter librosa calls soxr_hq, its default since 0.10 (what upstream resamples with).
    return soxr.resample(wav, sr_in, sr_out, quality="HQ").astype(np.float32, copy=False)


def load_audio(
    source: Source,
    sr: int,
    *,
    mono: bool = True,
    allow_silent: bool = False,
    max_seconds: float | None = None,
) -> np.ndarray:
    """Decode ``source`` (a path or the bytes of a file) to float32 at ``sr`` Hz.

    Returns shape ``(T,)`` when ``mono`` (channels averaged), else ``(T, C)``.
    Raises :class:`AudioError` for a missing, empty, corrupt or non-audio file, a header outside
    sane limits, a clip longer than ``max_seconds``, NaN/Inf samples, or silence (unless
    ``allow_silent``).
    """
    name = _name(source)
    _check_exists(source)
    try:
        info = sf.info(_open(source))
        header = AudioInfo(int(info.samplerate), int(info.channels), int(info.frames), str(info.format))
    except (sf.LibsndfileError, RuntimeError, TypeError):
        header = None
    if header is not None:
        _check_header(header, name)
        if max_seconds is not None and header.duration > max_seconds:
            raise _too_long(name, header.duration, max_seconds)
        try:
            data, rate = _decode_soundfile(source)
        except (sf.LibsndfileError, RuntimeError) as exc:
            template = "the file is damaged or truncated ({problem})"
            raise _refusal(name, Message("audio.err.damaged", template, problem=str(exc))) from exc
    else:
        data, rate = _decode_ffmpeg(source, sr if mono else None)
        if max_seconds is not None and len(data) / rate > max_seconds:
            raise _too_long(name, len(data) / rate, max_seconds)
    if data.size == 0:
        raise _refusal(name, Message("audio.err.no_samples", "contains no audio samples"))
    if not np.isfinite(data).all():
        template = "contains NaN or infinite sample values; re-export the file"
        raise _refusal(name, Message("audio.err.not_finite", template))
    wav = data.mean(axis=1) if mono else data
    wav = resample(np.ascontiguousarray(wav, dtype=np.float32), rate, sr)
    if not allow_silent and float(np.abs(wav).max(initial=0.0)) < SILENCE_PEAK:
        raise _refusal(name, Message("audio.err.silent", "is silent (peak below -80 dBFS)"))
    return wav


def save_audio(path: str | os.PathLike, wav: np.ndarray, sr: int, *, subtype: str | None = None) -> Path:
    """Write ``wav`` (float in [-1, 1], shape ``(T,)`` or ``(T, C)``) atomically.

    The format follows the extension (wav, flac, ogg, mp3); WAV is 16-bit PCM unless ``subtype``
    says otherwise. Samples are clipped to [-1, 1].
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.clip(np.asarray(wav, dtype=np.float32), -1.0, 1.0)
    if not np.isfinite(data).all():
        raise _refusal(
            path, Message("audio.err.write_not_finite", "refusing to write NaN or infinite samples")
        )
    fmt = path.suffix.lstrip(".").upper() or "WAV"
    if fmt == "WAV" and subtype is None:
        subtype = "PCM_16"
    with atomic_path(path) as tmp:
        sf.write(tmp, data, sr, format=fmt, subtype=subtype)
    return path
