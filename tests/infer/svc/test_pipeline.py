"""Converting with the tiny model trained from scratch: transposition, long songs, errors, options, CLI."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
import tracemalloc

import numpy as np
import psutil
import pytest
import soundfile as sf
import torch

from app.audio.pitch import extract
from app.data.preprocess.svc.cluster import train_clusters
from app.infer.svc.pipeline import SVCPipeline
from app.infer.svc.request import SvcInputError, SvcModelError, SvcRequest
from app.models.svc.synthesizer import SvcSynthesizer
from app.models.upstream.svc.features import read_cluster
from app.paths import SvcExperiment
from tests.svc_data import SR, melody, sung
from tests.synth import silence

# A phrase whose median pitch is firmly one note (247 Hz, B3) inside the alto's trained range.
PHRASE = [247, 247, 262, 247, 220, 247, 247]


@pytest.fixture(scope="module")
def single_thread():
    """One torch thread: the 2 shared CPU cores of this machine thrash with more."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def pipeline(svc_trained, single_thread) -> SVCPipeline:
    return SVCPipeline(svc_trained.pretrained, device="cpu")


@pytest.fixture(scope="module")
def phrase(tmp_path_factory):
    path = tmp_path_factory.mktemp("songs") / "phrase.flac"
    sf.write(
        path, np.concatenate([silence(0.3, SR), melody(PHRASE, note_s=0.5, seed=7), silence(0.3, SR)]), SR
    )
    return path


def median_f0(audio: np.ndarray) -> float:
    f0, uv = extract(audio, SR, 160, "pm")
    assert uv.mean() > 0.5, "the converted audio should be mostly voiced"
    return float(np.median(f0[uv > 0]))


def test_transposition_moves_the_output_pitch_by_the_interval(svc_trained, pipeline, phrase) -> None:
    request = SvcRequest(audio=phrase, model=svc_trained.model, speaker="alto")
    base = pipeline.convert(request)
    assert base.sample_rate == SR and base.slices == 1 and base.speaker == "alto"
    reference = median_f0(base.audio)
    assert abs(12 * np.log2(reference / 247.0)) < 1.0  # the output sings the input's melody
    for shift in (12, -5):
        out = pipeline.convert(
            SvcRequest(audio=phrase, model=svc_trained.model, speaker="alto", transpose=shift)
        )
        interval = 12 * np.log2(median_f0(out.audio) / reference)
        assert abs(interval - shift) <= 1.0, f"transpose {shift:+d}: measured {interval:+.2f} semitones"


