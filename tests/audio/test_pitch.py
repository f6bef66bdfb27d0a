"""f0 trackers on synthetic sung tones with vibrato, and the shared post-processing maths."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from app.audio import pitch

SR = 44100
HOP = 512
LEAD = 0.25  # s of silence before and after the note


def sung_tone(f0: float, seconds: float = 1.2, sr: int = SR, seed: int = 0) -> np.ndarray:
    """A harmonic tone with 5.5 Hz vibrato of +-0.5 semitone, silence around it, a little noise."""
    t = np.arange(int(sr * seconds)) / sr
    freq = f0 * 2 ** (0.5 * np.sin(2 * np.pi * 5.5 * t) / 12)
    phase = 2 * np.pi * np.cumsum(freq) / sr
    note = 0.3 * np.sin(phase) + 0.12 * np.sin(2 * phase) + 0.05 * np.sin(3 * phase)
    note *= np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.02)  # 20 ms fades
    silence = np.zeros(int(LEAD * sr))
    wav = np.concatenate([silence, note, silence])
    return (wav + np.random.default_rng(seed).normal(0, 0.002, len(wav))).astype(np.float32)


def semitones(a: float, b: float) -> float:
    return abs(12 * np.log2(a / b))


@pytest.mark.parametrize(
    ("method", "truth"),
    [("pm", 220.0), ("dio", 330.0), ("harvest", 180.0), ("crepe-tiny", 440.0), ("fcpe", 262.0)],
)
def test_tracker_finds_the_sung_pitch(method: str, truth: float) -> None:
    wav = sung_tone(truth)
    f0, uv = pitch.extract(wav, SR, HOP, method)
    assert f0.shape == uv.shape == (len(wav) // HOP,)
    assert f0.dtype == np.float32 and uv.dtype == np.float32
    voiced = uv > 0
    assert voiced.mean() > 0.5, f"{method} found too few voiced frames"
    assert semitones(float(np.median(f0[voiced])), truth) < 1.0
    lead = int(LEAD * SR / HOP) - 3
    assert uv[:lead].mean() < 0.2, f"{method} calls the leading silence voiced"
    # unvoiced frames are filled: no zeros left once anything is voiced (4.1 convention)
    assert (f0 > 0).all()


def test_crepe_full_finds_the_sung_pitch() -> None:
    wav = sung_tone(300.0, seconds=0.6)
    f0, uv = pitch.extract(wav, SR, HOP, "crepe")
    assert semitones(float(np.median(f0[uv > 0])), 300.0) < 1.0


def test_other_rates_and_hops_give_len_over_hop_frames() -> None:
    wav = sung_tone(200.0, seconds=0.8, sr=16000)
    f0, uv = pitch.extract(wav, 16000, 160, "pm")
    assert len(f0) == len(wav) // 160
    assert semitones(float(np.median(f0[uv > 0])), 200.0) < 1.0


def test_transpose_and_interpolate_false_keep_zeros() -> None:
    wav = sung_tone(220.0)
    f0, uv = pitch.extract(wav, SR, HOP, "dio", interpolate=False)
    assert (f0[uv == 0] == 0).all() and (f0[uv > 0] > 0).all()
    up = pitch.transpose(f0, 12)
    np.testing.assert_allclose(up, f0 * 2, rtol=1e-6)
    down = pitch.transpose(torch.from_numpy(f0), -5)
    np.testing.assert_allclose(down.numpy(), f0 * 2 ** (-5 / 12), rtol=1e-6)


def test_fill_unvoiced_is_linear_between_voiced_and_flat_at_the_ends() -> None:
    f0 = np.array([0, 0, 100, 0, 0, 0, 200, 0], dtype=np.float64)
    np.testing.assert_allclose(pitch.fill_unvoiced(f0), [100, 100, 100, 125, 150, 175, 200, 200])
    assert (pitch.fill_unvoiced(np.zeros(5)) == 0).all()
    np.testing.assert_allclose(pitch.fill_unvoiced(np.array([0, 50.0, 0])), [50, 50, 50])


def test_median_filter_removes_a_one_frame_octave_jump(monkeypatch: pytest.MonkeyPatch) -> None:
    track = np.full(40, 200.0)
    track[20] = 400.0
    track[:5] = 0.0
    tracker = pitch.Tracker("fake", lambda request: track.copy(), 0.0, "test double")
    monkeypatch.setitem(pitch.TRACKERS, "fake", tracker)
    wav = np.zeros(40 * HOP, dtype=np.float32)
    raw, _ = pitch.extract(wav, SR, HOP, "fake")
    assert raw[20] == 400.0
    filtered, uv = pitch.extract(wav, SR, HOP, "fake", median_filter=3)
    assert filtered[20] == 200.0
    assert uv[:4].sum() == 0 and uv[6:].all()


def reference_coarse(f0: np.ndarray) -> np.ndarray:
    """The coarse-pitch formula written out in float64 (ties are avoided by the inputs)."""
    mel = 1127 * np.log(1 + f0 / 700)
    lo, hi = 1127 * np.log(1 + 50 / 700), 1127 * np.log(1 + 1100 / 700)
    scaled = np.where(mel > 0, (mel - lo) * 254 / (hi - lo) + 1, mel)
    return np.rint(scaled)


def test_coarse_pitch_sovits41_including_the_overflow_quirk() -> None:
    f0 = np.array([0.0, 30.0, 50.0, 120.3, 440.0, 1000.0, 1100.0, 1130.0, 1500.0])
    got = pitch.coarse_pitch(torch.tensor(f0, dtype=torch.float32)).numpy()
    expected = reference_coarse(f0)
    expected[expected < 1] = 1
    expected[expected >= 256] = 0  # upstream zeroes the overflow instead of clamping to 255
    np.testing.assert_array_equal(got, expected)
    assert got[0] == 1 and got[6] == 255 and got[-1] == 0


def test_coarse_pitch_clip_style_clamps_to_255() -> None:
    f0 = torch.tensor([0.0, 30.0, 440.0, 1500.0])
    got = pitch.coarse_pitch(f0, style="clip").tolist()
    assert got[0] == 1 and got[1] == 1 and got[3] == 255
    assert got[2] == int(reference_coarse(np.array([440.0]))[0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "yin"}, "unknown f0 method"),
        ({"wav": np.zeros((2, 4000), np.float32)}, "mono"),
        ({"wav": np.zeros(100, np.float32)}, "shorter than one frame"),
        ({"wav": np.full(4000, np.nan, np.float32)}, "NaN"),
        ({"median_filter": 4}, "odd"),
        ({"f0_min": 500.0, "f0_max": 100.0}, "f0_min < f0_max"),
    ],
)
def test_bad_input_gets_a_clear_message(kwargs: dict, message: str) -> None:
    args = {"wav": np.zeros(8000, np.float32), "sr": 16000, "hop": 160, "method": "pm"}
    args.update(kwargs)
    with pytest.raises(pitch.PitchError, match=message):
        pitch.extract(**args)


def test_pm_on_too_short_audio_says_so() -> None:
    with pytest.raises(pitch.PitchError, match="too short"):
        pitch.extract(np.zeros(400, np.float32), 16000, 160, "pm")


def test_rmvpe_without_weights_names_the_file(tmp_path) -> None:
    missing = tmp_path / "rmvpe.pt"
    with pytest.raises(FileNotFoundError, match=r"rmvpe\.pt.*other f0 method"):
        pitch.extract(sung_tone(220.0, 0.3), SR, HOP, "rmvpe", rmvpe_path=missing)


def test_torchaudio_standin_is_gone_after_import_and_resamples() -> None:
    pitch._import_without_torchaudio("torchfcpe")
    assert "torchaudio" not in sys.modules
    resampler = pitch._Resample(16000, 8000)
    x = torch.sin(torch.arange(1600) * 0.05)[None]
    assert resampler(x).shape == (1, 800)
