"""Content encoders on tiny random transformers HuBERT models saved to temporary folders."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import HubertConfig

from app.models.encoders import content


def tiny_hubert(folder: Path, *, with_projection: bool = True, layers: int = 12, seed: int = 0) -> Path:
    """Save a random 12-layer HuBERT (16 wide) + final_proj (8 wide) in transformers format."""
    torch.manual_seed(seed)
    config = HubertConfig(
        hidden_size=16,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(8,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        classifier_proj_size=8,
    )
    if with_projection:
        model = content._hubert_class()(config)
    else:
        from transformers import HubertModel

        model = HubertModel(config)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def hubert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_hubert(tmp_path_factory.mktemp("hubert"))


def reference_features(model, layer: int | None, project: bool, pad: int, wav: torch.Tensor) -> torch.Tensor:
    """The features written out by hand from transformers' outputs."""
    x = torch.nn.functional.pad(wav[None], (pad, pad))
    with torch.no_grad():
        out = model(x, output_hidden_states=True)
        h = out.hidden_states[layer if layer is not None else -1]
        if project:
            h = model.final_proj(h)
    return h.transpose(1, 2)


@pytest.mark.parametrize(
    ("name", "layer", "project", "pad", "dim"),
    [("vec768l12", 12, False, 0, 16), ("vec256l9", 9, True, 0, 8), ("hubertsoft", None, True, 40, 8)],
)
def test_each_encoder_reads_its_layer(
    hubert_dir: Path, name: str, layer, project: bool, pad: int, dim: int
) -> None:
    encoder = content.load_content_encoder(name, hubert_dir)
    assert encoder.dim == dim
    wav = torch.randn(8000) * 0.1
    feats = encoder(wav)
    assert feats.shape == (1, dim, 8000 // content.HOP - (0 if pad else 1))
    torch.testing.assert_close(feats, reference_features(encoder.hubert, layer, project, pad, wav))


def test_layers_differ_so_the_choice_matters(hubert_dir: Path) -> None:
    wav = torch.randn(8000) * 0.1
    model = content.load_content_encoder("vec768l12", hubert_dir).hubert
    l12 = reference_features(model, 12, False, 0, wav)
    l9 = reference_features(model, 9, False, 0, wav)
    assert not torch.allclose(l12, l9)


def test_batch_input_and_short_audio(hubert_dir: Path) -> None:
    encoder = content.load_content_encoder("vec768l12", hubert_dir)
    assert encoder(torch.zeros(2, 3200)).shape == (2, 16, 9)
    with pytest.raises(content.ContentEncoderError, match="too short"):
        encoder(torch.zeros(300))


def test_projection_required_for_256_encoders(tmp_path: Path) -> None:
    plain = tiny_hubert(tmp_path / "plain", with_projection=False)
    assert content.load_content_encoder("vec768l12", plain).dim == 16
    with pytest.raises(content.ContentEncoderError, match="final_proj"):
        content.load_content_encoder("vec256l9", plain)


def test_missing_folder_unknown_name_and_too_few_layers(tmp_path: Path) -> None:
    with pytest.raises(content.ContentEncoderError, match=r"config\.json missing"):
        content.load_content_encoder("vec768l12", tmp_path / "nothing")
    with pytest.raises(content.ContentEncoderError, match="unknown content encoder"):
        content.load_content_encoder("whisper-ppg", tmp_path)
    shallow = tiny_hubert(tmp_path / "shallow", layers=4)
    with pytest.raises(content.ContentEncoderError, match="only 4 layers"):
        content.load_content_encoder("vec768l12", shallow)


def test_align_frames_nearest_and_left() -> None:
    units = torch.arange(5.0).reshape(1, 1, 5).expand(1, 2, 5)
    nearest = content.align_frames(units, 12)
    assert nearest.shape == (1, 2, 12)
    torch.testing.assert_close(nearest, torch.nn.functional.interpolate(units, size=12, mode="nearest"))
    left = content.align_frames(units[0], 12, mode="left")
    # target frame i takes source floor(i * 5 / 12)
    assert left[0].tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 4, 4]
    with pytest.raises(content.ContentEncoderError):
        content.align_frames(units, 12, mode="linear-ish")
