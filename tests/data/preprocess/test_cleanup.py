"""Vocal clean-up: MDX-Net files in UVR's format through the real loader, the spectral gate, order, resume, report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from app.audio.denoise import DenoiseError, DenoiseOptions, denoise
from app.data.preprocess.cleanup import CleanupError, CleanupOptions, clean_files
from app.data.preprocess.mdx import MDX_MODELS, MDX_RATE, MdxError, MdxModel, MissingMdxModel, model_path
from tests.data.preprocess.tiny_models import tiny_mdx

KARAOKE, DEREVERB = "UVR_MDXNET_KARA_2.onnx", "onnx_dereverb_By_FoxJoy/vocals.onnx"


def _tone(freq: float, seconds: float, sr: int = MDX_RATE, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _bins_below(name: str, hz: float) -> int:
    return int(hz / (MDX_RATE / MDX_MODELS[name].n_fft))


def _snr(want: np.ndarray, got: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(want**2) / np.sum((got - want) ** 2)))


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """Every published MDX-Net file, as a tiny network that "predicts" everything below 1 kHz."""
    root = tmp_path_factory.mktemp("pretrained")
    for name, params in MDX_MODELS.items():
        tiny_mdx(model_path(name, root), params.dim_f, params.dim_t, _bins_below(name, 1000))
    return root


@pytest.mark.parametrize("name", list(MDX_MODELS))
def test_mdx_predicts_through_overlapping_chunks(pretrained, name):
    params = MDX_MODELS[name]
    model = MdxModel(name, pretrained)
    # Longer than one chunk (hop * (dim_t - 1) samples), so chunk joins are inside the signal.
    seconds = 1.3 * 1024 * (params.dim_t - 1) / MDX_RATE
    low, high = _tone(200, seconds), _tone(5000, seconds, amp=0.2)
    mix = np.stack([low + high, 0.5 * low + high], axis=1)
    out = model.predict(mix)
    assert out.shape == mix.shape and out.dtype == np.float32
    # What the network passes (below 1 kHz) comes back, scaled by UVR's compensation, nothing else.
    assert _snr(np.stack([low, 0.5 * low], axis=1) * params.compensate, out) > 40


def test_mdx_refuses_missing_unknown_and_malformed_files(pretrained, tmp_path):
    with pytest.raises(
        MissingMdxModel,
        match=r"(?s)Kim_Vocal_2.onnx is not installed.*download_models.py uvr-mdx-kim-vocal-2",
    ):
        MdxModel("Kim_Vocal_2.onnx", tmp_path)
    with pytest.raises(MdxError, match=r"unknown MDX-Net model 'HP5.pth'"):
        MdxModel("HP5.pth", pretrained)
    tiny_mdx(model_path(KARAOKE, tmp_path), 1024, 256, 10)  # KARA_2 takes 2048 bins
    with pytest.raises(MdxError, match=r"input shape .* is not UVR_MDXNET_KARA_2.onnx's \(B, 4, 2048, 256\)"):
        MdxModel(KARAOKE, tmp_path)
    with pytest.raises(MdxError, match="needs stereo"):
        MdxModel(KARAOKE, pretrained).predict(np.zeros((1000, 1), np.float32))


def test_denoise_gates_noise_and_keeps_the_voice():
    sr, rng = 32000, np.random.default_rng(0)
    t = np.arange(sr * 3) / sr
    voiced = (t % 1) < 0.6
    voice = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.15 * np.sin(2 * np.pi * 660 * t)) * voiced
    noisy = (voice + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
    clean = denoise(noisy, sr)
    gaps, inside = (t % 1) > 0.7, ((t % 1) > 0.1) & ((t % 1) < 0.5)

    def level(x):
        return 10 * np.log10(np.mean(x**2))

    assert level(noisy[gaps]) - level(clean[gaps]) > 8  # measured 10 dB
    assert _snr(voice[inside], clean[inside]) > _snr(voice[inside], noisy[inside]) + 5  # measured +9 dB
    stereo = np.stack([noisy, noisy], axis=1)
    assert denoise(stereo, sr).shape == stereo.shape
    np.testing.assert_allclose(denoise(noisy, sr, DenoiseOptions(strength=0.0)), noisy, atol=1e-5)
    with pytest.raises(DenoiseError, match="too short"):
        denoise(noisy[:1000], sr)
    with pytest.raises(DenoiseError, match="between 0 and 1"):
        DenoiseOptions(strength=2.0)


def test_steps_run_in_order_resume_and_report(pretrained, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    sf.write(raw / "a.wav", _tone(200, 2.0, 32000) + _tone(3000, 2.0, 32000, 0.1), 32000)
    sf.write(raw / "b.flac", _tone(300, 1.5), MDX_RATE)
    (raw / "c.wav").write_bytes(b"RIFF....WAVEfmt ")
    files = sorted(raw.iterdir())
    options = CleanupOptions(karaoke=KARAOKE, dereverb=DEREVERB, denoise=DenoiseOptions())
    assert options.steps == ("karaoke", "dereverb", "denoise")
    seen = []
    result = clean_files(files, tmp_path / "cleaned", pretrained, options, lambda f, m: seen.append(m))
    out = tmp_path / "cleaned"
    assert result.outputs == (out / "denoise" / "a.wav", out / "denoise" / "b.wav")
    assert [(r.step, r.source.name) for r in result.records] == [
        ("karaoke", "a.wav"), ("karaoke", "b.flac"), ("dereverb", "a.wav"), ("dereverb", "b.wav"),
        ("denoise", "a.wav"), ("denoise", "b.wav"),
    ]  # fmt: skip
    assert [(p.name, why.split(":")[0]) for p, why in result.failed] == [("c.wav", "karaoke")]
    assert seen[0] == "karaoke: a.wav" and seen[-1] == "cleaned 2 of 3 files"
    # The tiny karaoke model "predicts" everything below 1 kHz as backing: the 200 Hz voice goes,
    # the 3 kHz part stays; nearly all energy was taken out, which the report says per clip.
    karaoke_a = result.records[0]
    assert karaoke_a.figures["removed_db"] > -1.0 and not karaoke_a.resumed
    kept, rate = sf.read(out / "karaoke" / "a.wav")
    assert rate == MDX_RATE and kept.shape == (2 * MDX_RATE, 2)
    report = json.loads(result.report.read_text(encoding="utf-8"))
    assert report["denoise"]["b.wav"]["source"] == str(out / "dereverb" / "b.wav")
    assert report["karaoke"]["a.wav"]["model"] == f"mdx:{KARAOKE}"

    # A rerun keeps every finished output; only the denoise step runs again with other settings.
    stamp = (out / "karaoke" / "a.wav").stat().st_mtime_ns
    again = clean_files(files, out, pretrained, options)
    assert all(r.resumed for r in again.records) and (out / "karaoke" / "a.wav").stat().st_mtime_ns == stamp
    stronger = CleanupOptions(karaoke=KARAOKE, dereverb=DEREVERB, denoise=DenoiseOptions(strength=1.0))
    (out / "dereverb" / "b.wav").write_bytes(b"")  # damaged since: done again
    third = clean_files(files, out, pretrained, stronger)
    assert [(r.step, r.source.name) for r in third.records if not r.resumed] == [
        ("dereverb", "b.wav"), ("denoise", "a.wav"), ("denoise", "b.wav"),
    ]  # fmt: skip


def test_bad_cleanup_options():
    with pytest.raises(CleanupError, match=r"karaoke model 'Kim_Vocal_2.onnx'"):
        CleanupOptions(karaoke="Kim_Vocal_2.onnx")
    with pytest.raises(CleanupError, match="de-reverb model"):
        CleanupOptions(dereverb=KARAOKE)
    assert CleanupOptions().steps == ()


def test_cli_cleans_a_folder(pretrained, tmp_path, capsys):
    from app.data.preprocess.cleanup import main

    raw = tmp_path / "vocals"
    raw.mkdir()
    sf.write(raw / "v.wav", _tone(200, 1.5), MDX_RATE)
    argv = [str(raw), str(tmp_path / "out"), "--pretrained", str(pretrained)]
    assert main([*argv, "--dereverb", DEREVERB, "--denoise"]) == 0
    assert "1 file(s) cleaned (dereverb -> denoise)" in capsys.readouterr().out
    assert (tmp_path / "out" / "denoise" / "v.wav").is_file() and (tmp_path / "out" / "report.json").is_file()
    assert main(argv) == 2
    assert "choose at least one step" in capsys.readouterr().err