def test_long_song_is_converted_in_bounded_slices(svc_trained, pipeline, tmp_path, monkeypatch) -> None:
    notes = [247, 262, 294, 262, 247, 220, 247, 262]
    song = np.concatenate([melody(notes, note_s=0.5, seed=i) for i in range(17)])  # 68 s, no pause
    assert len(song) / SR > 60
    path = tmp_path / "long.wav"
    sf.write(path, song, SR)
    frames: list[int] = []
    real_infer = SvcSynthesizer.infer

    def spy(self, c, f0, *args, **kwargs):  # type: ignore[no-untyped-def]
        frames.append(c.shape[-1])
        return real_infer(self, c, f0, *args, **kwargs)

    monkeypatch.setattr(SvcSynthesizer, "infer", spy)
    process = psutil.Process()
    peak = [process.memory_info().rss]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.02)

    watcher = threading.Thread(target=sample)
    start_rss = process.memory_info().rss
    tracemalloc.start()
    watcher.start()
    try:
        result = pipeline.convert(
            SvcRequest(
                audio=path,
                model=svc_trained.model,
                speaker="alto",
                max_slice_seconds=8,
                crossfade_seconds=0.2,
            )
        )
        _, traced_peak = tracemalloc.get_traced_memory()
    finally:
        done.set()
        watcher.join()
        tracemalloc.stop()
    # 68 s in pieces of <= 8 s that overlap by 0.2 s: ceil((68 - 8) / 7.8) + 1 = 9 model calls.
    assert result.slices == len(frames) == 9
    assert max(frames) <= (8 + 2 * 0.5) * SR / 128 + 1 and result.longest_piece_seconds <= 9.0
    assert len(result.audio) == len(song)
    # No gap at the seams: every 0.1 s of the output has sound.
    windows = result.audio[: len(song) // 1600 * 1600].reshape(-1, 1600)
    assert np.abs(windows).max(axis=1).min() > 0.01
    assert traced_peak < 64 * 2**20  # numpy work stays near the song's own 4 MB
    assert peak[0] - start_rss < 400 * 2**20


def test_silent_and_pitchless_inputs_are_refused_clearly(svc_trained, pipeline, tmp_path) -> None:
    quiet = tmp_path / "quiet.wav"
    sf.write(quiet, silence(3.0, SR), SR)
    with pytest.raises(SvcInputError, match="silent"):
        pipeline.convert(SvcRequest(audio=quiet, model=svc_trained.model))
    noise = tmp_path / "noise.wav"
    sf.write(noise, (np.random.default_rng(0).standard_normal(3 * SR) * 0.3).astype(np.float32), SR)
    with pytest.raises(SvcInputError, match="no pitch found"):
        pipeline.convert(SvcRequest(audio=noise, model=svc_trained.model))


def test_out_of_range_pitch_names_the_trained_range_and_a_transpose(
    svc_trained, pipeline, phrase, tmp_path
) -> None:
    with pytest.raises(SvcInputError) as caught:
        pipeline.convert(SvcRequest(audio=phrase, model=svc_trained.model, speaker="tenor", transpose=12))
    message = str(caught.value)
    assert "speaker 'tenor' was trained on median" in message and "Hz" in message
    assert "transpose by about -" in message  # 494 Hz sung into a ~160 Hz voice: go down
    ok = pipeline.convert(
        SvcRequest(audio=phrase, model=svc_trained.model, speaker="tenor", transpose=12, check_range=False)
    )
    assert ok.warnings and "trained on" in ok.warnings[0]
    high = tmp_path / "high.wav"
    sf.write(high, melody([700, 750, 700], note_s=0.6), SR)
    with pytest.raises(SvcInputError, match=r"above 1100 Hz.*at most"):
        pipeline.convert(SvcRequest(audio=high, model=svc_trained.model, transpose=12, check_range=False))


def test_speaker_choice_mix_and_unknown_names(svc_trained, pipeline, phrase) -> None:
    model = svc_trained.model

    def run(**kw):  # type: ignore[no-untyped-def]
        return pipeline.convert(SvcRequest(audio=phrase, model=model, check_range=False, **kw)).audio

    alto, tenor = run(speaker="alto"), run(speaker="tenor")
    assert not np.allclose(alto, tenor)
    np.testing.assert_allclose(run(mix=(("alto", 2.0),)), alto, atol=1e-5)  # weights are normalised
    blend = run(mix=(("alto", 1.0), ("tenor", 1.0)))
    assert not np.allclose(blend, alto) and not np.allclose(blend, tenor)
    with pytest.raises(SvcInputError, match="it has alto, tenor"):
        run(speaker="soprano")


def test_cluster_ratio_needs_the_cluster_model_and_pulls_the_content(
    svc_trained, pipeline, phrase, tmp_path, monkeypatch
) -> None:
    request = SvcRequest(
        audio=phrase,
        model=svc_trained.model,
        speaker="alto",
        cluster_ratio=0.8,
        cluster_model=tmp_path / "none.pt",
    )
    with pytest.raises(SvcModelError, match=r"app\.data\.preprocess\.svc\.cluster"):
        pipeline.convert(request)
    tree = SvcExperiment(tmp_path / "exp")
    shutil.copytree(svc_trained.experiment.dataset, tree.dataset)
    cluster = train_clusters(tree, n_clusters=8)
    centers = torch.from_numpy(read_cluster(cluster)["alto"])
    seen: list[torch.Tensor] = []
    real_infer = SvcSynthesizer.infer

    def spy(self, c, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(c[0].clone())
        return real_infer(self, c, *args, **kwargs)

    monkeypatch.setattr(SvcSynthesizer, "infer", spy)
    plain = pipeline.convert(SvcRequest(audio=phrase, model=svc_trained.model, speaker="alto")).audio
    pulled = pipeline.convert(
        SvcRequest(
            audio=phrase, model=svc_trained.model, speaker="alto", cluster_ratio=0.8, cluster_model=cluster
        )
    ).audio
    assert np.isfinite(pulled).all() and not np.array_equal(plain, pulled)

    def distance_to_centres(c: torch.Tensor) -> float:
        return float(torch.cdist(c.T, centers).min(dim=1).values.mean())

    # 80 % of the way to the nearest centre: a fifth of the distance is left.
    assert distance_to_centres(seen[1]) == pytest.approx(0.2 * distance_to_centres(seen[0]), rel=0.05)


def test_loudness_mix_follows_the_input_envelope(svc_trained, pipeline, tmp_path) -> None:
    song = np.concatenate([sung(2.0, 247, amp=0.8), sung(2.0, 247, amp=0.08, seed=1)])
    path = tmp_path / "fade.wav"
    sf.write(path, song, SR)

    def level_ratio(audio: np.ndarray) -> float:
        return float(
            np.sqrt(
                np.mean(audio[int(0.5 * SR) : int(1.5 * SR)] ** 2)
                / np.mean(audio[int(2.5 * SR) : int(3.5 * SR)] ** 2)
            )
        )

    own = pipeline.convert(
        SvcRequest(audio=path, model=svc_trained.model, speaker="alto", slice_db=-60)
    ).audio
    follow = pipeline.convert(
        SvcRequest(audio=path, model=svc_trained.model, speaker="alto", slice_db=-60, loudness_mix=0.0)
    ).audio
    assert level_ratio(follow) > 5 and level_ratio(follow) > 2 * level_ratio(own)


def test_separation_first_and_accompaniment_mixed_back(svc_trained, pipeline, phrase, monkeypatch) -> None:
    from app.data.preprocess import separate

    class FakeSeparator:
        samplerate, channels = 22050, 2

        def separate(self, wav, progress=None):  # type: ignore[no-untyped-def]
            t = np.arange(len(wav)) / self.samplerate
            band = np.repeat((0.2 * np.sin(2 * np.pi * 60 * t))[:, None], 2, axis=1).astype(np.float32)
            return {"vocals": wav, "accompaniment": band}

    monkeypatch.setitem(separate.SEPARATORS, "fake", lambda options, root: FakeSeparator())
    request = SvcRequest(
        audio=phrase,
        model=svc_trained.model,
        speaker="alto",
        separate=True,
        mix_accompaniment=True,
        separator_engine="fake",
    )
    result = pipeline.convert(request)
    assert result.audio.ndim == 2 and result.audio.shape[1] == 2 and result.vocals is not None
    residual = result.audio[:, 0] - result.vocals[: len(result.audio)]
    t = np.arange(len(residual)) / SR
    assert abs(np.corrcoef(residual, np.sin(2 * np.pi * 60 * t))[0, 1]) > 0.99  # the accompaniment is in


def test_missing_model_files_and_encoder_are_named(svc_trained, phrase, tmp_path) -> None:
    with pytest.raises(SvcModelError, match=r"config\.json"):
        SVCPipeline(svc_trained.pretrained).convert(
            SvcRequest(audio=phrase, model=svc_trained.model, config=tmp_path / "config.json")
        )
    with pytest.raises(SvcModelError, match=r"download_models\.py content-vec-best"):
        SVCPipeline(tmp_path / "empty").convert(SvcRequest(audio=phrase, model=svc_trained.model))


def test_compressed_export_converts_like_the_training_checkpoint(svc_trained, pipeline, phrase) -> None:
    release = svc_trained.experiment.models / "release" / f"exp_{svc_trained.steps}.pth"
    a = pipeline.convert(SvcRequest(audio=phrase, model=svc_trained.model, speaker="alto")).audio
    b = pipeline.convert(SvcRequest(audio=phrase, model=release, speaker="alto")).audio
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_cli_converts_and_reports_errors(svc_trained, phrase, tmp_path) -> None:
    out = tmp_path / "out.wav"
    base = [
        sys.executable,
        "-m",
        "app.infer.svc",
        str(phrase),
        "-m",
        str(svc_trained.model),
        "--pretrained",
        str(svc_trained.pretrained),
    ]
    done = subprocess.run(
        [*base, "-s", "alto", "-t", "3", "-o", str(out)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert sf.info(out).samplerate == SR and sf.info(out).duration == pytest.approx(
        sf.info(phrase).duration, abs=0.01
    )
    bad = subprocess.run([*base, "-s", "nobody"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "speaker 'nobody' is not in this model" in bad.stderr


def test_seed_noise_and_automatic_pitch(svc_trained, pipeline, phrase, espeak_wav) -> None:
    def run(**kw):  # type: ignore[no-untyped-def]
        return pipeline.convert(SvcRequest(audio=phrase, model=svc_trained.model, speaker="alto", **kw)).audio

    np.testing.assert_array_equal(run(seed=1), run(seed=1))
    assert not np.allclose(run(seed=1), run(seed=2))
    # The seed also draws the excitation's phases and noise; the prior noise adds to that.
    quiet = np.abs(run(seed=1, noise_scale=0.0) - run(seed=2, noise_scale=0.0)).mean()
    noisy = np.abs(run(seed=1, noise_scale=1.0) - run(seed=2, noise_scale=1.0)).mean()
    assert quiet < noisy
    speech = pipeline.convert(
        SvcRequest(audio=espeak_wav, model=svc_trained.model, speaker="tenor", auto_f0=True)
    )
    given = pipeline.convert(
        SvcRequest(audio=espeak_wav, model=svc_trained.model, speaker="tenor", check_range=False)
    )
    assert speech.slices >= 1 and np.isfinite(speech.audio).all()
    assert not np.allclose(speech.audio, given.audio, atol=1e-3)  # the F0 decoder chose the pitch
