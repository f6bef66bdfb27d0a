"""The realtime converter: block mechanics (SOLA, cross-fade, delay) and the tiny trained model block by block."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from app.audio.pitch import extract
from app.infer.svc.live import LiveConverter, LiveOptions, convert_stream, fade_windows, geometry, sola_offset
from app.infer.svc.pipeline import SVCPipeline
from app.infer.svc.request import SvcInputError, SvcModelError, SvcRequest
from tests.svc_data import HOP, SR, melody
from tests.synth import silence


class _Identity(LiveConverter):
    """The block mechanics alone: the 'conversion' of a window is the window itself."""

    def __init__(self, options: LiveOptions, sr: int = SR, hop: int = HOP) -> None:  # no model
        self.options = options
        self.geometry = geometry(options, sr, hop)
        from app.infer.svc.live import _StreamResampler

        self.input_rate = self.output_rate = sr
        self._in_rs = self._out_rs = _StreamResampler(sr, sr)
        g = self.geometry
        self._window = np.zeros(g.window, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self._tail = np.zeros(g.crossfade, dtype=np.float32)
        self._fade_in, self._fade_out = fade_windows(g.crossfade)
        self._silence_peak = 0.0
        self._times, self._last, self.blocks = [], 0.0, 0

    def _convert_window(self) -> np.ndarray:
        return self.window_conversion(self._window.copy())

    def window_conversion(self, window: np.ndarray) -> np.ndarray:
        return window


@settings(max_examples=40, deadline=None)
@given(
    block_frames=st.integers(1, 12), crossfade_frames=st.integers(0, 4), search=st.integers(0, 300),
    context_frames=st.integers(0, 6), chunk=st.integers(50, 4000), seed=st.integers(0, 2**16),
)  # fmt: skip
def test_an_identity_conversion_comes_out_as_the_input_delayed_by_the_latency(
    block_frames, crossfade_frames, search, context_frames, chunk, seed
):
    crossfade_frames = min(crossfade_frames, block_frames)
    options = LiveOptions(
        model=None, block_seconds=max(0.05, block_frames * HOP / SR), crossfade_seconds=crossfade_frames * HOP / SR,
        search_seconds=search / SR, context_seconds=context_frames * HOP / SR,
    )  # fmt: skip
    live = _Identity(options)
    g = live.geometry
    x = np.random.default_rng(seed).uniform(-1, 1, 3 * g.block + 777).astype(np.float32)
    y = convert_stream(live, x, chunk)
    delay = g.crossfade + g.search
    assert len(y) >= len(x) + delay
    np.testing.assert_allclose(y[delay : delay + len(x)], x, atol=1e-5)
    np.testing.assert_array_equal(y[:delay], 0)
    assert g.latency_samples == g.block + delay and g.window % HOP == 0


def test_sola_finds_the_offset_where_the_waveforms_meet_in_phase():
    t = np.arange(2000) / SR
    wave = np.sin(2 * np.pi * 220 * t).astype(np.float32)
    for shift in (0, 17, 40, 72):
        assert sola_offset(wave[100:300], wave[100 - shift : 300 + 80 - shift]) == shift
    assert sola_offset(np.zeros(50, np.float32), wave[:100]) == 0


def test_phase_jumps_between_windows_are_aligned_and_cross_faded_without_clicks():
    """Each window's 'conversion' restarts a tone at a random phase (as the NSF decoder's sine
    does): SOLA + the cross-fade keep every seam as smooth as the tone itself."""
    rng = np.random.default_rng(0)

    class Jitter(_Identity):
        def window_conversion(self, window):
            n = np.arange(len(window))
            return (0.5 * np.sin(2 * np.pi * 200 * n / SR + rng.uniform(0, 2 * np.pi))).astype(np.float32)

    live = Jitter(LiveOptions(model=None, block_seconds=0.128, crossfade_seconds=0.032, search_seconds=0.012))
    y = convert_stream(live, np.ones(SR * 2, np.float32) * 0.1)[live.geometry.latency_samples :]
    steady = np.abs(np.diff(y[: -live.geometry.latency_samples]))
    assert steady.max() < 2 * 0.5 * 2 * np.pi * 200 / SR  # never steeper than the tone's own slope x2


@pytest.fixture(scope="module")
def song():
    return np.concatenate(
        [silence(0.3, SR), melody([220, 262, 247, 294, 262], 0.5, seed=5), silence(0.3, SR)]
    )


@pytest.fixture(scope="module")
def pipeline(svc_trained):
    torch.set_num_threads(1)
    return SVCPipeline(svc_trained.pretrained, device="cpu")


def _logmel(wav: np.ndarray) -> np.ndarray:
    import librosa

    mel = librosa.feature.melspectrogram(y=wav, sr=SR, n_fft=512, hop_length=160, n_mels=40, fmax=6000)
    return np.log(mel + 1e-5)


def test_the_trained_model_block_by_block_is_continuous_and_close_to_the_whole_file(
    svc_trained, pipeline, song
):
    options = LiveOptions(
        model=svc_trained.model, speaker="alto", block_seconds=0.256, context_seconds=0.5,
        crossfade_seconds=0.064, search_seconds=0.012, noise_scale=0.0,
    )  # fmt: skip
    live = LiveConverter(pipeline, options)
    g = live.geometry
    y = convert_stream(live, song)
    delay = g.crossfade + g.search
    stream = y[delay : delay + len(song)]
    whole = pipeline.convert(
        SvcRequest(audio=_wav_bytes(song), model=svc_trained.model, speaker="alto", noise_scale=0.0)
    ).audio[: len(song)]
    # Seams: the sample jumps where blocks meet are no bigger than those inside the blocks.
    jumps = np.abs(np.diff(y))
    seams = np.arange(g.block, len(y) - 1, g.block)
    assert jumps[seams - 1].max() <= 1.5 * np.percentile(jumps, 99.9), (jumps[seams - 1].max(), jumps.max())
    # Close to the whole-file conversion: the spectra (SOLA may shift by up to `search`) ...
    voiced = slice(round(0.35 * SR / 160), round((len(song) / SR - 0.35) * SR / 160))
    a, b, src = (_logmel(w)[:, voiced] for w in (stream, whole, song))
    distance = np.mean(np.abs(a - b))  # about 0.06 here; the input itself is 6.7 away
    assert distance < 0.3 and distance < 0.1 * np.mean(np.abs(src - b)), distance
    # ... and the pitch the voice sings.
    f_stream, uv_s = extract(stream, SR, HOP, "pm")
    f_whole, uv_w = extract(whole, SR, HOP, "pm")
    both = (uv_s > 0) & (uv_w > 0)
    assert both.mean() > 0.5
    cents = 1200 * np.abs(np.log2(f_stream[both] / f_whole[both]))
    assert np.median(cents) < 50, np.median(cents)
    assert live.stats.blocks == len(y) // g.block and live.stats.mean_seconds > 0


def test_transpose_and_silence_gate(svc_trained, pipeline, song):
    base = LiveOptions(model=svc_trained.model, block_seconds=0.256, context_seconds=0.5, noise_scale=0.0)
    up = LiveConverter(pipeline, LiveOptions(**{**base.__dict__, "transpose": 12.0}))
    plain = LiveConverter(pipeline, base)
    y_up, y_plain = convert_stream(up, song), convert_stream(plain, song)
    f_up, uv_up = extract(y_up, SR, HOP, "pm")
    f_plain, uv_plain = extract(y_plain, SR, HOP, "pm")
    both = (uv_up > 0) & (uv_plain > 0)
    assert abs(np.median(1200 * np.log2(f_up[both] / f_plain[both])) - 1200) < 100
    quiet = LiveConverter(pipeline, base)
    assert not np.any(convert_stream(quiet, silence(1.0, SR) + 1e-4))  # below -50 dBFS: no model call
    assert quiet.stats.blocks > 0


def test_input_and_output_rates_are_resampled_as_a_stream(svc_trained, pipeline, song):
    import soxr

    options = LiveOptions(model=svc_trained.model, block_seconds=0.256, context_seconds=0.5, noise_scale=0.0)
    live = LiveConverter(pipeline, options, input_rate=48000, output_rate=44100)
    y = convert_stream(live, soxr.resample(song, SR, 48000), chunk=4800)  # a browser's 0.1 s chunks
    expected = (len(song) + live.geometry.latency_samples) * 44100 / SR
    assert abs(len(y) - expected) < 0.3 * 44100
    assert np.abs(y).max() > 0.01


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"block_seconds": 0.01}, r"block length 0.01 s is out of range"),
        ({"crossfade_seconds": 0.6}, r"cross-fade .* must not be longer than the block"),
        ({"context_seconds": -1}, r"context must be >= 0"),
        ({"f0_method": "nope"}, r"unknown f0 method"),
        ({"speaker": "bass"}, r"speaker 'bass' is not in this model"),
        ({"precision": "bf16"}, r"unknown precision"),
    ],
)
def test_bad_options_are_refused_saying_what_to_change(svc_trained, pipeline, change, message):
    options = LiveOptions(**{**LiveOptions(model=svc_trained.model).__dict__, **change})
    with pytest.raises(SvcInputError, match=message):
        LiveConverter(pipeline, options)


def test_a_missing_cluster_model_is_named(svc_trained, pipeline, tmp_path):
    options = LiveOptions(model=svc_trained.model, cluster_ratio=0.5, cluster_model=tmp_path / "none.pt")
    with pytest.raises(SvcModelError, match="needs a cluster model"):
        LiveConverter(pipeline, options)


def test_a_block_of_the_wrong_size_is_refused(svc_trained, pipeline):
    live = LiveConverter(pipeline, LiveOptions(model=svc_trained.model))
    with pytest.raises(SvcInputError, match=r"a block is \d+ samples"):
        live.process_block(np.zeros(10, np.float32))


def _wav_bytes(wav: np.ndarray) -> bytes:
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, wav, SR, format="WAV", subtype="FLOAT")
    return buf.getvalue()
