"""Long-form jobs end to end on tiny models: text, subtitles (dubbing), multi-voice scripts, takes, resume."""

from __future__ import annotations

import itertools
import json
import threading

import numpy as np
import pytest
import soundfile as sf

from app.infer.longform import (
    FitOptions,
    JobOptions,
    JobState,
    JobStopped,
    LineState,
    LongformJob,
    parse_source,
)
from app.infer.longform.state import JobStateError, load

# One SoVITS frame: 640 samples at 32 kHz (the decoder's hop) = 20 ms.
FRAME_S = 640 / 32000


def _job(folder, voices, text, kind, **options):
    script = parse_source(text, kind)
    state = JobState(script.kind, JobOptions(**options), voices, tuple(LineState(ln) for ln in script.lines))
    return LongformJob.create(folder, state)


def _check_cues_match_audio(audio, rate, cues):
    """Each cue starts and ends on speech (within a frame), and between cues there is only silence."""
    frame = round(FRAME_S * rate)
    for cue in cues:
        start, end = round(cue.start * rate), round(cue.end * rate)
        assert np.abs(audio[start : start + frame]).max() > 0, cue
        assert np.abs(audio[max(start, end - frame) : end]).max() > 0, cue
    for before, after in itertools.pairwise(cues):
        gap = audio[round(before.end * rate) + frame : round(after.start * rate) - frame]
        assert not np.any(gap), (before, after)


def test_a_text_job_writes_audio_lines_subtitles_and_timestamps(tmp_path, voices, speaker):
    text = "# One\n\nThe first line. It has two sentences.\n\n# Two\n\nThe last line."
    job = _job(tmp_path / "job", voices[:1], text, "markdown", takes=2, line_pause=0.4, chapter_pause=1.0)
    result = job.run(speaker)
    assert job.state.state == "done" and load(job.folder).state == "done"
    assert len(speaker.calls) == 4 * 2 and len({seed for _, _, seed, _ in speaker.calls}) == 8
    assert len(list((job.folder / "takes").glob("*.wav"))) == 8
    audio, rate = sf.read(result.audio, dtype="int16")
    assert rate == 32000 and abs(len(audio) / rate - result.duration) < 1e-9
    # Cues: one per sentence segment, from the audio written.
    srt = parse_source(result.subtitles_srt.read_text(encoding="utf-8"), "srt").lines
    vtt = parse_source(result.subtitles_vtt.read_text(encoding="utf-8"), "vtt").lines
    assert [c.text for c in srt] == [
        "One",
        "The first line. It has two sentences.",  # cut1: up to four sentences a segment
        "Two",
        "The last line.",
    ]
    assert [(c.start, c.end) for c in srt] == [(c.start, c.end) for c in vtt]
    _check_cues_match_audio(audio, rate, result.cues)
    for cue, parsed in zip(result.cues, srt, strict=True):
        assert abs(cue.start - parsed.start) <= 0.0005 and abs(cue.end - parsed.end) <= 0.0005
    # The pause before a chapter is chapter_pause, between lines line_pause.
    placed = result.placed
    assert placed[1].start - placed[0].end == pytest.approx(0.4, abs=1 / rate)
    assert placed[2].start - placed[1].end == pytest.approx(1.0, abs=1 / rate)
    # Each line's file is its chosen take, and sits in the whole audio where its timestamps say.
    stamps = json.loads(result.timestamps.read_text(encoding="utf-8"))["lines"]
    for entry, path in zip(stamps, result.line_files, strict=True):
        line_audio, _ = sf.read(path, dtype="int16")
        start = round(entry["start"] * rate)
        assert np.array_equal(audio[start : start + len(line_audio)], line_audio)
        assert entry["end"] == pytest.approx(entry["start"] + len(line_audio) / rate, abs=1e-3)


SRT = """1
00:00:00,500 --> 00:00:03,500
Plenty of time here.

2
00:00:04,000 --> 00:00:05,500
A little tight.

3
00:00:06,000 --> 00:00:06,800
This cue is far too short to fit.
"""


def test_dubbing_fits_cues_with_the_model_speed_and_reports_what_cannot_fit(tmp_path, voices, speaker):
    job = _job(tmp_path / "dub", voices[:1], SRT, "srt", dub=True, fit=FitOptions(max_speed=1.5))
    result = job.run(speaker)
    roomy, tight, short = result.fit
    assert roomy.fits and roomy.speed == 1.0
    assert tight.fits and 1.0 < tight.speed <= 1.5 and tight.duration <= 1.5 + 0.02
    assert not short.fits and short.speed == 1.5 and short.overflow > 0
    assert result.unfit == (short,)
    report = json.loads(result.fit_file.read_text(encoding="utf-8"))
    assert report["cues"] == 3 and [u["line"] for u in report["unfit"]] == [2]
    # Same seed for the faster attempts of a line; each line starts at its cue (none is pushed later).
    assert [call[2] for call in speaker.calls].count(speaker.calls[1][2]) >= 2
    assert [p.start for p in result.placed] == pytest.approx([0.5, 4.0, 6.0], abs=1 / 32000)
    audio, rate = sf.read(result.audio, dtype="int16")
    assert len(audio) / rate >= 6.8
    _check_cues_match_audio(audio, rate, result.cues)
    assert [c.text for c in result.cues] == [ln.line.text for ln in job.state.lines]


def _words_inside(words, cues):
    """Every word lies within one cue, in order; returns the words per cue."""
    per_cue = [[w for w in words if c.start - 1e-9 <= w[0] and w[1] <= c.end + 1e-9] for c in cues]
    assert sum(len(p) for p in per_cue) == len(words)
    starts = [w[0] for w in words]
    assert starts == sorted(starts) and all(b > a for a, b, _ in words)
    return per_cue


