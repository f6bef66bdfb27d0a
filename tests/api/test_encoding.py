"""Output formats: every container decodes back to the samples' length; streamed WAV headers."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import soundfile as sf

from app.api.encoding import FORMATS, PcmStream, available, check_format, encode, wav_stream_header
from app.audio.io import load_audio

RATE = 32000


def _tone(seconds: float = 1.5) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (8000 * np.sin(2 * np.pi * 330 * t)).astype(np.int16)


def test_stream_header_is_open_ended_16_bit_pcm():
    header = wav_stream_header(32000)
    assert len(header) == 44
    riff, riff_size, wave, fmt, fmt_size, tag, ch, rate, byte_rate, block, bits, data, data_size = (
        struct.unpack("<4sI4s4sIHHIIHH4sI", header)
    )
    assert (riff, wave, fmt, data) == (b"RIFF", b"WAVE", b"fmt ", b"data")
    assert riff_size == data_size == 0xFFFFFFFF
    assert (fmt_size, tag, ch, rate, byte_rate, block, bits) == (16, 1, 1, 32000, 64000, 2, 16)
    # libsndfile reads such a stream (it clamps the data size to the file).
    audio = _tone(0.5)
    decoded, sr = sf.read(io.BytesIO(header + audio.tobytes()), dtype="int16")
    assert sr == 32000 and np.array_equal(decoded, audio)


@pytest.mark.parametrize("name", ["wav", "flac"])
def test_lossless_formats_round_trip_exactly(name):
    audio = _tone()
    decoded, sr = sf.read(io.BytesIO(encode(audio, RATE, name)), dtype="int16")
    assert sr == RATE and np.array_equal(decoded, audio)


@pytest.mark.parametrize("name", ["ogg", "opus", "mp3", "aac"])
def test_lossy_formats_decode_to_the_same_length(name):
    if not available(name):
        pytest.fail(f"{name} should be available here (libsndfile with codecs, ffmpeg installed)")
    audio = _tone()
    data = encode(audio, RATE, name)
    decoded = load_audio(data, 16000)
    # Codecs pad a little at the edges; the length must match within 0.1 s.
    assert abs(len(decoded) / 16000 - len(audio) / RATE) < 0.1, (name, len(decoded) / 16000)
    assert np.abs(decoded).max() > 0.1


def test_long_ogg_is_written_in_blocks():
    """~16 s at 32 kHz: the size that overflows libsndfile's stack in one write (GPT-SoVITS#1199)."""
    audio = np.tile(_tone(1.0), 16)
    decoded = load_audio(encode(audio, RATE, "ogg"), RATE)
    assert abs(len(decoded) - len(audio)) < RATE // 10


def test_raw_pcm_and_resampled_stream():
    audio = _tone()
    assert encode(audio, RATE, "raw") == audio.astype("<i2").tobytes()
    whole = np.frombuffer(encode(audio, RATE, "pcm", pcm_rate=24000), dtype="<i2")
    assert abs(len(whole) - len(audio) * 24000 // RATE) <= 1
    stream = PcmStream(RATE, 24000)
    pieces = [
        stream.encode(audio[i : i + 4000], final=i + 4000 >= len(audio)) for i in range(0, len(audio), 4000)
    ]
    streamed = np.frombuffer(b"".join(pieces), dtype="<i2")
    assert abs(len(streamed) - len(whole)) <= 2
    n = min(len(streamed), len(whole))
    assert np.abs(streamed[:n].astype(int) - whole[:n]).max() < 200  # no clicks at chunk seams


def test_format_checks_name_the_field():
    with pytest.raises(ValueError, match="media_type: 'wma' is not supported"):
        check_format("wma", "media_type", ("wav", "raw"))
    assert check_format("wav", "media_type", ("wav",)) is FORMATS["wav"]
    assert FORMATS["wav"].streamable and FORMATS["raw"].streamable and FORMATS["mp3"].streamable
    assert not FORMATS["ogg"].streamable  # no Vorbis encoder in PyAV's build: sent whole
