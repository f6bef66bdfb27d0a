"""Incremental encoders: bytes after every chunk (not at the end), decodable, the right length."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from app.api.encoding import encode
from app.api.stream_encoding import AV_FORMATS, stream_encoder

RATE = 32000
CHUNK = RATE // 2  # half a second, about one token chunk of the pipeline


def _speechlike(seconds: float) -> np.ndarray:
    """A warbling tone with an envelope (lossy codecs keep it; silence would compress to nothing)."""
    t = np.arange(int(seconds * RATE)) / RATE
    wav = np.sin(2 * np.pi * (220 + 60 * np.sin(2 * np.pi * 3 * t)) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * t))
    return (9000 * wav).astype(np.int16)


def decode(data: bytes) -> tuple[np.ndarray, int]:
    """All samples (mono float32) and the rate of an encoded stream, through FFmpeg's decoders."""
    with av.open(io.BytesIO(data), "r") as container:
        stream = container.streams.audio[0]
        frames = [f.to_ndarray().reshape(-1) for f in container.decode(stream)]
        rate = stream.codec_context.sample_rate
    audio = np.concatenate(frames) if frames else np.zeros(0, np.float32)
    if audio.dtype == np.int16:  # FLAC decodes to s16
        audio = audio.astype(np.float32) / 32768.0
    return audio, rate


@pytest.mark.parametrize("name", sorted(AV_FORMATS))
def test_every_chunk_gives_bytes_and_the_whole_decodes(name):
    audio = _speechlike(3.0)
    encoder = stream_encoder(name, RATE)
    pieces = []
    for start in range(0, len(audio), CHUNK):
        last = start + CHUNK >= len(audio)
        pieces.append(encoder.encode(audio[start : start + CHUNK], final=last))
    encoder.close()
    # Incremental: the first chunk already gives audio a decoder can play, and so does each next one
    # (an encoder that buffered the file would give b"" until the end).
    assert all(len(p) > 0 for p in pieces), [len(p) for p in pieces]
    first, rate = decode(pieces[0])
    assert rate == encoder.sample_rate
    assert len(first) >= 0.3 * CHUNK * rate / RATE, (name, len(first))
    whole, rate = decode(b"".join(pieces))
    seconds = len(whole) / rate
    assert abs(seconds - len(audio) / RATE) < 0.08, (name, seconds)  # encoder delay/padding only
    assert np.abs(whole).max() > 0.1


def test_opus_is_48k_and_flac_is_lossless():
    audio = _speechlike(1.0)
    opus = stream_encoder("opus", RATE)
    assert opus.sample_rate == 48000
    flac = stream_encoder("flac", RATE)
    data = flac.encode(audio[:10000]) + flac.encode(audio[10000:], final=True)
    decoded, rate = decode(data)
    assert rate == RATE
    np.testing.assert_array_equal(np.round(decoded * 32768).astype(np.int32), audio)


def test_pcm_and_wav_streams_match_the_whole_file_encoder():
    audio = _speechlike(1.0)
    pcm = stream_encoder("pcm", RATE, 24000)
    streamed = pcm.encode(audio[:7000]) + pcm.encode(audio[7000:], final=True)
    assert pcm.sample_rate == 24000
    assert abs(len(streamed) - len(encode(audio, RATE, "pcm", 24000))) <= 4
    wav = stream_encoder("wav", RATE)
    body = wav.encode(audio[:100]) + wav.encode(audio[100:], final=True)
    assert body[:4] == b"RIFF" and body[4:8] == b"\xff\xff\xff\xff" and len(body) == 44 + 2 * len(audio)


def test_closing_an_unfinished_stream_is_quiet_and_final():
    encoder = stream_encoder("mp3", RATE)
    assert encoder.encode(_speechlike(0.5))
    encoder.close()
    encoder.close()
    assert encoder.encode(_speechlike(0.5), final=True) == b""


def test_ogg_vorbis_does_not_stream():
    with pytest.raises(KeyError):
        stream_encoder("ogg", RATE)
