"""Incremental encoders: int16 chunks in as they are synthesised, encoded bytes out at once.

Streamed answers (``/tts`` with a streaming mode, ``/v1/audio/speech`` with ``stream`` or
``stream_format``) feed each synthesised chunk to a :class:`StreamEncoder` and send whatever it
returns before the next chunk is made:

- ``wav``: :func:`~app.api.encoding.wav_stream_header` once, then PCM;
- ``raw`` / ``pcm``: s16le, resampled for OpenAI's 24 kHz ``pcm``;
- ``mp3`` (LAME), ``opus`` (Ogg Opus at 48 kHz), ``aac`` (ADTS), ``flac``: PyAV (FFmpeg's
  libraries in this process, no child process per request). The muxer flushes its I/O after every
  packet (``flush_packets``) so nothing waits in a 32 KiB buffer, and Ogg pages are cut every
  :data:`OGG_PAGE_US` (the muxer's default holds a second of audio).

Whole files are still made by :func:`app.api.encoding.encode` (unchanged bytes); a streamed file is
the same format, written as a stream: MP3 without a Xing frame, FLAC whose STREAMINFO says "length
unknown" (total samples 0, as the FLAC format allows for streams; FFmpeg and browsers play it,
libsndfile's whole-file read does not).
"""

from __future__ import annotations

import contextlib
import threading
from typing import Protocol

import av
import numpy as np
import soxr

from app.api.encoding import OPUS_RATE, PcmStream, wav_stream_header

# Ogg page length in microseconds: a page leaves when it holds this much audio (100 ms: the
# stream lags the encoder by at most one page, at ~2 % container overhead on 20 ms Opus packets).
OGG_PAGE_US = 100_000
# Bit rates of the lossy streams (the whole-file ffmpeg fallback of mp3 and aac uses 192k too).
MP3_BIT_RATE = 192_000
AAC_BIT_RATE = 192_000


class StreamEncoder(Protocol):
    """One stream's encoder: ``encode`` each chunk in order, the last with ``final=True``."""

    # Samples per second of the encoded audio (Opus: 48 kHz; OpenAI pcm: 24 kHz).
    sample_rate: int

    def encode(self, audio: np.ndarray, final: bool = False) -> bytes:
        """Bytes ready to send after ``audio`` (int16 mono); ``final`` flushes the encoder."""
        ...

    def close(self) -> None:
        """Free the encoder (the stream ended early or was completed)."""
        ...


class PcmEncoder:
    """Headerless s16le at ``out_rate`` (wav: one open-ended RIFF header first)."""

    def __init__(self, sample_rate: int, out_rate: int | None = None, wav: bool = False) -> None:
        self.sample_rate = out_rate or sample_rate
        self._pcm = PcmStream(sample_rate, self.sample_rate)
        self._header = wav_stream_header(self.sample_rate) if wav else b""

    def encode(self, audio: np.ndarray, final: bool = False) -> bytes:
        header, self._header = self._header, b""
        return header + self._pcm.encode(audio, final=final)

    def close(self) -> None:
        pass


class _Sink:
    """The file PyAV writes to: collects what the muxer hands over until :meth:`take`."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


# Our format name -> (PyAV container, codec, bit rate or None, muxer options).
AV_FORMATS: dict[str, tuple[str, str, int | None, dict[str, str]]] = {
    "mp3": ("mp3", "libmp3lame", MP3_BIT_RATE, {}),
    "opus": ("ogg", "libopus", None, {"page_duration": str(OGG_PAGE_US)}),
    "aac": ("adts", "aac", AAC_BIT_RATE, {}),
    "flac": ("flac", "flac", None, {}),
}


class AvEncoder:
    """A PyAV muxer + encoder writing to memory; each :meth:`encode` returns what it wrote."""

    def __init__(self, name: str, sample_rate: int) -> None:
        container, codec, bit_rate, options = AV_FORMATS[name]
        # Opus encodes at 48 kHz only: resampled here, statefully (no clicks at chunk edges).
        self.sample_rate = OPUS_RATE if name == "opus" else sample_rate
        self._resampler = (
            soxr.ResampleStream(sample_rate, self.sample_rate, 1, dtype="float32")
            if self.sample_rate != sample_rate
            else None
        )
        self._sink = _Sink()
        self._out = av.open(
            self._sink, "w", format=container, container_options={"flush_packets": "1", **options}
        )
        self._stream = self._out.add_stream(codec, rate=self.sample_rate, layout="mono")
        if bit_rate:
            self._stream.bit_rate = bit_rate
        self._pts = 0
        self._closed = False
        # encode() runs on a worker thread; close() may come from the event loop meanwhile.
        self._lock = threading.Lock()

    def _frame(self, audio: np.ndarray) -> av.AudioFrame:
        frame = av.AudioFrame.from_ndarray(audio.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.sample_rate
        frame.pts = self._pts
        self._pts += len(audio)
        return frame

    def _resample(self, audio: np.ndarray, final: bool) -> np.ndarray:
        if self._resampler is None:
            return audio
        out = self._resampler.resample_chunk(audio.astype(np.float32) / 32768.0, last=final)
        return (np.clip(out, -1.0, 32767 / 32768) * 32768.0).round().astype(np.int16)

    def encode(self, audio: np.ndarray, final: bool = False) -> bytes:
        with self._lock:
            if self._closed:
                return b""
            return self._encode(audio, final)

    def _encode(self, audio: np.ndarray, final: bool) -> bytes:
        audio = self._resample(np.ascontiguousarray(audio, dtype=np.int16), final)
        if len(audio):
            for packet in self._stream.encode(self._frame(audio)):
                self._out.mux(packet)
        if final:
            for packet in self._stream.encode(None):  # the encoder's held-back samples
                self._out.mux(packet)
            self._out.close()  # the trailer (Ogg's last page)
            self._closed = True
        return self._sink.take()

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                with contextlib.suppress(Exception):  # an abandoned stream: nothing left to send
                    self._out.close()


def stream_encoder(name: str, sample_rate: int, pcm_rate: int | None = None) -> StreamEncoder:
    """The incremental encoder of format ``name`` for audio at ``sample_rate``.

    ``pcm_rate`` resamples raw PCM (OpenAI's ``pcm`` is 24 kHz); KeyError for a format that
    does not stream (ogg Vorbis: this build has no Vorbis encoder; sent whole).
    """
    if name in ("raw", "pcm"):
        return PcmEncoder(sample_rate, pcm_rate)
    if name == "wav":
        return PcmEncoder(sample_rate, wav=True)
    if name in AV_FORMATS:
        return AvEncoder(name, sample_rate)
    raise KeyError(f"{name} does not stream")
