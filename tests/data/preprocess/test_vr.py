"""UVR's VR-architecture models: the networks' layout, tiny files through the real loader, the
multi-band mask path, the separation and clean-up steps (order, resume, report)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import given
from hypothesis import strategies as st

from app.data.preprocess.cleanup import CleanupOptions, clean_files
from app.data.preprocess.separate import (
    MissingModelError,
    SeparateOptions,
    SeparationError,
    separate_files,
)
from app.data.preprocess.vr import (
    AGGRESSIVENESS,
    VR_MODELS,
    VR_RATE,
    WINDOW,
    MissingVrModel,
    VrError,
    VrModel,
    make_padding,
    model_path,
)
from app.data.preprocess.vr_spec import analyse, load_bands, mirror_high_end, synthesise
from app.models.nn.skip_init import state_shapes
from app.models.upstream.uvr_vr import ASPP, CASCADED
from app.models.uvr.nets import AsppNet, AsppNetConfig, CascadedNet, CascadedNetConfig
from tests.data.preprocess.tiny_vr import tiny_vr, tiny_vr_state

# The masks the tiny files produce (see tiny_vr), per kind.
MASK = {ASPP: 0.8, CASCADED: 0.7}
LOW_HZ, HIGH_HZ = 300.0, 5000.0  # one tone in the lowest band (below the split bin), one in the top band
# Upstream's aggressiveness: the mask to the power 1 + a/3 below the lowest band's crop, 1 + a above.
A = AGGRESSIVENESS / 100
GAIN = {
    ASPP: (MASK[ASPP] ** (1 + A / 3), MASK[ASPP] ** (1 + A)),
    CASCADED: (MASK[CASCADED], MASK[CASCADED]),
}


def _song(seconds: float = 1.0) -> np.ndarray:
    """Stereo ``(T, 2)``: the low tone left, the high tone right."""
    t = np.arange(int(VR_RATE * seconds)) / VR_RATE
    return np.stack(
        [0.3 * np.sin(2 * np.pi * LOW_HZ * t), 0.3 * np.sin(2 * np.pi * HIGH_HZ * t)], axis=1
    ).astype(np.float32)


def _gain(got: np.ndarray, want: np.ndarray) -> float:
    """Least-squares gain of ``got`` against ``want`` over the middle (edges have half windows)."""
    mid = slice(len(want) // 5, -len(want) // 5)
    return float(np.dot(got[mid], want[mid]) / np.dot(want[mid], want[mid]))


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """Every published VR file as a tiny network of its kind with a constant mask."""
    root = tmp_path_factory.mktemp("pretrained")
    for name, params in VR_MODELS.items():
        tiny_vr(model_path(name, root), params.kind, MASK[params.kind])
    return root


# Sorted "key shape" lines of upstream's networks (GPT-SoVITS tools/uvr5/lib/lib_v5: nets_61968KB
# CascadedASPPNet(1344); nets_new CascadedNet(1344, 48) and (1344, 64)): count and sha256.
UPSTREAM_LAYOUT = {
    "HP": (459, "b8e67194373888017448fa782b2a909abb412e519d7cf522f7a6840d138718a7"),
    "DeEcho": (689, "1b3da22ff6cdc76ea4c8b2859161aee4b81eedb3f88263fdf0e6178ba6b02cce"),
    "DeReverb": (689, "3beac35b5e4bd35ae9c4963cbeb486faaba8d97d9afeeb7dd8a1b726606f1c9c"),
}


@pytest.mark.parametrize(
    ("which", "build"),
    [
        ("HP", lambda: AsppNet(AsppNetConfig())),
        ("DeEcho", lambda: CascadedNet(CascadedNetConfig(nout=48))),
        ("DeReverb", lambda: CascadedNet(CascadedNetConfig(nout=64))),
    ],
)
def test_full_size_networks_have_upstreams_keys_and_shapes(which, build):
    lines = sorted(f"{k} {tuple(v)}" for k, v in state_shapes(build).items())
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    assert (len(lines), digest) == UPSTREAM_LAYOUT[which]


def test_bands_analyse_and_synthesise_back_to_the_input():
    params = load_bands("4band_v2")
    mix = _song()
    spec, high_end = analyse(mix.T, params)
    assert spec.shape == (2, params.bins + 1, len(mix) // params.bands[-1].hl + 1)
    assert high_end.shape == (2, params.high_end_bins, spec.shape[2])
    back = synthesise(spec, params, mirror_high_end(spec, high_end, params))  # (T', 2)
    n = min(len(back), len(mix))
    for channel in range(2):
        assert _gain(back[:n, channel], mix[:n, channel]) == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("name", ["HP2_all_vocals.pth", "VR-DeEchoNormal.pth"])
def test_split_masks_each_band_with_the_files_mask(pretrained, name):
    model = VrModel(name, pretrained)
    mix = _song()
    steps: list[float] = []
    masked, rest = model.split(mix, steps.append)
    assert masked.shape == rest.shape == mix.shape
    assert steps and steps[-1] == 1.0
    low, high = GAIN[model.params.kind]
    assert _gain(masked[:, 0], mix[:, 0]) == pytest.approx(low, abs=0.01)  # lowest band
    assert _gain(masked[:, 1], mix[:, 1]) == pytest.approx(high, abs=0.01)  # top band
    assert _gain(rest[:, 0], mix[:, 0]) == pytest.approx(1 - low, abs=0.01)


def test_long_input_runs_in_overlapping_windows(pretrained):
    """More frames than one window: the pieces join without a seam (constant mask: a constant gain)."""
    model = VrModel("VR-DeEchoNormal.pth", pretrained)
    mix = _song(5.0)  # 460 frames: two windows of 384 new frames
    masked, _ = model.split(mix)
    frames = np.array_split(np.arange(len(mix) // 5, 4 * len(mix) // 5), 12)
    gains = [float(np.dot(masked[f, 0], mix[f, 0]) / np.dot(mix[f, 0], mix[f, 0])) for f in frames]
    assert max(gains) - min(gains) < 0.01


def test_loader_refuses_missing_wrong_and_corrupt_files(pretrained, tmp_path):
    with pytest.raises(VrError, match="unknown VR model"):
        VrModel("HP9.pth", pretrained)
    with pytest.raises(MissingVrModel, match="uvr-vr-hp5"):
        VrModel("HP5_only_main_vocal.pth", tmp_path)
    model_path("HP5_only_main_vocal.pth", tmp_path).parent.mkdir(parents=True)
    torch.save(tiny_vr_state(CASCADED, 0.5), model_path("HP5_only_main_vocal.pth", tmp_path))
    with pytest.raises(VrError, match="cascaded network, expected a aspp"):
        VrModel("HP5_only_main_vocal.pth", tmp_path)
    state = tiny_vr_state(ASPP, 0.5)
    del state["stg2_bridge.conv.1.bias"]
    torch.save(state, model_path("HP5_only_main_vocal.pth", tmp_path))
    with pytest.raises(VrError, match="missing 1 keys"):
        VrModel("HP5_only_main_vocal.pth", tmp_path)
    model_path("HP5_only_main_vocal.pth", tmp_path).write_bytes(b"not a checkpoint")
    with pytest.raises(VrError, match="not a PyTorch checkpoint"):
        VrModel("HP5_only_main_vocal.pth", tmp_path)
    with pytest.raises(VrError, match=r"stereo audio \(T, 2\)"):
        VrModel("HP2_all_vocals.pth", pretrained).split(np.zeros(1000, np.float32))


@pytest.mark.parametrize(
    ("name", "vocals_gain"), [("HP2_all_vocals.pth", "rest"), ("HP3_all_vocals.pth", "masked")]
)
def test_separation_engine_vr(pretrained, tmp_path, name, vocals_gain):
    sf.write(tmp_path / "song.wav", _song(), VR_RATE)
    options = SeparateOptions(engine="vr", model=name)
    result = separate_files(tmp_path / "song.wav", tmp_path / "out", pretrained, options)
    vocals, _ = sf.read(result.files[0].vocals, dtype="float32")
    accompaniment, _ = sf.read(result.files[0].accompaniment, dtype="float32")
    low = GAIN[ASPP][0]
    want = low if vocals_gain == "masked" else 1 - low
    mix = _song()
    assert _gain(vocals[:, 0], mix[:, 0]) == pytest.approx(want, abs=0.01)
    assert _gain(accompaniment[:, 0], mix[:, 0]) == pytest.approx(1 - want, abs=0.01)
    with pytest.raises(SeparationError, match="VR separation model"):
        separate_files(
            tmp_path / "song.wav",
            tmp_path / "o2",
            pretrained,
            SeparateOptions(engine="vr", model="VR-DeEchoNormal.pth"),
        )
    with pytest.raises(MissingModelError, match="not installed"):
        separate_files(tmp_path / "song.wav", tmp_path / "o3", tmp_path, options)


def test_cleanup_runs_vr_karaoke_then_dereverb_resumes_and_reports(pretrained, tmp_path):
    sf.write(tmp_path / "a.wav", _song(), VR_RATE)
    options = CleanupOptions(karaoke="HP5_only_main_vocal.pth", dereverb="VR-DeEchoNormal.pth")
    result = clean_files([tmp_path / "a.wav"], tmp_path / "out", pretrained, options)
    assert [r.step for r in result.records] == ["karaoke", "dereverb"]
    assert [r.model for r in result.records] == ["vr:HP5_only_main_vocal.pth", "vr:VR-DeEchoNormal.pth"]
    assert result.records[1].source == result.records[0].outputs[0]  # de-reverb reads the lead vocal
    out, _ = sf.read(result.outputs[0], dtype="float32")
    # karaoke keeps what HP5's mask leaves (the lead vocal), de-echo keeps what its mask keeps (dry).
    want = (1 - GAIN[ASPP][0]) * MASK[CASCADED]
    assert _gain(out[:, 0], _song()[:, 0]) == pytest.approx(want, abs=0.01)
    report = json.loads(result.report.read_text(encoding="utf-8"))
    assert set(report) == {"karaoke", "dereverb"}
    assert report["dereverb"]["a.wav"]["figures"]["removed_db"] < 0
    again = clean_files([tmp_path / "a.wav"], tmp_path / "out", pretrained, options)
    assert all(r.resumed for r in again.records)
    other = CleanupOptions(karaoke="HP5_only_main_vocal.pth", dereverb="VR-DeEchoAggressive.pth")
    third = clean_files([tmp_path / "a.wav"], tmp_path / "out", pretrained, other)
    assert [r.resumed for r in third.records] == [True, False]  # another model: that step again


def test_song_through_mdx_then_vr_karaoke_and_de_echo_to_a_list(tmp_path):
    """The whole chain with the VR steps: separate (MDX-Net) -> karaoke (HP5) -> de-echo (VR-DeEcho)
    -> denoise -> slice -> SenseVoice, to a proofreadable .list; a rerun resumes every step."""
    from app.audio.denoise import DenoiseOptions
    from app.audio.slicer import SlicerOptions
    from app.data.filelist import read_list
    from app.data.preprocess.asr_sherpa import SENSEVOICE_FOLDER
    from app.data.preprocess.mdx import MDX_MODELS
    from app.data.preprocess.mdx import model_path as mdx_path
    from app.data.preprocess.pipeline import PipelineOptions, build_dataset
    from app.data.preprocess.transcribe import TranscribeOptions
    from tests.data.preprocess.tiny_models import tiny_mdx, tiny_sensevoice

    vocals = "Kim_Vocal_2.onnx"
    params = MDX_MODELS[vocals]
    # Near-transparent VR masks: HP5 takes ~3 % out as "backing", the de-echo keeps ~97 %.
    tiny_vr(model_path("HP5_only_main_vocal.pth", tmp_path / "pm"), ASPP, 0.05)
    tiny_vr(model_path("VR-DeEchoNormal.pth", tmp_path / "pm"), CASCADED, 0.97)
    tiny_mdx(
        mdx_path(vocals, tmp_path / "pm"), params.dim_f, params.dim_t, int(1000 / (VR_RATE / params.n_fft))
    )
    tiny_sensevoice(tmp_path / "pm" / SENSEVOICE_FOLDER)
    t = np.arange(int(VR_RATE * 1.2)) / VR_RATE
    phrase = 0.3 * np.sin(2 * np.pi * 200 * t) * np.minimum(1.0, np.minimum(t, t[::-1]) / 0.1)
    voice = np.concatenate([np.zeros(VR_RATE), phrase, np.zeros(VR_RATE), phrase, np.zeros(VR_RATE)])
    song = voice + 0.1 * np.sin(2 * np.pi * 5000 * np.arange(voice.size) / VR_RATE)
    sf.write(tmp_path / "song.wav", np.stack([song, song], axis=1).astype(np.float32), VR_RATE)
    options = PipelineOptions(
        separate=True,
        separation=SeparateOptions(engine="mdx", model=vocals, device="cpu"),
        cleanup=CleanupOptions(
            karaoke="HP5_only_main_vocal.pth",
            dereverb="VR-DeEchoNormal.pth",
            denoise=DenoiseOptions(),
            device="cpu",
        ),
        slicer=SlicerOptions(min_length_ms=1000, min_interval_ms=300, max_sil_kept_ms=200),
        transcription=TranscribeOptions(engine="sensevoice", language="ja"),
    )
    result = build_dataset(tmp_path / "song.wav", "aki", tmp_path / "out", tmp_path / "pm", options)
    assert [r.step for r in result.cleaned.records] == ["karaoke", "dereverb", "denoise"]
    assert [f.source for f in result.sliced.files] == [
        result.dataset_dir / "cleaned" / "denoise" / "song.wav"
    ]
    assert [(r.speaker, r.lang, r.text) for r in read_list(result.list_path).rows] == [
        ("aki", "JA", "hello")
    ] * 2
    again = build_dataset(tmp_path / "song.wav", "aki", tmp_path / "out", tmp_path / "pm", options)
    assert all(r.resumed for r in again.cleaned.records)


def test_matches_upstream_vr_on_a_tiny_deecho_network(tmp_path):
    """Upstream's tools/uvr5 AudioPreDeEcho on a tiny random de-echo network (tests/fixtures/upstream)."""
    import shutil
    from pathlib import Path

    fixtures = Path(__file__).parents[2] / "fixtures" / "upstream"
    io = torch.load(fixtures / "vr_deecho_tiny_io.pt", weights_only=True)
    path = model_path("VR-DeEchoNormal.pth", tmp_path)
    path.parent.mkdir(parents=True)
    shutil.copyfile(fixtures / "vr_deecho_tiny.pth", path)
    mix = io["inputs"]["mix"].numpy()
    masked, rest = VrModel("VR-DeEchoNormal.pth", tmp_path).split(mix)
    n = len(mix)
    peak = io["masked"].abs().max().item()
    assert peak > 0.05  # the mask is neither all 0 nor degenerate
    np.testing.assert_allclose(masked, io["masked"][:n].numpy(), atol=1e-6, rtol=0)
    np.testing.assert_allclose(rest, io["rest"][:n].numpy(), atol=1e-6, rtol=0)


@given(frames=st.integers(1, 5000), offset=st.sampled_from([64, 128]))
def test_windows_cover_every_frame_with_their_trusted_centres(frames, offset):
    left, right, step = make_padding(frames, offset)
    windows = int(np.ceil(frames / step))
    assert left == offset and step == WINDOW - 2 * offset
    # The last window fits inside the padded frames, and the centres (step frames each) cover them all.
    assert (windows - 1) * step + WINDOW <= left + frames + right
    assert windows * step >= frames


def test_unknown_band_parameters_are_refused():
    with pytest.raises(ValueError, match="no UVR band parameters named 'nope'"):
        load_bands("nope")
