"""app.audio.slicer on generated audio: tone bursts with known silences, and espeak-ng speech."""

from __future__ import annotations

import dataclasses

import librosa
import numpy as np
import pytest

from app.audio.io import load_audio
from app.audio.slicer import (
    Segment,
    SlicerOptions,
    SlicerOptionsError,
    find_segments,
    frame_rms,
    normalize_clip,
    slice_audio,
)
from tests.synth import SENTENCES, silence, tone

SR = 32_000


def bursts(layout: list[tuple[str, float]], sr: int = SR) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Concatenate ("tone"|"sil", seconds) parts; also return the sample span of each tone."""
    parts, spans, pos = [], [], 0
    for kind, secs in layout:
        part = tone(secs, sr) if kind == "tone" else silence(secs, sr)
        if kind == "tone":
            spans.append((pos, pos + len(part)))
        parts.append(part)
        pos += len(part)
    return np.concatenate(parts), spans


def test_defaults_are_upstreams():
    o = SlicerOptions()
    assert (o.threshold_db, o.min_length_ms, o.min_interval_ms, o.hop_ms, o.max_sil_kept_ms) == (
        -34,
        4000,
        300,
        10,
        500,
    )
    assert (o.peak, o.alpha) == (0.9, 0.25)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"min_length_ms": 200}, "min_length >= min_interval >= hop"),
        ({"min_interval_ms": 5}, "min_length >= min_interval >= hop"),
        ({"max_sil_kept_ms": 5}, "max_sil_kept"),
        ({"hop_ms": 0}, "hop size must be positive"),
        ({"peak": 1.5}, "peak"),
        ({"alpha": -0.1}, "alpha"),
        ({"threshold_db": 3.0}, "threshold"),
    ],
)
def test_invalid_options_are_refused_with_a_reason(changes, message):
    with pytest.raises(SlicerOptionsError, match=message):
        dataclasses.replace(SlicerOptions(), **changes)


@pytest.mark.parametrize(("win", "hop"), [(1280, 320), (960, 320), (1281, 441), (40, 10)])
def test_frame_rms_matches_librosa(win, hop):
    y = np.random.default_rng(0).standard_normal(SR).astype(np.float32) * 0.1
    expected = librosa.feature.rms(y=y, frame_length=win, hop_length=hop, center=True, pad_mode="constant")[0]
    np.testing.assert_allclose(frame_rms(y, win, hop), expected, rtol=1e-4, atol=1e-7)


def test_one_clip_per_burst_with_bounded_silence():
    wav, spans = bursts(
        [("sil", 1.5), ("tone", 5), ("sil", 1.2), ("tone", 4.5), ("sil", 0.8), ("tone", 6), ("sil", 2.5)]
    )
    segs = find_segments(wav, SR)
    assert len(segs) == 3
    kept = 0.5 * SR + 0.04 * SR  # max_sil_kept plus half an RMS window of slack
    for seg, (a, b) in zip(segs, spans, strict=True):
        assert seg.start <= a and seg.end >= b, "a clip must contain its whole burst"
        assert a - seg.start <= kept and seg.end - b <= kept, "at most max_sil_kept of silence at each side"
    # Leading and trailing silence (longer than max_sil_kept) are dropped.
    assert segs[0].start > 0.9 * SR and segs[-1].end < len(wav) - 1.9 * SR


def test_short_pieces_join_until_min_length():
    layout = [("tone", 1.0), ("sil", 0.5)] * 9 + [("tone", 1.0)]
    wav, _ = bursts(layout)
    segs = find_segments(wav, SR)
    assert len(segs) >= 2
    for seg in segs[:-1]:
        assert seg.end - seg.start >= 4.0 * SR, "every clip but the last reaches min_length"
    shorter = find_segments(wav, SR, SlicerOptions(min_length_ms=1000))
    assert len(shorter) == 10


def test_pauses_shorter_than_min_interval_do_not_split():
    wav, _ = bursts([("tone", 5), ("sil", 0.2), ("tone", 5)])
    assert len(find_segments(wav, SR)) == 1
    assert len(find_segments(wav, SR, SlicerOptions(min_interval_ms=100))) == 2


def test_threshold_decides_what_counts_as_silence():
    rng = np.random.default_rng(3)
    hiss = (rng.standard_normal(SR) * 0.005).astype(np.float32)  # about -46 dBFS RMS
    wav = np.concatenate([tone(5, SR), hiss, tone(5, SR)])
    assert len(find_segments(wav, SR)) == 2  # -34 dB: the hiss is a pause
    assert len(find_segments(wav, SR, SlicerOptions(threshold_db=-60))) == 1  # -60 dB: the hiss is sound


def test_segments_index_the_source_and_other_rates_agree():
    wav, _ = bursts([("tone", 4.5), ("sil", 1), ("tone", 4.5)])
    pairs = slice_audio(wav, SR)
    assert [s for s, _ in pairs] == find_segments(wav, SR)
    for seg, clip in pairs:
        assert len(clip) == seg.end - seg.start
    at_44k = find_segments(librosa.resample(wav, orig_sr=SR, target_sr=44_100), 44_100)
    secs_32k = [(s.start / SR, s.end / SR) for s in find_segments(wav, SR)]
    secs_44k = [(s.start / 44_100, s.end / 44_100) for s in at_44k]
    np.testing.assert_allclose(secs_44k, secs_32k, atol=0.03)


def test_whole_file_when_there_is_no_pause_and_empty_input():
    wav = tone(3, SR)
    assert find_segments(wav, SR) == [Segment(0, len(wav))]
    assert find_segments(np.zeros(0, dtype=np.float32), SR) == []
    with pytest.raises(ValueError, match=r"shape \(T,\)"):
        find_segments(np.zeros((2, 100), dtype=np.float32), SR)


def test_normalize_clip_mix():
    clip = tone(1, SR, amp=0.2)
    out = normalize_clip(clip, peak=0.9, alpha=0.25)
    # 0.2/0.2 * 0.9 * 0.25 + 0.75 * 0.2 = 0.375
    assert np.isclose(np.abs(out).max(), 0.375, atol=1e-3)
    np.testing.assert_allclose(normalize_clip(clip, 0.9, 0.0), clip)
    loud = tone(1, SR, amp=2.0)
    assert np.abs(normalize_clip(loud, 0.9, 0.25)).max() <= 1.0
    assert np.all(normalize_clip(np.zeros(10, dtype=np.float32)) == 0), "silence must not turn into NaN"


def test_espeak_speech_is_cut_in_pauses(espeak_wav):
    wav = load_audio(espeak_wav, SR)
    segs = find_segments(wav, SR, SlicerOptions(min_length_ms=1000))
    assert len(segs) == len(SENTENCES), f"expected a clip per sentence, got {segs}"
    assert find_segments(wav, SR) == segs, "with the default 4 s minimum the sentences stay apart too"
    rms = frame_rms(wav, 1280, 320)
    loud = rms.max()
    for seg in segs:
        # Every cut point sits somewhere quiet (well below the speech level).
        for edge in (seg.start, seg.end):
            frame = min(edge // 320, len(rms) - 1)
            assert rms[frame] < 0.1 * loud
    # Leading 1 s and trailing 2 s of padding are mostly removed.
    assert segs[0].start > 0.4 * SR and segs[-1].end < len(wav) - 1.4 * SR
    # Speech is never lost: every loud frame falls inside a clip.
    covered = np.zeros(len(wav), dtype=bool)
    for seg in segs:
        covered[seg.start : seg.end] = True
    loud_frames = np.flatnonzero(rms > 0.3 * loud) * 320
    assert covered[np.clip(loud_frames, 0, len(wav) - 1)].all()