def test_word_timestamps_lie_inside_their_cues_when_reading_and_dubbing(tmp_path, voices, speaker):
    text = "The quick fox jumps. It runs away!\n\nA second line."
    job = _job(tmp_path / "read", voices[:1], text, "text", word_timestamps=True)
    result = job.run(speaker)
    words = [w for p in result.placed for w in p.words]
    per_cue = _words_inside(words, result.cues)
    assert [[t for _, _, t in cue] for cue in per_cue] == [
        ["The", "quick", "fox", "jumps", "It", "runs", "away"],
        ["A", "second", "line"],
    ]
    # Saved with the take (a resumed job keeps them), in the timestamps and the word subtitles.
    assert load(job.folder).lines[0].takes[0].words == job.state.lines[0].takes[0].words
    stamps = json.loads(result.timestamps.read_text(encoding="utf-8"))["lines"]
    assert [w["text"] for w in stamps[1]["words"]] == ["A", "second", "line"]
    srt = parse_source(result.words_srt.read_text(encoding="utf-8"), "srt").lines
    vtt = parse_source(result.words_vtt.read_text(encoding="utf-8"), "vtt").lines
    assert [c.text for c in srt] == [c.text for c in vtt] == [t for _, _, t in words]
    for cue, (start, end, _) in zip(srt, words, strict=True):
        assert abs(cue.start - start) <= 0.0005 and abs(cue.end - end) <= 0.0005
    assert set(job.outputs()) >= {"words_srt", "words_vtt"}
    dub = _job(tmp_path / "dub", voices[:1], SRT, "srt", dub=True, word_timestamps=True)
    dubbed = dub.run(speaker)
    per_line = _words_inside([w for p in dubbed.placed for w in p.words], dubbed.cues)
    assert [len(p) for p in per_line] == [4, 3, 8]
    plain = _job(tmp_path / "plain", voices[:1], "One line.", "text").run(speaker)
    assert plain.words_srt is None and plain.placed[0].words == ()


def test_a_script_speaks_each_line_with_its_voice(tmp_path, voices, speaker):
    script = "bob|The first voice.\nalice|en|The default one.\nbob|Back to bob."
    state_voices = (voices[0].__class__("alice", voices[0].spec, voices[0].request), voices[1])
    job = _job(tmp_path / "cast", state_voices, script, "script")
    result = job.run(speaker)
    refs = [call[0] for call in speaker.calls]
    assert refs == [str(voices[1].request.reference), str(voices[0].request.reference), refs[0]]
    stamps = json.loads(result.timestamps.read_text(encoding="utf-8"))["lines"]
    assert [s["voice"] for s in stamps] == ["bob", "alice", "bob"]
    with pytest.raises(JobStateError, match="no voice named 'carol'"):
        _job(tmp_path / "bad", state_voices, "carol|Who?", "script")


def test_one_line_is_regenerated_or_edited_alone_and_takes_are_chosen(tmp_path, voices, speaker):
    job = _job(tmp_path / "takes", voices[:1], "Line zero.\n\nLine one.\n\nLine two.", "text", takes=2)
    job.run(speaker)
    files = {p: p.stat().st_mtime_ns for p in (job.folder / "takes").glob("*.wav")}
    speaker.calls.clear()
    result = job.regenerate(speaker, 1)
    assert [call[1] for call in speaker.calls] == ["Line one."]
    assert len(job.state.lines[1].takes) == 3 and job.state.lines[1].chosen == 2
    assert all(p.stat().st_mtime_ns == t for p, t in files.items())  # no other take was made again
    chosen = job.state.lines[1].takes[2]
    assert np.array_equal(
        sf.read(result.line_files[1], dtype="int16")[0], sf.read(job.folder / chosen.file, dtype="int16")[0]
    )
    # Choose another take: the assembled line is that take.
    result = job.choose(1, 0)
    first = job.state.lines[1].takes[0]
    assert np.array_equal(
        sf.read(result.line_files[1], dtype="int16")[0], sf.read(job.folder / first.file, dtype="int16")[0]
    )
    # Edit the line's text: its takes are made anew (two), the others untouched.
    speaker.calls.clear()
    result = job.regenerate(speaker, 2, "An edited   line.")
    assert [call[1] for call in speaker.calls] == ["An edited line."] * 2
    assert result.cues[-1].text == "An edited line." and len(job.state.lines[2].takes) == 2
    assert load(job.folder).lines[2].line.text == "An edited line."
    with pytest.raises(JobStateError, match="take 5 does not exist"):
        job.choose(0, 5)
    with pytest.raises(JobStateError, match="line 9 does not exist"):
        job.regenerate(speaker, 9)


def test_a_stopped_job_resumes_without_making_a_take_twice(tmp_path, voices, speaker):
    job = _job(tmp_path / "resume", voices[:1], "One.\n\nTwo.\n\nThree.", "text")
    stop = threading.Event()
    with pytest.raises(JobStopped):
        job.run(speaker, stop, progress=lambda done, total: stop.set())
    assert load(job.folder).state == "stopped" and load(job.folder).done_lines == 1
    speaker.calls.clear()
    again = LongformJob.open(job.folder)
    result = again.run(speaker)
    assert [call[1] for call in speaker.calls] == ["Two.", "Three."]
    assert len(result.line_files) == 3 and again.state.state == "done"


def test_options_are_checked():
    with pytest.raises(JobStateError, match="takes must be between 1 and 8"):
        JobOptions(takes=0)
    with pytest.raises(JobStateError, match="title"):
        JobOptions(title="a/b")
    with pytest.raises(ValueError, match="max_speed must be between 1 and 4"):
        FitOptions(max_speed=0.5)
