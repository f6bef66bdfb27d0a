"""Merging and splitting clips on disk: new files beside the sources, sources untouched."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from app.data.filelist import make_row
from app.data.labeling import EditError, EditHistory
from app.data.preprocess.proofread import AudioPlace, clip_durations, merge_rows, missing_audio, split_row

SR = 16000


def _tone(path, seconds, freq, sr=SR):
    t = np.arange(round(seconds * sr)) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr, subtype="FLOAT")
    return str(path)


@pytest.fixture
def clips(tmp_path):
    rows = (
        make_row(_tone(tmp_path / "a.wav", 1.0, 220), "v", "en", "one"),
        make_row(_tone(tmp_path / "b.wav", 0.5, 440, sr=8000), "v", "en", "two"),
        make_row(_tone(tmp_path / "c.wav", 2.0, 330), "v", "en", "three"),
    )
    return tmp_path, rows


def test_durations_and_missing(clips, tmp_path):
    _, rows = clips
    ghost = make_row(tmp_path / "ghost.wav", "v", "en", "x")
    durations = clip_durations((*rows, ghost))
    assert durations == pytest.approx({rows[0].wav_path: 1.0, rows[1].wav_path: 0.5, rows[2].wav_path: 2.0})
    assert missing_audio((*rows, ghost)) == (3,)


def test_merge_writes_a_new_clip_with_the_gap(clips):
    folder, rows = clips
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    edited = merge_rows(rows, [0, 1], 0.25)
    assert edited.rows[0].wav_path == str(folder / "a_merged.wav")
    assert edited.rows[0].text == "one two"
    assert edited.rows[1:] == rows[2:]
    merged, rate = sf.read(folder / "a_merged.wav")
    # First clip's rate; the 8 kHz clip is resampled, the gap is silent.
    assert rate == SR
    assert len(merged) == pytest.approx(SR * (1.0 + 0.25 + 0.5), abs=2)
    gap = merged[SR + 10 : SR + int(0.25 * SR) - 10]
    assert np.abs(gap).max() < 1e-3
    assert np.abs(merged[: SR - 10]).max() > 0.25
    # Sources untouched.
    assert all((folder / name).read_bytes() == data for name, data in before.items())
    # A second merge of the same first clip gets a fresh name.
    again = merge_rows(rows, [0, 1], 0.0)
    assert again.rows[0].wav_path == str(folder / "a_merged-1.wav")


def test_merge_refuses_missing_audio(clips, tmp_path):
    _, rows = clips
    (tmp_path / "b.wav").unlink()
    with pytest.raises(EditError, match=r"b\.wav not found"):
        merge_rows(rows, [0, 1], 0.1)
    assert not (tmp_path / "a_merged.wav").exists()
    with pytest.raises(EditError, match="not adjacent"):
        merge_rows(rows, [0, 2], 0.1)


def test_split_writes_two_parts_and_undo_restores_rows(clips):
    folder, rows = clips
    history = EditHistory(rows)
    edited = split_row(history.rows, 2, 0.75)
    history = history.apply(edited.rows, "split row 2")
    names = [r.wav_path for r in history.rows]
    assert names[2:] == [str(folder / "c_part1.wav"), str(folder / "c_part2.wav")]
    first, rate = sf.read(folder / "c_part1.wav")
    second, _ = sf.read(folder / "c_part2.wav")
    source, _ = sf.read(folder / "c.wav")
    assert rate == SR and len(first) == int(0.75 * SR) and len(first) + len(second) == len(source)
    np.testing.assert_allclose(np.concatenate([first, second]), source, atol=1e-4)
    assert history.undo().rows == rows
    with pytest.raises(EditError, match="inside the clip"):
        split_row(rows, 2, 2.5)


def test_bare_names_resolve_in_the_audio_folder(clips):
    folder, rows = clips
    bare = tuple(make_row(r.wav_name, r.speaker, r.language, r.text) for r in rows)
    place = AudioPlace(audio_dir=folder)
    edited = split_row(bare, 0, 0.5, place, texts=("o", "ne"))
    assert [r.wav_path for r in edited.rows[:2]] == ["a_part1.wav", "a_part2.wav"]
    assert (folder / "a_part2.wav").is_file()
    relative = AudioPlace(base=folder)
    assert clip_durations(bare, relative)[bare[2].wav_path] == pytest.approx(2.0)
