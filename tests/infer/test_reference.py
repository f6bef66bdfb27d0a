"""Reference clips: 3-10 s as is, longer ones trimmed at pauses, unusable ones refused clearly."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from app.infer.reference import (
    HUBERT_RATE,
    SAMPLE_RATE,
    ReferenceAudioError,
    clauses,
    load_clip,
    matching_prompt,
)
from tests.infer.tiny import voice

PAUSES_12S = (2.3, 4.6, 6.9, 9.2)  # five phrases of ~1.9-2.4 s


def _rms(wav: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(wav)))) if len(wav) else 0.0


def test_clip_within_limits_is_used_as_is(tmp_path):
    clip = load_clip(voice(tmp_path / "r.wav", 5.0, pauses=(2.0,)))
    assert not clip.trimmed and clip.start_seconds == 0.0 and clip.end_seconds == pytest.approx(5.0)
    assert len(clip.wav32) == 5 * SAMPLE_RATE and len(clip.wav16) == 5 * HUBERT_RATE
    assert matching_prompt("Anything at all.", clip) == "Anything at all."


def test_long_clip_is_trimmed_to_whole_phrases_between_pauses(tmp_path):
    path = voice(tmp_path / "long.wav", 12.0, pauses=PAUSES_12S)
    clip = load_clip(path)
    assert clip.trimmed and clip.original_seconds == pytest.approx(12.0)
    seconds = len(clip.wav32) / SAMPLE_RATE
    assert 3.0 <= seconds <= 10.0 and seconds > 6.0  # most of the speech kept
    assert abs(len(clip.wav16) / HUBERT_RATE - seconds) < 1e-3
    assert clip.phrase_count == 5 and clip.phrases_kept is not None
    # Both ends fall in a pause (or at the clip's edge), never inside a phrase.
    whole, _ = sf.read(path, dtype="float32")
    loud = _rms(whole)
    for edge in (clip.start_seconds, clip.end_seconds):
        i = round(edge * SAMPLE_RATE)
        if 0 < i < len(whole):
            assert _rms(whole[max(0, i - 320) : i + 320]) < 0.05 * loud, edge
    # The kept samples are the clip's own.
    start = round(clip.start_seconds * SAMPLE_RATE)
    np.testing.assert_allclose(clip.wav32, whole[start : start + len(clip.wav32)], atol=1e-4)


def test_prompt_text_follows_the_kept_phrases_when_clauses_match(tmp_path):
    clip = load_clip(voice(tmp_path / "long.wav", 12.0, pauses=PAUSES_12S))
    text = "One two three, four five six. Seven eight! Nine ten? Eleven twelve."
    assert len(clauses(text)) == 5
    first, last = clip.phrases_kept
    assert matching_prompt(text, clip) == " ".join(clauses(text)[first : last + 1])  # spacing kept
    assert matching_prompt("Only two, clauses.", clip) is None  # counts differ: cannot be matched


def test_one_long_phrase_is_cut_at_its_quietest_point(tmp_path):
    clip = load_clip(voice(tmp_path / "nopause.wav", 12.0))
    assert clip.trimmed and 3.0 <= clip.end_seconds - clip.start_seconds <= 10.0
    assert clip.phrases_kept is None and matching_prompt("Some text.", clip) is None


def _silent(path):
    sf.write(path, np.zeros(5 * SAMPLE_RATE, np.float32), SAMPLE_RATE)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: voice(p, 1.0), r"is 1\.0 s long; a reference must hold 3-10 s"),
        (_silent, "is silent"),
        (
            lambda p: p.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage" * 40),
            "not a readable audio file|damaged",
        ),
        (lambda p: p.write_bytes(b""), "empty"),
    ],
    ids=["1s", "silent", "corrupt", "empty"],
)
def test_unusable_clips_are_refused_with_the_reason(tmp_path, make, message):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(ReferenceAudioError, match=message) as info:
        load_clip(path)
    assert "bad.wav" in str(info.value)


def _seconds(n: float = 4.0, sr: int = SAMPLE_RATE) -> np.ndarray:
    return np.arange(round(n * sr)) / sr


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: np.full(len(_seconds()), 0.5), "no speech: without its DC offset it is silent"),
        (lambda: np.full(len(_seconds(sr=44100)), -0.3), "no speech: without its DC offset it is silent"),
        (lambda: 0.5 * np.sin(2 * np.pi * 440 * _seconds()), "no speech: it is a steady pure tone"),
        (lambda: 0.2 + 0.3 * np.sin(2 * np.pi * 1000 * _seconds()), "no speech: it is a steady pure tone"),
    ],
    ids=["dc", "dc-44k", "tone", "tone-on-dc"],
)
def test_clips_without_speech_after_dc_removal_are_refused(tmp_path, make, message):
    wav = make().astype(np.float32)
    sf.write(tmp_path / "nospeech.wav", wav, 44100 if len(wav) % SAMPLE_RATE else SAMPLE_RATE)
    with pytest.raises(ReferenceAudioError, match=message) as info:
        load_clip(tmp_path / "nospeech.wav")
    assert "nospeech.wav" in str(info.value) and "clear speech" in str(info.value)


def test_clipped_offset_and_over_range_clips_are_used_with_a_warning(tmp_path):
    clean, _ = sf.read(voice(tmp_path / "v.wav", 4.0, pauses=(2.0,)), dtype="float32")
    assert load_clip(tmp_path / "v.wav").warnings == ()
    sf.write(tmp_path / "clipped.wav", np.clip(clean * 6, -1, 1), SAMPLE_RATE, subtype="PCM_16")
    (note,) = load_clip(tmp_path / "clipped.wav").warnings
    assert "is clipped" in note and "% of its samples at full scale" in note
    sf.write(tmp_path / "over.wav", clean * 6, SAMPLE_RATE, subtype="FLOAT")
    (note,) = load_clip(tmp_path / "over.wav").warnings
    assert "over full scale (peak 1.5" in note
    sf.write(tmp_path / "offset.wav", clean + 0.1, SAMPLE_RATE, subtype="FLOAT")
    clip = load_clip(tmp_path / "offset.wav")
    assert clip.warnings == ("The reference clip had a DC offset of +0.100 (of full scale); it was removed.",)
    assert abs(float(clip.wav32.mean())) < 1e-3 and abs(float(clip.wav16.mean())) < 1e-3
    np.testing.assert_allclose(clip.wav32, clean - clean.mean(), atol=2e-3)


def test_long_clip_with_little_speech_is_refused(tmp_path):
    wav = np.zeros(12 * SAMPLE_RATE, np.float32)
    wav[SAMPLE_RATE : 3 * SAMPLE_RATE] = sf.read(voice(tmp_path / "v.wav", 2.0), dtype="float32")[0]
    sf.write(tmp_path / "sparse.wav", wav, SAMPLE_RATE)
    with pytest.raises(ReferenceAudioError, match=r"holds only 2\.\d s of speech in 12\.0 s"):
        load_clip(tmp_path / "sparse.wav")


def test_uploaded_bytes_and_missing_files(tmp_path):
    data = voice(tmp_path / "r.wav", 4.0).read_bytes()
    clip = load_clip(data)
    assert not clip.trimmed and clip.sha256 == load_clip(tmp_path / "r.wav").sha256
    with pytest.raises(ReferenceAudioError, match=r"nothing\.wav: reference clip not found"):
        load_clip(tmp_path / "nothing.wav")
    with pytest.raises(ReferenceAudioError, match="uploaded reference clip is empty"):
        load_clip(b"")
