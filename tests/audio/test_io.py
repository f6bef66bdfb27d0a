"""app.audio.io: decoding every supported container, resampling, and the errors bad input gets."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from app.audio.io import (
    AUDIO_EXTENSIONS,
    SOUNDFILE_EXTENSIONS,
    AudioError,
    audio_info,
    load_audio,
    resample,
    save_audio,
)
from tests.synth import tone

SR = 44_100


@pytest.mark.parametrize(
    ("ext", "subtype"), [("wav", "PCM_16"), ("flac", "PCM_16"), ("ogg", "VORBIS"), ("mp3", "MPEG_LAYER_III")]
)
def test_soundfile_formats_decode_to_float32_mono(tmp_path, ext, subtype):
    stereo = np.stack([tone(1.0, SR, 440), tone(1.0, SR, 440)], axis=1)
    path = tmp_path / f"a.{ext}"
    sf.write(path, stereo, SR, subtype=subtype)
    wav = load_audio(path, 16_000)
    assert wav.dtype == np.float32 and wav.ndim == 1
    # Lossy codecs pad a little; the length must still be ~1 s at the new rate.
    assert abs(len(wav) - 16_000) < 0.06 * 16_000
    assert 0.3 < np.abs(wav).max() <= 1.0
    # The 440 Hz tone survives the trip: its spectrum peaks within a few Hz of 440.
    spec = np.abs(np.fft.rfft(wav[:16_000] * np.hanning(len(wav[:16_000]))))
    assert abs(np.argmax(spec) * 16_000 / len(wav[:16_000]) - 440) < 5


def test_m4a_goes_through_ffmpeg(tmp_path):
    ffmpeg = shutil.which("ffmpeg")
    assert ffmpeg, "ffmpeg is required (apt-get install ffmpeg)"
    src = tmp_path / "src.wav"
    sf.write(src, tone(1.5, SR), SR)
    m4a = tmp_path / "voice.m4a"
    subprocess.run(
        [ffmpeg, "-v", "error", "-y", "-i", str(src), "-c:a", "aac", str(m4a)], check=True, timeout=60
    )
    wav = load_audio(m4a, 32_000)
    assert abs(len(wav) - 48_000) < 0.05 * 48_000
    assert audio_info(m4a).format == "ffmpeg"


@pytest.mark.parametrize("name", ["-leading dash.m4a", "concat:a|b.m4a", 'it\'s "q" $(x); `y` & z.m4a'])
def test_ffmpeg_reads_files_whatever_their_names(tmp_path, monkeypatch, name):
    # A name ffmpeg would take for an option ("-x") or a protocol ("concat:") is still that file.
    ffmpeg = shutil.which("ffmpeg")
    assert ffmpeg, "ffmpeg is required (apt-get install ffmpeg)"
    src = tmp_path / "src.wav"
    sf.write(src, tone(1.0, SR), SR)
    subprocess.run([ffmpeg, "-v", "error", "-y", "-i", str(src), "-c:a", "aac", "-f", "mp4", str(tmp_path / name)],
                   check=True, timeout=60)  # fmt: skip
    monkeypatch.chdir(tmp_path)  # a relative name, as a user might give it
    assert audio_info(name).format == "ffmpeg"
    assert abs(len(load_audio(name, 16_000)) - 16_000) < 0.05 * 16_000


# How a file of each listed extension is made: libsndfile writes its own containers, ffmpeg the rest.
SOUNDFILE_WRITE = {
    ".ogg": ("OGG", "VORBIS"),
    ".opus": ("OGG", "OPUS"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
    ".aif": ("AIFF", "PCM_16"),
}
FFMPEG_CODEC = {
    ".m4a": "aac",
    ".aac": "aac",
    ".wma": "wmav2",
    ".mp4": "aac",
    ".webm": "libopus",
    ".mkv": "libvorbis",
}


@pytest.mark.parametrize("ext", AUDIO_EXTENSIONS)
def test_every_listed_extension_loads_through_its_decoder(tmp_path, ext):
    sr = 48_000  # a rate every codec here accepts (Opus takes no 44.1 kHz)
    path = tmp_path / f"clip{ext}"
    if ext in SOUNDFILE_EXTENSIONS:
        fmt, subtype = SOUNDFILE_WRITE.get(ext, (ext[1:].upper(), "PCM_16"))
        sf.write(path, tone(1.0, sr, 440), sr, format=fmt, subtype=subtype)
    else:
        src = tmp_path / "src.wav"
        sf.write(src, tone(1.0, sr, 440), sr)
        cmd = [
            shutil.which("ffmpeg"),
            "-v",
            "error",
            "-y",
            "-i",
            str(src),
            "-c:a",
            FFMPEG_CODEC[ext],
            str(path),
        ]
        subprocess.run(cmd, check=True, timeout=60)
    try:
        sf.info(path)
        read_by_libsndfile = True
    except sf.LibsndfileError:
        read_by_libsndfile = False
    assert read_by_libsndfile == (ext in SOUNDFILE_EXTENSIONS)
    info = audio_info(path)  # the header alone (Matroska/WebM keep the length in the container)
    assert info.sample_rate == sr and abs(info.duration - 1.0) < 0.1, info
    wav = load_audio(path, 16_000)
    assert abs(len(wav) - 16_000) < 0.1 * 16_000  # codecs pad a little
    spec = np.abs(np.fft.rfft(wav[:16_000] * np.hanning(len(wav[:16_000]))))
    assert abs(np.argmax(spec) * 16_000 / len(wav[:16_000]) - 440) < 5


def test_extension_list_is_lowercase_without_repeats():
    assert len(set(AUDIO_EXTENSIONS)) == len(AUDIO_EXTENSIONS)
    assert all(e.startswith(".") and e == e.lower() for e in AUDIO_EXTENSIONS)


def test_bytes_input_matches_path_input(tmp_path):
    path = tmp_path / "a.flac"
    sf.write(path, tone(0.5, SR), SR)
    from_path = load_audio(path, 22_050)
    from_bytes = load_audio(path.read_bytes(), 22_050)
    np.testing.assert_allclose(from_bytes, from_path)


def test_resampling_gives_the_expected_length():
    x = tone(2.0, SR)
    y = resample(x, SR, 32_000)
    assert y.dtype == np.float32
    assert abs(len(y) - 64_000) <= 1
    assert resample(x, SR, SR) is not None and len(resample(x, SR, SR)) == len(x)


def test_save_then_load_roundtrip(tmp_path):
    x = tone(1.0, 32_000)
    out = save_audio(tmp_path / "sub" / "x.wav", x, 32_000)
    info = sf.info(out)
    assert info.subtype == "PCM_16" and info.samplerate == 32_000
    np.testing.assert_allclose(load_audio(out, 32_000), x, atol=1e-4)
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")], "temporary file left behind"


def test_missing_and_empty_files_are_named(tmp_path):
    with pytest.raises(AudioError, match=r"nope\.wav: file not found"):
        load_audio(tmp_path / "nope.wav", 16_000)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty\.wav: file is empty"):
        load_audio(empty, 16_000)
    with pytest.raises(AudioError, match="empty"):
        load_audio(b"", 16_000)
    with pytest.raises(AudioError, match="is a folder"):
        load_audio(tmp_path, 16_000)


def test_corrupt_and_non_audio_files_are_named(tmp_path):
    good = tmp_path / "good.wav"
    sf.write(good, tone(1.0, SR), SR)
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(good.read_bytes()[:30])
    with pytest.raises(AudioError, match=r"truncated\.wav"):
        load_audio(truncated, 16_000)
    text = tmp_path / "notes.wav"
    text.write_text("these are not samples\n" * 50)
    with pytest.raises(AudioError, match=r"notes\.wav: not a readable audio file"):
        load_audio(text, 16_000)
    with pytest.raises(AudioError, match="bytes of uploaded audio"):
        load_audio(b"\x00\x01garbage" * 100, 16_000)


def test_nan_silent_and_too_many_channels(tmp_path):
    nan = tone(1.0, SR)
    nan[100] = np.nan
    nan_path = tmp_path / "nan.wav"
    sf.write(nan_path, nan, SR, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: contains NaN"):
        load_audio(nan_path, 16_000)
    quiet = tmp_path / "quiet.wav"
    sf.write(quiet, np.zeros(SR, dtype=np.float32), SR)
    with pytest.raises(AudioError, match=r"quiet\.wav: is silent"):
        load_audio(quiet, 16_000)
    assert load_audio(quiet, 16_000, allow_silent=True).shape == (16_000,)
    many = tmp_path / "many.wav"
    sf.write(many, np.tile(tone(0.1, SR)[:, None], (1, 17)), SR)
    with pytest.raises(AudioError, match=r"many\.wav: 17 channels"):
        load_audio(many, 16_000)


def test_max_seconds_is_checked_before_decoding(tmp_path):
    long = tmp_path / "long.wav"
    sf.write(long, tone(3.0, SR), SR)
    with pytest.raises(AudioError, match=r"long\.wav: 3\.0 s is longer than the 2 s limit"):
        load_audio(long, 16_000, max_seconds=2)
