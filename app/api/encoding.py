"""Synthesised int16 audio -> the bytes an HTTP client asked for.

- Whole files: wav (16-bit PCM), flac, ogg (Vorbis), opus (Ogg Opus at 48 kHz), mp3 (libsndfile's
  LAME when built in, else ffmpeg), aac (ADTS through ffmpeg), raw / pcm (headerless s16le).
- Streams (:mod:`app.api.stream_encoding` encodes them chunk by chunk; whole files stay as here):
  :func:`wav_stream_header` is ONE RIFF header whose RIFF and data sizes are 0xFFFFFFFF
  ("until the connection ends", what OpenAI's streamed WAV does and players accept), followed by
  plain PCM; upstream's header declares 0 frames and concatenating per-chunk WAVs stops players
  after the first chunk. :class:`PcmStream` turns chunks into s16le at the requested rate.

libsndfile is fed in blocks: one call with ~500k frames overflows its stack when packing Ogg
(GPT-SoVITS#1199, libsndfile#1023).
"""

from __future__ import annotations

import functools
import io
import shutil
import struct
import subprocess
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

WRITE_BLOCK = 65_536  # frames per libsndfile write call
OPUS_RATE = 48_000  # Opus runs at 8/12/16/24/48 kHz only
FFMPEG_TIMEOUT_S = 300


class EncodingError(RuntimeError):
    """The server cannot produce this format (missing codec); the message says which work."""


@dataclass(frozen=True)
class Format:
    """One output format."""

    # Content-Type of the response.
    mime: str
    # True when the bytes can be sent while synthesis runs (app.api.stream_encoding).
    streamable: bool
    # How to produce it: "wav" / "pcm" (built here), "sndfile" (libsndfile), "ffmpeg".
    via: str
    # libsndfile (format, subtype) or ffmpeg output arguments.
    args: tuple[str, ...] = ()


FORMATS: dict[str, Format] = {
    "wav": Format("audio/wav", True, "wav"),
    "raw": Format("audio/pcm", True, "pcm"),
    "pcm": Format("audio/pcm", True, "pcm"),
    "flac": Format("audio/flac", True, "sndfile", ("FLAC", "PCM_16")),
    "ogg": Format("audio/ogg", False, "sndfile", ("OGG", "VORBIS")),
    "opus": Format("audio/ogg; codecs=opus", True, "sndfile", ("OGG", "OPUS")),
    "mp3": Format("audio/mpeg", True, "sndfile", ("MP3", "MPEG_LAYER_III")),
    "aac": Format("audio/aac", True, "ffmpeg", ("-c:a", "aac", "-b:a", "192k", "-f", "adts")),
}
# ffmpeg stand-ins when libsndfile lacks a codec.
FFMPEG_FALLBACK = {"mp3": ("-c:a", "libmp3lame", "-b:a", "192k", "-f", "mp3")}


@functools.lru_cache(maxsize=1)
def _ffmpeg() -> str | None:
    return shutil.which("ffmpeg")


@functools.lru_cache(maxsize=16)
def available(name: str) -> bool:
    """True when this machine can produce format ``name``."""
    fmt = FORMATS.get(name)
    if fmt is None:
        return False
    if fmt.via == "sndfile":
        container, subtype = fmt.args
        if subtype in sf.available_subtypes(container):
            return True
        return name in FFMPEG_FALLBACK and _ffmpeg() is not None
    if fmt.via == "ffmpeg":
        return _ffmpeg() is not None
    return True


def check_format(name: str, field: str, allowed: tuple[str, ...]) -> Format:
    """The :class:`Format` of ``name``; ValueError naming ``field`` when unknown or unavailable here."""
    usable = [n for n in allowed if available(n)]
    if name not in allowed:
        raise ValueError(f"{field}: {name!r} is not supported; use one of {', '.join(usable)}")
    if not available(name):
        raise ValueError(
            f"{field}: {name!r} needs a codec this server lacks (install ffmpeg); use one of {', '.join(usable)}"
        )
    return FORMATS[name]


