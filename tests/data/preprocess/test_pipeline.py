"""One click from a raw recording to a .list: separate -> slice -> transcribe, progress per stage."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from app.audio.slicer import SlicerOptions
from app.data.filelist import read_list
from app.data.preprocess.pipeline import PipelineError, PipelineOptions, build_dataset
from app.data.preprocess.separate import SEPARATORS, SeparateOptions
from app.data.preprocess.transcribe import TranscribeOptions

# Clips of a second or more: each Piper sentence becomes its own clip.
SLICER = SlicerOptions(min_length_ms=1000, min_interval_ms=300, max_sil_kept_ms=200)


@pytest.fixture(scope="module")
def recording(piper_clips, tmp_path_factory):
    """Three Piper sentences in one 22.05 kHz file, 1 s of silence between them."""
    folder, truth = piper_clips
    names = sorted(truth)[:3]
    pieces = []
    for name in names:
        wav, rate = sf.read(folder / name, dtype="float32")
        pieces += [wav, np.zeros(rate, dtype=np.float32)]
    out = tmp_path_factory.mktemp("raw") / "session.wav"
    sf.write(out, np.concatenate(pieces), rate)
    return out, [truth[n] for n in names]


def _words(text: str) -> set[str]:
    return {w.strip(".,!?").lower() for w in text.split()}


def test_recording_to_list_without_separation(recording, tmp_path):
    path, sentences = recording
    events = []
    result = build_dataset(
        path,
        "narrator",
        tmp_path / "output",
        tmp_path / "pretrained",
        PipelineOptions(slicer=SLICER, transcription=TranscribeOptions(device="cpu")),
        progress=events.append,
    )
    assert result.list_path == tmp_path / "output" / "datasets" / "narrator" / "narrator.list"
    assert result.separated is None and result.problems == ()
    assert len(result.sliced.clips) == 3
    parsed = read_list(result.list_path)
    assert parsed.errors == () and len(parsed.rows) == 3
    for row, sentence in zip(parsed.rows, sentences, strict=True):
        assert row.speaker == "narrator" and row.lang == "EN"
        assert row.wav_path.startswith(str(result.dataset_dir / "clips"))
        # Each clip holds its own sentence (tiny.en may miss a word, not most of them).
        assert len(_words(row.text) & _words(sentence)) >= 0.6 * len(_words(sentence))
    stages = [e.stage for e in events]
    assert stages[0] == "slice" and stages[-1] == "transcribe" and "separate" not in stages
    overall = [e.overall for e in events]
    assert overall == sorted(overall) and overall[-1] == pytest.approx(1.0)


class _KeepVocals:
    """A separator whose "vocals" are the input: a random demucs outputs noise the slicer would drop.

    The real demucs path is covered in test_separate.py; this checks the wiring between stages.
    """

    samplerate = 44100
    channels = 2
    device = "cpu"

    def separate(self, wav, progress=None):
        if progress is not None:
            progress(1.0)
        return {"vocals": wav, "accompaniment": np.zeros_like(wav)}


def test_separation_stage_feeds_the_slicer(recording, tiny_whisper, tmp_path, monkeypatch):
    monkeypatch.setitem(SEPARATORS, "keep-vocals", lambda options, root: _KeepVocals())
    path, _ = recording
    events = []
    result = build_dataset(
        [path],
        "sep",
        tmp_path / "output",
        tmp_path / "pretrained",
        PipelineOptions(
            separate=True,
            separation=SeparateOptions(engine="keep-vocals"),
            slicer=SLICER,
            transcription=TranscribeOptions(model=str(tiny_whisper), beam_size=1, vad_filter=False),
        ),
        progress=events.append,
    )
    assert result.separated is not None
    vocals = result.separated.files[0].vocals
    assert vocals == result.dataset_dir / "separated" / "vocals" / "session.wav"
    assert sf.info(vocals).samplerate == 44100
    # The clips were cut from the separated vocals (same name as the raw file, another folder).
    assert len(result.sliced.clips) == 3
    assert [f.source for f in result.sliced.files] == [vocals]
    assert list(dict.fromkeys(e.stage for e in events)) == ["separate", "slice", "transcribe"]
    overall = [e.overall for e in events]
    assert overall == sorted(overall) and overall[-1] == pytest.approx(1.0)
    # Every clip is in the list or reported: nothing lost (the random Whisper decides which).
    listed = {r.wav_path for r in result.transcribed.rows} | {str(p) for p, _ in result.transcribed.skipped}
    assert listed == {str(c) for c in result.sliced.clips}


def test_a_stage_with_nothing_to_pass_on_stops_the_run(tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    sf.write(folder / "quiet.wav", np.zeros(16000, dtype=np.float32), 16000)
    with pytest.raises(PipelineError, match="slicing produced no clips"):
        build_dataset(folder, "x", tmp_path / "out", tmp_path, PipelineOptions(slicer=SLICER))
    with pytest.raises(ValueError, match="invalid name"):
        build_dataset(folder, "../x", tmp_path / "out", tmp_path)
