"""HuBERT content encoder: local files only, raw-wave feeding, prompt padding, training scaling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import HubertConfig, HubertModel

from app.models.encoders.hubert import PROMPT_PAD_SAMPLES, HubertEncoder, load_hubert, training_input


@pytest.fixture(scope="module")
def hubert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    config = HubertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
    )
    folder = tmp_path_factory.mktemp("chinese-hubert-base")
    HubertModel(config).save_pretrained(folder)
    return folder


def test_features_are_raw_wave_hubert_at_50hz(hubert_dir: Path) -> None:
    enc = HubertEncoder(hubert_dir)
    wav = 0.1 * torch.randn(16000)
    feats = enc.features(wav)
    assert feats.shape == (1, 32, 49)  # 1 s -> 49 frames (conv stack without padding)
    reference = HubertModel.from_pretrained(hubert_dir).eval()
    with torch.no_grad():
        expected = reference(wav.unsqueeze(0)).last_hidden_state.transpose(1, 2)
    torch.testing.assert_close(feats, expected)
    # No feature-extractor normalisation: the scale of the input matters.
    assert not torch.allclose(enc.features(wav * 10), feats, atol=1e-3)


def test_prompt_padding_is_a_parameter(hubert_dir: Path) -> None:
    enc = load_hubert(str(hubert_dir))
    assert load_hubert(str(hubert_dir)) is enc
    wav = np.float32(0.1) * np.random.default_rng(0).standard_normal(80000).astype(np.float32)
    padded = enc.prompt_features(wav)
    assert padded.shape[-1] == 279  # 5 s + 9,600 zeros, as upstream's prompts
    torch.testing.assert_close(
        padded, enc.features(np.concatenate([wav, np.zeros(PROMPT_PAD_SAMPLES, np.float32)]))
    )
    assert enc.prompt_features(wav, pad_samples=0).shape[-1] == 249


def test_training_input_scaling() -> None:
    t = np.arange(32000) / 32000
    wav = (0.5 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    out = training_input(wav)
    assert out.shape == (16000,) and out.dtype == np.float32
    # peak 0.5 -> 0.5/0.5*0.95*0.5*1145.14 + 0.5*1145.14*0.5 = 830.2
    assert np.abs(out).max() == pytest.approx(0.95 * 0.5 * 1145.14 + 0.25 * 1145.14, rel=0.01)
    with pytest.raises(ValueError, match="silent"):
        training_input(np.zeros(100, np.float32))
    with pytest.raises(ValueError, match=r"2\.2"):
        training_input(np.full(100, 3.0, np.float32))


def test_missing_model_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"config\.json missing"):
        HubertEncoder(tmp_path / "nothing")