def wav_stream_header(sample_rate: int, channels: int = 1, bits: int = 16) -> bytes:
    """A 44-byte RIFF/WAVE header of 16-bit PCM with open-ended sizes (0xFFFFFFFF)."""
    block = channels * bits // 8
    return b"".join(
        [
            b"RIFF",
            struct.pack("<I", 0xFFFFFFFF),
            b"WAVE",
            b"fmt ",
            struct.pack("<IHHIIHH", 16, 1, channels, sample_rate, sample_rate * block, block, bits),
            b"data",
            struct.pack("<I", 0xFFFFFFFF),
        ]
    )


def _sndfile(audio: np.ndarray, sample_rate: int, container: str, subtype: str) -> bytes:
    buffer = io.BytesIO()
    with sf.SoundFile(
        buffer, mode="w", samplerate=sample_rate, channels=1, format=container, subtype=subtype
    ) as out:
        for start in range(0, len(audio), WRITE_BLOCK):
            out.write(audio[start : start + WRITE_BLOCK])
    return buffer.getvalue()


def _ffmpeg_encode(audio: np.ndarray, sample_rate: int, args: tuple[str, ...]) -> bytes:
    exe = _ffmpeg()
    if exe is None:
        raise EncodingError("this format needs ffmpeg, which is not installed; ask for wav, flac or ogg")
    cmd = [exe, "-nostdin", "-v", "error", "-f", "s16le", "-ar", str(sample_rate), "-ac", "1",
           "-i", "pipe:0", "-vn", *args, "pipe:1"]  # fmt: skip
    proc = subprocess.run(
        cmd, input=audio.astype("<i2").tobytes(), capture_output=True, timeout=FFMPEG_TIMEOUT_S
    )
    if proc.returncode != 0:
        reason = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise EncodingError(f"ffmpeg could not encode the audio ({reason[-1] if reason else 'no message'})")
    return proc.stdout


def encode(audio: np.ndarray, sample_rate: int, name: str, pcm_rate: int | None = None) -> bytes:
    """The whole of ``audio`` (int16 mono) as format ``name``.

    ``pcm_rate`` resamples raw PCM (OpenAI's ``pcm`` is 24 kHz); other formats keep the model's
    rate except Opus, which is resampled to 48 kHz.
    """
    fmt = FORMATS[name]
    audio = np.asarray(audio, dtype=np.int16)
    if fmt.via == "pcm":
        return PcmStream(sample_rate, pcm_rate or sample_rate).encode(audio, final=True)
    if fmt.via == "wav":
        return _sndfile(audio, sample_rate, "WAV", "PCM_16")
    if name == "opus":
        audio = _resample_int16(audio, sample_rate, OPUS_RATE)
        sample_rate = OPUS_RATE
    if fmt.via == "sndfile":
        container, subtype = fmt.args
        if subtype in sf.available_subtypes(container):
            return _sndfile(audio, sample_rate, container, subtype)
        return _ffmpeg_encode(audio, sample_rate, FFMPEG_FALLBACK[name])
    return _ffmpeg_encode(audio, sample_rate, fmt.args)


def _resample_int16(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    wav = soxr.resample(audio.astype(np.float32) / 32768.0, sr_in, sr_out, quality="HQ")
    return _to_int16(wav)


def _to_int16(wav: np.ndarray) -> np.ndarray:
    return (np.clip(wav, -1.0, 32767 / 32768) * 32768.0).round().astype(np.int16)


class PcmStream:
    """int16 chunks at ``sr_in`` -> s16le bytes at ``sr_out`` (stateful: no clicks between chunks)."""

    def __init__(self, sr_in: int, sr_out: int) -> None:
        self.sr_in, self.sr_out = sr_in, sr_out
        self._resampler = None if sr_in == sr_out else soxr.ResampleStream(sr_in, sr_out, 1, dtype="float32")

    def encode(self, audio: np.ndarray, final: bool = False) -> bytes:
        audio = np.asarray(audio, dtype=np.int16)
        if self._resampler is None:
            return audio.astype("<i2").tobytes()
        out = self._resampler.resample_chunk(audio.astype(np.float32) / 32768.0, last=final)
        return _to_int16(out).astype("<i2").tobytes()
