"""GTCRN through sherpa-onnx: tiny exports in the published format, the metadata check, the band join, clean-up."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from app.audio.denoise import DenoiseOptions
from app.data.preprocess.cleanup import CleanupError, CleanupOptions, clean_files, main
from app.data.preprocess.gtcrn import GtcrnDenoiser, GtcrnError, MissingGtcrnModel, check_model, model_path
from tests.data.preprocess.tiny_models import tiny_gtcrn


def _tone(freq: float, seconds: float, sr: int, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _snr(want: np.ndarray, got: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(want**2) / np.sum((got - want) ** 2)))


def _level_at(wav: np.ndarray, sr: int, freq: float) -> float:
    """dB of ``wav``'s spectrum at ``freq`` (one bin of a whole-signal FFT)."""
    spectrum = np.abs(np.fft.rfft(wav))
    return float(20 * np.log10(spectrum[round(freq * wav.size / sr)] + 1e-9))


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """The published file's place holding a tiny export that "keeps" the speech below 1 kHz."""
    root = tmp_path_factory.mktemp("pretrained")
    tiny_gtcrn(model_path(root), keep_below_hz=1000)
    return root


def test_the_network_keeps_its_band_at_its_own_rate(pretrained):
    sr = 16000
    voice, noise = _tone(300, 1.5, sr), _tone(3000, 1.5, sr, amp=0.2)
    model = GtcrnDenoiser(pretrained)
    out = model.denoise(voice + noise, sr, DenoiseOptions(strength=1.0))
    assert out.shape == voice.shape and out.dtype == np.float32
    inner = slice(sr // 10, -sr // 10)  # sherpa-onnx's STFT edges
    assert _snr(voice[inner], out[inner]) > 30
    # strength is the share of what the network takes out that is removed.
    half = model.denoise(voice + noise, sr, DenoiseOptions(strength=0.5))
    assert _snr((voice + 0.5 * noise)[inner], half[inner]) > 30
    np.testing.assert_allclose(model.denoise(voice + noise, sr, DenoiseOptions(strength=0.0)), voice + noise)


def test_higher_rates_join_the_network_band_and_the_gate_band(pretrained):
    """44.1 kHz stereo: below 8 kHz the network's output, above it the gate's; channels apart."""
    sr, seconds = 44100, 2.0
    voice = _tone(300, seconds, sr)
    t = np.arange(voice.size) / sr
    # A high-band sound present 40% of the time: the gate keeps it; a steady 14 kHz whine: it goes.
    burst = _tone(11000, seconds, sr, amp=0.1) * ((t % 1.0) < 0.4)
    whine = _tone(14000, seconds, sr, amp=0.05)
    hum = _tone(3000, seconds, sr, amp=0.2)  # inside the network's band, outside what it keeps
    left = voice + burst + whine + hum
    stereo = np.stack([left, 0.5 * voice], axis=1)
    out = GtcrnDenoiser(pretrained).denoise(stereo, sr, DenoiseOptions(strength=1.0))
    assert out.shape == stereo.shape
    assert _level_at(left, sr, 3000) - _level_at(out[:, 0], sr, 3000) > 30  # the network's doing
    assert _level_at(left, sr, 14000) - _level_at(out[:, 0], sr, 14000) > 15  # the gate's
    assert abs(_level_at(left, sr, 300) - _level_at(out[:, 0], sr, 300)) < 0.5
    assert abs(_level_at(left, sr, 11000) - _level_at(out[:, 0], sr, 11000)) < 3
    inner = slice(sr // 10, -sr // 10)
    assert _snr(0.5 * voice[inner], out[inner, 1]) > 25  # the right channel alone, at its own level


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"inter_cache_shape": None}, r"metadata inter_cache_shape missing"),
        ({"model_type": "dpdfnet"}, r"model_type is 'dpdfnet', not 'gtcrn'"),
        ({"n_fft": 1024}, r"input mix has shape \[1, 257, 1, 2\], the metadata says \[1, 513, 1, 2\]"),
        ({"window_type": "kaiser"}, r"window_type 'kaiser' is not one of"),
        ({"tra_cache_shape": "2,3,x"}, r"tra_cache_shape='2,3,x' is not a list of positive sizes"),
        ({"hop_length": 1024}, r"hop_length <= window_length <= n_fft"),
    ],
)
def test_malformed_exports_are_refused_before_sherpa_onnx_loads_them(tmp_path, metadata, message):
    """sherpa-onnx ends the process on these files: the check must stop them (a crash fails the run)."""
    path = model_path(tmp_path)
    tiny_gtcrn(path, 1000, metadata)
    with pytest.raises(GtcrnError, match=message):
        GtcrnDenoiser(tmp_path)
    path.write_bytes(b"not onnx")
    check_model.cache_clear()
    with pytest.raises(GtcrnError, match="not a loadable ONNX model"):
        GtcrnDenoiser(tmp_path)


def test_missing_model_says_how_to_get_it(tmp_path):
    with pytest.raises(
        MissingGtcrnModel, match=r"(?s)gtcrn_simple.onnx is not installed.*download_models.py gtcrn-simple"
    ):
        GtcrnDenoiser(tmp_path)
    with pytest.raises(CleanupError, match=r"denoiser 'rnnoise': choose one of spectral-gate, gtcrn"):
        CleanupOptions(denoiser="rnnoise")


def test_cleanup_runs_gtcrn_reports_and_reruns_on_another_denoiser(pretrained, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    sf.write(raw / "a.wav", _tone(300, 1.5, 32000) + _tone(3000, 1.5, 32000, 0.2), 32000)
    out = tmp_path / "cleaned"
    gtcrn = CleanupOptions(denoise=DenoiseOptions(strength=1.0), denoiser="gtcrn")
    result = clean_files([raw / "a.wav"], out, pretrained, gtcrn)
    assert result.outputs == (out / "denoise" / "a.wav",) and not result.failed
    kept, rate = sf.read(out / "denoise" / "a.wav")
    assert rate == 32000 and kept.shape == (48000,)
    report = json.loads(result.report.read_text(encoding="utf-8"))["denoise"]["a.wav"]
    assert report["model"] == "gtcrn:gtcrn_simple.onnx strength=1.0 threshold=1.5"
    assert -8 < report["figures"]["removed_db"] < -3  # the 3 kHz part: 0.04 of 0.13 of the energy, -5.1 dB
    assert all(r.resumed for r in clean_files([raw / "a.wav"], out, pretrained, gtcrn).records)
    gate = CleanupOptions(denoise=DenoiseOptions(strength=1.0))
    assert not clean_files([raw / "a.wav"], out, pretrained, gate).records[0].resumed


def test_cli_takes_the_denoiser(pretrained, tmp_path, capsys):
    raw = tmp_path / "vocals"
    raw.mkdir()
    sf.write(raw / "v.wav", _tone(200, 1.0, 16000), 16000)
    argv = [str(raw), str(tmp_path / "out"), "--denoise", "--denoiser", "gtcrn"]
    assert main([*argv, "--pretrained", str(pretrained)]) == 0
    assert "1 file(s) cleaned (denoise)" in capsys.readouterr().out
    assert main([*argv, "--pretrained", str(tmp_path / "empty")]) == 2
    assert "gtcrn_simple.onnx is not installed" in capsys.readouterr().err
