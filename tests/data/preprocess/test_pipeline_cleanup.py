"""The whole chain on one recording: separate (MDX-Net) -> de-reverb -> denoise -> slice -> transcribe (each engine)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from app.audio.denoise import DenoiseOptions
from app.audio.slicer import SlicerOptions
from app.data.filelist import read_list
from app.data.preprocess.asr_sherpa import PARAFORMER_FOLDER, SENSEVOICE_FOLDER
from app.data.preprocess.cleanup import CleanupOptions
from app.data.preprocess.mdx import MDX_MODELS, MDX_RATE, model_path
from app.data.preprocess.pipeline import PipelineOptions, build_dataset
from app.data.preprocess.separate import SeparateOptions
from app.data.preprocess.transcribe import TranscribeOptions
from tests.data.preprocess.tiny_models import tiny_mdx, tiny_paraformer, tiny_sensevoice

VOCALS, DEREVERB = "Kim_Vocal_2.onnx", "onnx_dereverb_By_FoxJoy/vocals.onnx"
SLICER = SlicerOptions(min_length_ms=1000, min_interval_ms=300, max_sil_kept_ms=200)


def _bin(name: str, hz: float) -> int:
    return int(hz / (MDX_RATE / MDX_MODELS[name].n_fft))


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """Tiny models: "vocals" = below 1 kHz, "reverb" = 3-8 kHz, and both ASR exports."""
    root = tmp_path_factory.mktemp("pretrained")
    v, d = MDX_MODELS[VOCALS], MDX_MODELS[DEREVERB]
    tiny_mdx(model_path(VOCALS, root), v.dim_f, v.dim_t, _bin(VOCALS, 1000))
    tiny_mdx(model_path(DEREVERB, root), d.dim_f, d.dim_t, _bin(DEREVERB, 8000), _bin(DEREVERB, 3000))
    tiny_sensevoice(root / SENSEVOICE_FOLDER)
    tiny_paraformer(root / PARAFORMER_FOLDER)
    return root


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    """Three 200 Hz "phrases" over a steady 5 kHz "accompaniment", 44.1 kHz stereo."""
    t = np.arange(int(MDX_RATE * 1.2)) / MDX_RATE
    # Faded in and out over 100 ms: an abrupt start is a broadband click, heard as other tokens.
    envelope = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.1)
    phrase, pause = 0.3 * np.sin(2 * np.pi * 200 * t) * envelope, np.zeros(MDX_RATE)
    voice = np.concatenate([pause, phrase, pause, phrase, pause, phrase, pause])
    backing = 0.1 * np.sin(2 * np.pi * 5000 * np.arange(voice.size) / MDX_RATE)
    path = tmp_path_factory.mktemp("raw") / "song.wav"
    sf.write(path, np.stack([voice + backing, voice + backing], axis=1).astype(np.float32), MDX_RATE)
    return path


@pytest.mark.parametrize(
    ("engine", "language", "code"), [("sensevoice", "ja", "JA"), ("paraformer-zh", "zh", "ZH")]
)
def test_song_to_list_through_every_step(pretrained, song, tmp_path, engine, language, code):
    events = []
    options = PipelineOptions(
        separate=True,
        separation=SeparateOptions(engine="mdx", model=VOCALS, device="cpu"),
        cleanup=CleanupOptions(dereverb=DEREVERB, denoise=DenoiseOptions(), device="cpu"),
        slicer=SLICER,
        transcription=TranscribeOptions(engine=engine, language=language),
    )
    result = build_dataset(song, "aki", tmp_path / "output", pretrained, options, progress=events.append)
    assert list(dict.fromkeys(e.stage for e in events)) == ["separate", "clean", "slice", "transcribe"]
    assert [e.overall for e in events] == sorted(e.overall for e in events)
    root = result.dataset_dir
    assert result.cleaned is not None and result.cleaned.outputs == (
        root / "cleaned" / "denoise" / "song.wav",
    )
    assert [r.step for r in result.cleaned.records] == ["dereverb", "denoise"]
    # The separated vocals lost the 5 kHz accompaniment; the clips were cut from the cleaned file.
    vocals, _ = sf.read(result.separated.files[0].vocals)
    spectrum = np.abs(np.fft.rfft(vocals[:, 0]))
    freqs = np.fft.rfftfreq(vocals.shape[0], 1 / MDX_RATE)
    assert spectrum[np.abs(freqs - 5000) < 20].max() < 1e-3 * spectrum[np.abs(freqs - 200) < 20].max()
    assert [f.source for f in result.sliced.files] == [root / "cleaned" / "denoise" / "song.wav"]
    rows = read_list(result.list_path).rows
    assert result.problems == ()
    assert [(r.speaker, r.lang, r.text) for r in rows] == [("aki", code, "hello")] * 3
    # A second run finds every separated and cleaned file done.
    stamp = result.separated.files[0].vocals.stat().st_mtime_ns
    again = build_dataset(song, "aki", tmp_path / "output", pretrained, options)
    assert again.separated.files == result.separated.files
    assert again.separated.files[0].vocals.stat().st_mtime_ns == stamp
    assert all(r.resumed for r in again.cleaned.records)
    assert read_list(again.list_path).rows == rows


def test_song_through_roformer_gtcrn_and_sensevoice(pretrained, song, tmp_path):
    """The RoFormer engine and the learned denoiser in the same chain (tiny models in their formats)."""
    from app.data.preprocess import gtcrn
    from app.data.preprocess.roformer import model_files
    from tests.data.preprocess.tiny_models import tiny_gtcrn, tiny_roformer

    name = "model_bs_roformer_tiny.ckpt"
    # 256-point STFT at 44.1 kHz: the first band (8 bins) ends at 1.4 kHz, below the 5 kHz backing.
    tiny_roformer(model_files(name, pretrained)[0], keep_bands=1, chunk_size=MDX_RATE, sample_rate=MDX_RATE)
    tiny_gtcrn(gtcrn.model_path(pretrained), keep_below_hz=1000)
    options = PipelineOptions(
        separate=True,
        separation=SeparateOptions(engine="roformer", model=name, device="cpu"),
        cleanup=CleanupOptions(denoise=DenoiseOptions(), denoiser="gtcrn", device="cpu"),
        slicer=SLICER,
        transcription=TranscribeOptions(engine="sensevoice", language="ja"),
    )
    result = build_dataset(song, "aki", tmp_path / "output", pretrained, options)
    vocals, _ = sf.read(result.separated.files[0].vocals)
    spectrum = np.abs(np.fft.rfft(vocals[:, 0]))
    freqs = np.fft.rfftfreq(vocals.shape[0], 1 / MDX_RATE)
    assert spectrum[np.abs(freqs - 5000) < 20].max() < 1e-3 * spectrum[np.abs(freqs - 200) < 20].max()
    assert [r.model.split(":")[0] for r in result.cleaned.records] == ["gtcrn"]
    assert [(r.lang, r.text) for r in read_list(result.list_path).rows] == [("JA", "hello")] * 3
