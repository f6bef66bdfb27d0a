"""Transcription: the real faster-whisper path with a random tiny model, and WER of the bundled tiny.en."""

from __future__ import annotations

import re
import shutil
import time

import numpy as np
import pytest
import soundfile as sf

from app.data.filelist import read_list
from app.data.preprocess.transcribe import (
    BUNDLED_NAME,
    MissingModelError,
    TranscribeOptions,
    TranscriptionError,
    bundled_model_path,
    clean_text,
    keep_segment,
    resolve_whisper_model,
    transcribe_folder,
    whisper_kwargs,
)

# The acceptance bound for the bundled tiny.en on Piper speech.
MAX_WER = 0.15


def test_random_tiny_whisper_through_the_real_path(tiny_whisper, tmp_path):
    folder = tmp_path / "alice"
    folder.mkdir()
    rate = 16000
    t = np.arange(rate * 2) / rate
    rng = np.random.default_rng(0)
    sf.write(
        folder / "a.wav",
        (0.3 * np.sin(2 * np.pi * 200 * t) * (1 + rng.standard_normal(t.size) * 0.1)).astype(np.float32),
        rate,
    )
    sf.write(folder / "b.flac", (0.2 * rng.standard_normal(rate)).astype(np.float32), 44100)
    sf.write(folder / "silent.wav", np.zeros(rate, dtype=np.float32), rate)
    (folder / "broken.wav").write_bytes(b"RIFF....WAVEfmt ")
    (folder / "readme.txt").write_text("not audio")
    seen = []
    result = transcribe_folder(
        folder,
        tmp_path / "asr",
        tmp_path / "pretrained",
        TranscribeOptions(model=str(tiny_whisper), beam_size=1, vad_filter=False),
        progress=lambda f, msg: seen.append((f, msg)),
    )
    assert result.list_path == tmp_path / "asr" / "alice.list"
    assert not result.bundled_model and "faster-whisper-random" in result.model
    # Every clip is either a row or skipped with its reason: nothing lost.
    accounted = {r.wav_path for r in result.rows} | {str(p) for p, _ in result.skipped}
    assert accounted == {str(folder / n) for n in ("a.wav", "b.flac", "silent.wav", "broken.wav")}
    assert any(p.name == "broken.wav" and "not a readable audio file" in why for p, why in result.skipped)
    parsed = read_list(result.list_path)
    assert parsed.errors == () and parsed.rows == result.rows
    for row in parsed.rows:
        assert row.speaker == "alice" and row.lang == "EN" and "|" not in row.text
    assert seen[0][0] == 0.0 and seen[-1][0] == 1.0

    # With the VAD filter a silent clip yields no text and is reported, not listed.
    vad = transcribe_folder(
        folder,
        tmp_path / "asr2",
        tmp_path,
        TranscribeOptions(model=str(tiny_whisper), beam_size=1),
        files=[folder / "silent.wav"],
    )
    assert vad.rows == () and vad.skipped[0][1].startswith("no speech found")


def test_english_only_models_refuse_other_languages(tiny_whisper, tmp_path):
    folder = tmp_path / "bob"
    folder.mkdir()
    sf.write(folder / "a.wav", np.full(16000, 0.1, dtype=np.float32), 16000)
    with pytest.raises(TranscriptionError, match="English only"):
        transcribe_folder(
            folder, tmp_path, tmp_path, TranscribeOptions(model=str(tiny_whisper), language="zh")
        )


def test_model_resolution(tmp_path, tiny_whisper):
    bundled = bundled_model_path()
    assert bundled is not None and (bundled / "model.bin").is_file()
    choice = resolve_whisper_model("default", tmp_path)
    assert choice.bundled and choice.name == BUNDLED_NAME
    assert resolve_whisper_model("tiny.en", tmp_path).bundled
    with pytest.raises(MissingModelError, match=r"download_models.py faster-whisper-large-v3") as err:
        resolve_whisper_model("large-v3", tmp_path)
    assert str(tmp_path / "faster-whisper-large-v3" / "model.bin") in str(err.value)
    with pytest.raises(MissingModelError, match="neither a Whisper size"):
        resolve_whisper_model(str(tmp_path / "nothing"), tmp_path)
    # An installed model wins over the bundled one; the largest installed is the default.
    shutil.copytree(tiny_whisper, tmp_path / "faster-whisper-small")
    shutil.copytree(tiny_whisper, tmp_path / "faster-whisper-base")
    choice = resolve_whisper_model("default", tmp_path)
    assert not choice.bundled and choice.name == "small"
    assert resolve_whisper_model("base", tmp_path).path == tmp_path / "faster-whisper-base"


def test_hallucination_guards_and_options():
    kwargs = whisper_kwargs(TranscribeOptions(beam_size=3), "en")
    assert kwargs["condition_on_previous_text"] is False
    assert kwargs["vad_filter"] is True and kwargs["vad_parameters"]["min_silence_duration_ms"] == 700
    assert kwargs["beam_size"] == 3 and kwargs["language"] == "en"
    assert keep_segment(0.1, 0.6) and not keep_segment(0.9, 0.6)
    assert clean_text("  a |b\n c  ") == "a b c"
    with pytest.raises(TranscriptionError, match="language"):
        TranscribeOptions(language="fr")
    with pytest.raises(TranscriptionError, match="precision"):
        TranscribeOptions(precision="int4")
    with pytest.raises(TranscriptionError, match="float16 needs a GPU"):
        from app.data.preprocess.transcribe import FasterWhisperEngine

        FasterWhisperEngine(
            resolve_whisper_model("default", bundled_model_path()),
            TranscribeOptions(precision="float16", device="cpu"),
        )


def _normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


def test_bundled_tiny_en_labels_piper_speech(piper_clips, tmp_path):
    import jiwer

    folder, truth = piper_clips
    start = time.perf_counter()
    result = transcribe_folder(folder, tmp_path, tmp_path / "no-models", TranscribeOptions(device="cpu"))
    elapsed = time.perf_counter() - start
    assert result.bundled_model and BUNDLED_NAME in result.model
    assert result.skipped == ()
    assert [r.wav_name for r in result.rows] == sorted(truth)
    refs = [_normalise(truth[r.wav_name]) for r in result.rows]
    hyps = [_normalise(r.text) for r in result.rows]
    wer = jiwer.wer(refs, hyps)
    print(f"tiny.en WER on {len(refs)} Piper clips: {wer:.3f} ({elapsed:.1f} s)")
    assert wer <= MAX_WER, list(zip(refs, hyps, strict=True))
    assert all(r.lang == "EN" and r.speaker == "joe" for r in result.rows)


def test_cli(tiny_whisper, tmp_path, capsys):
    from app.data.preprocess.transcribe import main

    folder = tmp_path / "carol"
    folder.mkdir()
    sf.write(folder / "a.wav", np.zeros(16000, dtype=np.float32), 16000)
    code = main(
        [
            str(folder),
            str(tmp_path / "out"),
            "--model",
            str(tiny_whisper),
            "--speaker",
            "dave",
            "--beam-size",
            "1",
        ]
    )
    assert code == 0
    assert (tmp_path / "out" / "dave.list").is_file()
    captured = capsys.readouterr()
    assert "rows written" in captured.out and "skipped:" in captured.err
    assert (
        main([str(folder), str(tmp_path / "out"), "--model", "large-v3", "--pretrained", str(tmp_path)]) == 2
    )
    assert "faster-whisper-large-v3" in capsys.readouterr().err
