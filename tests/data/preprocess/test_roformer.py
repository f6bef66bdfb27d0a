"""BS-/Mel-Band-RoFormer: tiny checkpoints in the published .ckpt + .yaml format, chunking, refusals, separation."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from app.data.preprocess.roformer import (
    MissingRoformerModel,
    RoformerError,
    RoformerSeparator,
    demix,
    installed_models,
    model_files,
)
from app.data.preprocess.separate import SeparateOptions, separate_files
from app.models.roformer import RoformerConfig
from app.models.upstream.roformer import RoformerFiles
from tests.data.preprocess.tiny_models import tiny_roformer

BS, MEL = "model_bs_roformer_tiny.ckpt", "vocals_mel_band_roformer_tiny.ckpt"


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrained")
    tiny_roformer(model_files(BS, root)[0])
    tiny_roformer(model_files(MEL, root)[0], "mel_band_roformer")
    return root


class _Half(torch.nn.Module):
    """A "network" whose one stem is half the mix: the chunked result must be exactly that."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x[:, None]


@settings(max_examples=25, deadline=None)
@given(
    length=st.integers(1, 5000),
    overlap=st.integers(1, 4),
    batch=st.integers(1, 3),
    channels=st.integers(1, 2),
)
def test_chunks_overlap_and_fades_add_back_to_the_whole(length, overlap, batch, channels):
    config = RoformerConfig(kind="bs_roformer", dim=8, depth=1, freqs_per_bands=(65, 64), stft_n_fft=256)
    files = RoformerFiles(config, chunk_size=1000, num_overlap=overlap, batch_size=batch, stems=("vocals",))
    mix = torch.randn(channels, length)
    seen: list[float] = []
    out = demix(_Half(), files, mix, seen.append)
    assert out.shape == (1, channels, length)
    torch.testing.assert_close(out[0], 0.5 * mix, atol=1e-6, rtol=1e-5)
    assert seen[-1] == 1.0


@pytest.mark.parametrize("name", [BS, MEL])
def test_published_pairs_load_and_separate(pretrained, name):
    separator = RoformerSeparator(name, pretrained)
    assert (separator.samplerate, separator.channels) == (16000, 2)
    assert separator.files.stems == ("vocals",) and separator.files.chunk_size == 3200
    mix = (0.1 * np.random.default_rng(0).standard_normal((9000, 2))).astype(np.float32)
    stems = separator.separate(mix)
    assert {k: v.shape for k, v in stems.items()} == {"vocals": (9000, 2), "accompaniment": (9000, 2)}
    np.testing.assert_allclose(stems["vocals"] + stems["accompaniment"], mix, atol=1e-6)
    assert np.abs(stems["vocals"]).max() > 1e-4  # the network's mask did something
    assert installed_models(pretrained) == (BS, MEL)


def test_missing_and_malformed_files_are_refused(pretrained, tmp_path):
    with pytest.raises(
        MissingRoformerModel,
        match=r"(?s)model_bs_roformer_ep_317_sdr_12.9755.ckpt is not installed.*download_models.py roformer-bs-viperx-1297",
    ):
        RoformerSeparator("model_bs_roformer_ep_317_sdr_12.9755.ckpt", tmp_path)
    with pytest.raises(MissingRoformerModel, match=r"Put the checkpoint and its .yaml config there"):
        RoformerSeparator("mine.ckpt", tmp_path)
    with pytest.raises(RoformerError, match=r"not a RoFormer checkpoint"):
        RoformerSeparator("Kim_Vocal_2.onnx", tmp_path)
    checkpoint, config = model_files("a_bs_roformer.ckpt", tmp_path)
    tiny_roformer(checkpoint, linear_transformer_depth=1)
    with pytest.raises(RoformerError, match=r"linear_transformer_depth > 0"):
        RoformerSeparator(checkpoint.name, tmp_path)
    tiny_roformer(checkpoint, use_skip_gates=True)
    with pytest.raises(RoformerError, match=r"unknown model settings use_skip_gates"):
        RoformerSeparator(checkpoint.name, tmp_path)
    tiny_roformer(checkpoint)
    config.write_text(config.read_text(encoding="utf-8").replace("  dim: 16", "  dim: 32"), encoding="utf-8")
    with pytest.raises(RoformerError, match=r"does not fit its config"):
        RoformerSeparator(checkpoint.name, tmp_path)
    checkpoint.write_bytes(b"not a checkpoint")
    with pytest.raises(RoformerError, match=r"a_bs_roformer.ckpt"):
        RoformerSeparator(checkpoint.name, tmp_path)


def test_separation_engine_writes_stems_and_resumes(pretrained, tmp_path):
    song = tmp_path / "song.wav"
    t = np.arange(44100 * 2) / 44100
    sf.write(song, 0.2 * np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 330 * t)], 1), 44100)
    options = SeparateOptions(engine="roformer", model=BS)
    out = tmp_path / "sep"
    result = separate_files([song], out, pretrained, options)
    vocals, rate = sf.read(result.files[0].vocals)
    assert rate == 16000 and vocals.shape == (32000, 2) and result.model == BS
    stamp = result.files[0].vocals.stat().st_mtime_ns
    again = separate_files([song], out, pretrained, options)
    assert again.files[0].vocals.stat().st_mtime_ns == stamp


def _attention_keys(prefix: str) -> set[str]:
    attn, ff = f"{prefix}.layers.0.0", f"{prefix}.layers.0.1"
    return {
        *(f"{attn}.{k}" for k in ("norm.gamma", "rotary_embed.freqs", "to_gates.bias", "to_gates.weight")),
        *(f"{attn}.{k}" for k in ("to_out.0.weight", "to_qkv.weight")),
        *(f"{ff}.net.{k}" for k in ("0.gamma", "1.bias", "1.weight", "4.bias", "4.weight")),
    }


@pytest.mark.parametrize("kind", ["bs_roformer", "mel_band_roformer"])
def test_parameter_names_are_the_published_ones(tmp_path, kind):
    """The state-dict names of upstream's vendored networks (tools/uvr5/bs_roformer/) for this config.

    Band indices collapsed to ``*``. BS: one final norm, MLPs of mask_estimator_depth linear
    layers; Mel-Band: a norm closing each transformer, MLPs of mask_estimator_depth hidden layers.
    """
    import re

    checkpoint = tmp_path / "uvr5_weights" / "m.ckpt"
    tiny_roformer(checkpoint, kind)
    names = {
        re.sub(r"(to_features|to_freqs)\.\d+", r"\1.*", k) for k in torch.load(checkpoint, weights_only=True)
    }
    bands = {f"band_split.to_features.*.{k}" for k in ("0.gamma", "1.bias", "1.weight")}
    mlp = ("0", "2") if kind == "bs_roformer" else ("0", "2", "4")
    masks = {f"mask_estimators.0.to_freqs.*.0.{i}.{w}" for i in mlp for w in ("bias", "weight")}
    ends = (
        {"final_norm.gamma"} if kind == "bs_roformer" else {"layers.0.0.norm.gamma", "layers.0.1.norm.gamma"}
    )
    assert names == bands | masks | ends | _attention_keys("layers.0.0") | _attention_keys("layers.0.1")
