"""SenseVoice and Paraformer-zh through sherpa-onnx: tiny exports in the real format, the real loader, the .list."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf

from app.data.filelist import read_list
from app.data.preprocess.asr_sherpa import PARAFORMER_FOLDER, PUNCT_FOLDER, SENSEVOICE_FOLDER
from app.data.preprocess.transcribe import (
    MissingModelError,
    TranscribeOptions,
    TranscriptionError,
    choose_engine,
    transcribe_folder,
)
from tests.data.preprocess.tiny_models import tiny_ct_punct, tiny_paraformer, tiny_sensevoice

RATE = 16000
LOW, HIGH = 200.0, 3000.0  # Hz: fbank band 0 ("▁hello") and band 5 ("界") of the tiny models


def _tone(freq: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrained")
    tiny_sensevoice(root / SENSEVOICE_FOLDER)
    tiny_paraformer(root / PARAFORMER_FOLDER)
    return root


@pytest.fixture
def clips(tmp_path):
    """``mei/``: low tone, pause, high tone; a high tone alone (at 44.1 kHz); silence; a broken file."""
    folder = tmp_path / "mei"
    folder.mkdir()
    sf.write(
        folder / "01.wav", np.concatenate([_tone(LOW), np.zeros(RATE // 2, np.float32), _tone(HIGH)]), RATE
    )
    t = np.arange(44100) / 44100
    sf.write(folder / "02.flac", (0.3 * np.sin(2 * np.pi * HIGH * t)).astype(np.float32), 44100)
    sf.write(folder / "03.wav", np.zeros(RATE, np.float32), RATE)
    (folder / "04.wav").write_bytes(b"RIFF....WAVEfmt ")
    return folder


@pytest.mark.parametrize(("language", "code"), [("auto", "ZH"), ("ja", "JA"), ("yue", "YUE"), ("ko", "KO")])
def test_sensevoice_writes_what_each_clip_says_with_upstream_codes(
    pretrained, clips, tmp_path, language, code
):
    options = TranscribeOptions(engine="sensevoice", language=language)
    result = transcribe_folder(clips, tmp_path / "asr", pretrained, options)
    assert "SenseVoice" in result.model and result.list_path == tmp_path / "asr" / "mei.list"
    parsed = read_list(result.list_path)
    assert parsed.errors == ()
    # In clip order; the tokens heard follow the tones in time (CTC), "▁" pieces become words.
    assert [(r.wav_path, r.speaker, r.lang, r.text) for r in parsed.rows] == [
        (str(clips / "01.wav"), "mei", code, "hello界"),
        (str(clips / "02.flac"), "mei", code, "界"),
    ]
    reasons = {p.name: why for p, why in result.skipped}
    assert set(reasons) == {"03.wav", "04.wav"}
    assert reasons["03.wav"] == "no speech found" and "not a readable audio file" in reasons["04.wav"]


def test_paraformer_labels_chinese(pretrained, tmp_path):
    folder = tmp_path / "lin"
    folder.mkdir()
    sf.write(folder / "a.wav", _tone(LOW, 2.0), RATE)
    sf.write(folder / "b.wav", _tone(HIGH, 2.0), RATE)
    result = transcribe_folder(
        folder, tmp_path, pretrained, TranscribeOptions(engine="paraformer-zh", language="zh")
    )
    assert (
        "Paraformer" in result.model and f"without punctuation ({PUNCT_FOLDER} not installed)" in result.model
    )
    assert [(r.lang, r.text) for r in read_list(result.list_path).rows] == [("ZH", "hello"), ("ZH", "界")]
    with pytest.raises(TranscriptionError, match=r"understands English only; for 'ja'"):
        transcribe_folder(
            folder, tmp_path, pretrained, TranscribeOptions(engine="paraformer-zh", language="ja")
        )


def test_auto_engine_follows_language_and_installed_models(pretrained, tmp_path):
    assert choose_engine("zh", pretrained) == "paraformer-zh"
    assert choose_engine("yue", pretrained) == "sensevoice"
    assert choose_engine("auto", pretrained) == "sensevoice"
    assert choose_engine("en", pretrained) == "faster-whisper"
    empty = tmp_path / "empty"
    assert {choose_engine(lang, empty) for lang in ("zh", "ja", "auto")} == {"faster-whisper"}
    # Only SenseVoice installed: Chinese goes to it.
    only_sv = tmp_path / "only_sv"
    tiny_sensevoice(only_sv / SENSEVOICE_FOLDER)
    assert choose_engine("zh", only_sv) == "sensevoice"


def test_missing_and_wrong_models_get_clear_errors(tmp_path, clips):
    with pytest.raises(
        MissingModelError, match=rf"(?s){SENSEVOICE_FOLDER}.*download_models.py {SENSEVOICE_FOLDER}"
    ):
        transcribe_folder(clips, tmp_path, tmp_path / "none", TranscribeOptions(engine="sensevoice"))
    # A Paraformer file where SenseVoice is expected: refused by its metadata, not a crash in sherpa-onnx.
    wrong = tmp_path / "wrong"
    tiny_paraformer(wrong)
    with pytest.raises(
        TranscriptionError, match=r"not a sherpa-onnx SenseVoice export .metadata normalize_samples, with_itn"
    ):
        transcribe_folder(clips, tmp_path, tmp_path, TranscribeOptions(engine="sensevoice", model=str(wrong)))
    with pytest.raises(TranscriptionError, match="runs on CPU"):
        transcribe_folder(
            clips,
            tmp_path,
            tmp_path,
            TranscribeOptions(engine="paraformer-zh", model=str(wrong), device="cuda"),
        )
    with pytest.raises(TranscriptionError, match="unknown ASR engine 'funasr'"):
        transcribe_folder(clips, tmp_path, tmp_path, TranscribeOptions(engine="funasr"))


def test_cli_runs_sensevoice(pretrained, clips, tmp_path, capsys):
    from app.data.preprocess.transcribe import main

    code = main(
        [
            str(clips),
            str(tmp_path / "out"),
            "--engine",
            "sensevoice",
            "--language",
            "ko",
            "--pretrained",
            str(pretrained),
        ]
    )
    assert code == 0
    assert [r.lang for r in read_list(tmp_path / "out" / "mei.list").rows] == ["KO", "KO"]
    assert "skipped:" in capsys.readouterr().err


def test_paraformer_text_gets_ct_transformer_punctuation(tmp_path):
    pretrained = tmp_path / "pretrained"
    tiny_paraformer(pretrained / PARAFORMER_FOLDER)
    tiny_ct_punct(pretrained / PUNCT_FOLDER, {"界": "？"})  # "?" after 界, nothing after other tokens
    folder = tmp_path / "lin"
    folder.mkdir()
    sf.write(folder / "a.wav", _tone(LOW, 2.0), RATE)
    sf.write(folder / "b.wav", _tone(HIGH, 2.0), RATE)
    options = TranscribeOptions(engine="paraformer-zh", language="zh")
    result = transcribe_folder(folder, tmp_path, pretrained, options)
    assert result.model.endswith("+ CT-Transformer punctuation")
    # FunASR's rule through sherpa-onnx: a sentence without a final mark gets "。".
    assert [r.text for r in read_list(result.list_path).rows] == ["hello。", "界？"]
    plain = transcribe_folder(folder, tmp_path, pretrained, replace(options, punctuation=False))
    assert [r.text for r in plain.rows] == ["hello", "界"] and plain.model.endswith("without punctuation")
