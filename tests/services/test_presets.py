"""PresetStore: atomic create / list / get / delete under the data root; clips checked before saving."""

from __future__ import annotations

import io
import json
import os
import threading

import numpy as np
import pytest
import soundfile as sf

from app.services.presets import (
    PRESET_FILE,
    ClipUpload,
    PresetError,
    PresetExists,
    PresetNotFound,
    PresetStore,
    VoicePreset,
)


def _clip(seconds: float = 3.0, sr: int = 32000, fmt: str = "WAV", freq: float = 220.0) -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    buffer = io.BytesIO()
    sf.write(buffer, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr, format=fmt)
    return buffer.getvalue()


@pytest.fixture
def store(tmp_path):
    return PresetStore(tmp_path / "presets")


def test_create_get_list_delete_round_trip(store):
    preset = VoicePreset(
        name="narrator", reference="", prompt_text="你好", prompt_language="zh", text_language="zh",
        top_k=5, speed=1.2, split_method="cut1", description="calm",
    )  # fmt: skip
    saved = store.create(preset, ClipUpload(_clip(), "whatever.mp3"), (ClipUpload(_clip(fmt="FLAC")),))
    # Stored under the sniffed format, not the client's file name.
    assert saved.reference == "reference.wav" and saved.extra_references == ("extra-1.flac",)
    assert saved.created
    folder = store.root / "narrator"
    assert json.loads((folder / PRESET_FILE).read_text())["prompt_text"] == "你好"
    assert store.get("narrator") == saved
    assert store.reference_path(saved).read_bytes() == _clip()
    assert [p.name for p in store.extra_paths(saved)] == ["extra-1.flac"]
    assert saved.defaults() == {"top_k": 5, "speed": 1.2, "split_method": "cut1"}
    assert [p.name for p in store.list()] == ["narrator"]
    assert not [p for p in store.root.iterdir() if p.name.startswith(".")]  # no temp folder left
    store.delete("narrator")
    assert store.list() == []
    with pytest.raises(PresetNotFound):
        store.get("narrator")
    with pytest.raises(PresetNotFound):
        store.delete("narrator")


def test_existing_name_is_refused_unless_overwritten(store):
    store.create(VoicePreset("a", "", prompt_text="one"), ClipUpload(_clip()))
    with pytest.raises(PresetExists):
        store.create(VoicePreset("a", "", prompt_text="two"), ClipUpload(_clip()))
    assert store.get("a").prompt_text == "one"
    store.create(VoicePreset("a", "", prompt_text="two"), ClipUpload(_clip(fmt="FLAC")), overwrite=True)
    again = store.get("a")
    assert again.prompt_text == "two" and again.reference == "reference.flac"
    assert sorted(p.name for p in (store.root / "a").iterdir()) == [PRESET_FILE, "reference.flac"]
    assert [p.name for p in store.root.iterdir()] == ["a"]


def test_racing_creators_of_one_name_one_wins(store):
    errors: list[Exception] = []
    barrier = threading.Barrier(4)

    def create(i: int) -> None:
        barrier.wait()
        try:
            store.create(VoicePreset("race", "", prompt_text=str(i)), ClipUpload(_clip()))
        except PresetExists as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 3
    assert store.get("race").prompt_text in {"0", "1", "2", "3"}
    assert [p.name for p in store.root.iterdir()] == ["race"]


def test_racing_overwriters_of_one_name_all_succeed(store, monkeypatch):
    """Overwrites racing for one name (replicas on one volume) take turns instead of failing."""
    clip = ClipUpload(_clip())
    store.create(VoicePreset("race", "", prompt_text="start"), clip)
    real_rename = os.rename

    def slow_rename(src, dst):  # widen the window between "move the old aside" and "move the new in"
        real_rename(src, dst)
        threading.Event().wait(0.001)

    monkeypatch.setattr("app.services.presets.os.rename", slow_rename)
    errors: list[Exception] = []
    barrier = threading.Barrier(6)

    def overwrite(i: int) -> None:
        barrier.wait()
        for n in range(10):
            try:
                store.create(VoicePreset("race", "", prompt_text=f"{i}-{n}"), clip, overwrite=True)
            except Exception as exc:
                errors.append(exc)

    threads = [threading.Thread(target=overwrite, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.get("race").prompt_text in {f"{i}-{n}" for i in range(6) for n in range(10)}
    assert [p.name for p in store.root.iterdir()] == ["race"]
    assert (store.folder("race") / PRESET_FILE).is_file()


@pytest.mark.parametrize("name", ["", " ", "..", ".hidden", "a/b", "a\\b", "c:d", "x" * 65])
def test_bad_names_are_refused(store, name):
    with pytest.raises(PresetError, match="name"):
        store.create(VoicePreset(name, ""), ClipUpload(_clip()))


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "empty"),
        (b"not audio at all" * 10, "not a readable audio"),
        (_clip(seconds=61.0, sr=8000), "longer than"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(40)), "not a readable audio"),
    ],
)
def test_unusable_clips_are_refused_and_nothing_is_written(store, data, match):
    with pytest.raises(PresetError, match=match):
        store.create(VoicePreset("x", ""), ClipUpload(data))
    assert not store.root.exists() or list(store.root.iterdir()) == []


def test_silent_clip_is_refused(store):
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(32000 * 3, np.float32), 32000, format="WAV")
    with pytest.raises(PresetError, match="silent"):
        store.create(VoicePreset("quiet", ""), ClipUpload(buffer.getvalue()))


def test_bad_fields_are_refused(store):
    with pytest.raises(PresetError, match="prompt_language"):
        store.create(VoicePreset("x", "", prompt_language="klingon"), ClipUpload(_clip()))
    with pytest.raises(PresetError, match="split_method"):
        store.create(VoicePreset("x", "", split_method="cut9"), ClipUpload(_clip()))


def test_a_clip_linked_out_of_its_folder_is_refused(store, tmp_path):
    saved = store.create(VoicePreset("linked", ""), ClipUpload(_clip()))
    secret = tmp_path / "secret.wav"
    secret.write_bytes(_clip())
    clip = store.root / "linked" / saved.reference
    clip.unlink()
    os.symlink(secret, clip)
    with pytest.raises(PresetError, match="outside"):
        store.reference_path(store.get("linked"))


def test_damaged_preset_file_is_reported_and_skipped_in_lists(store, caplog):
    store.create(VoicePreset("good", ""), ClipUpload(_clip()))
    bad = store.root / "bad"
    bad.mkdir()
    (bad / PRESET_FILE).write_text('{"name": "bad", "unknown_key": 1}')
    with pytest.raises(PresetError, match="damaged"):
        store.get("bad")
    assert [p.name for p in store.list()] == ["good"]
    assert "skipping preset folder" in caplog.text
