"""The v3/v4 vocoders as networks: configs, layouts, shapes, and equivalence of the weight-norm layouts."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from app.models.nn.hifigan import HiFiGANGenerator
from app.models.nn.norm import fold_weight_norm_state
from app.models.vocoders import VOCODER_PATHS, Vocoder
from app.models.vocoders.bigvgan import BigVGAN, BigVGANConfig, BigVGANConfigError
from app.models.vocoders.hifigan import HiFiGANVocoder, HiFiGANVocoderConfig, HiFiGANVocoderConfigError

TINY_HIFIGAN = HiFiGANVocoderConfig(
    num_mels=8,
    upsample_initial_channel=16,
    upsample_rates=(4, 2),
    upsample_kernel_sizes=(8, 4),
    resblock_kernel_sizes=(3, 5),
    resblock_dilation_sizes=((1, 3, 5), (1, 3, 5)),
    sample_rate=8000,
)
TINY_BIGVGAN = BigVGANConfig(
    num_mels=8,
    sampling_rate=8000,
    hop_size=8,
    upsample_rates=(4, 2),
    upsample_kernel_sizes=(8, 4),
    upsample_initial_channel=16,
    resblock_kernel_sizes=(3, 5),
    resblock_dilation_sizes=((1, 3), (1, 3)),
)


def _perturb(model: torch.nn.Module, seed: int, skip: tuple[str, ...] = ("filter",)) -> torch.nn.Module:
    """Random values everywhere (incl. the constant-initialised Snake parameters and biases)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not name.endswith(skip):
                tensor.add_(torch.randn(tensor.shape, generator=gen) * 0.1)
    return model


def test_defaults_are_upstreams_vocoders() -> None:
    v4 = HiFiGANVocoderConfig()
    assert (v4.sample_rate, v4.hop_length, v4.num_mels, v4.upsample_initial_channel) == (48000, 480, 100, 512)
    v3 = BigVGANConfig()
    assert (v3.sampling_rate, v3.hop_size, v3.num_mels, v3.upsample_initial_channel) == (
        24000,
        256,
        100,
        1536,
    )
    assert (v3.activation, v3.snake_logscale, v3.use_tanh_at_final, v3.use_bias_at_final) == (
        "snakebeta",
        True,
        False,
        False,
    )
    assert VOCODER_PATHS["v4"].as_posix() == "gsv-v4-pretrained/vocoder.pth"
    assert VOCODER_PATHS["v3"].as_posix() == "models--nvidia--bigvgan_v2_24khz_100band_256x"


def test_hifigan_vocoder_is_the_weight_norm_generator_with_folded_kernels() -> None:
    torch.manual_seed(0)
    c = TINY_HIFIGAN
    reference = HiFiGANGenerator(
        c.num_mels,
        c.resblock,
        c.resblock_kernel_sizes,
        c.resblock_dilation_sizes,
        c.upsample_rates,
        c.upsample_initial_channel,
        c.upsample_kernel_sizes,
        conv_post_bias=True,
    )
    _perturb(reference, 1)
    vocoder = HiFiGANVocoder(c)
    state = vocoder.state_dict()
    assert "conv_post.bias" in state and "ups.0.weight" in state
    assert not any(k.endswith(("weight_g", "weight_v")) for k in state)
    # Same names once weight norm is folded away: the plain option changes nothing else.
    vocoder.load_state_dict(fold_weight_norm_state(reference.state_dict()), strict=True)
    mel = torch.randn(2, c.num_mels, 5)
    with torch.no_grad():
        torch.testing.assert_close(vocoder(mel), reference(mel))
    assert "ups.0.weight_g" in HiFiGANGenerator(4, "2", [3], [[1, 3]], [2], 8, [4]).state_dict()


def test_vocoders_map_frames_to_hop_samples() -> None:
    torch.manual_seed(0)
    for voc in (HiFiGANVocoder(TINY_HIFIGAN), BigVGAN(TINY_BIGVGAN)):
        assert isinstance(voc, Vocoder)
        assert (voc.sample_rate, voc.hop_length, voc.num_mels) == (8000, 8, 8)
        with torch.no_grad():
            audio = voc(torch.randn(2, 8, 7))
        assert audio.shape == (2, 1, 7 * 8) and audio.abs().max() <= 1
        with pytest.raises(ValueError, match=r"expected mel \(B, 8, T\)"):
            voc(torch.randn(2, 9, 7))
    with pytest.raises(ValueError, match="no conditioning"):
        HiFiGANVocoder(TINY_HIFIGAN)(torch.randn(1, 8, 3), torch.randn(1, 4, 1))


def test_bigvgan_weight_norm_layout_folds_to_the_plain_one() -> None:
    torch.manual_seed(0)
    wn = _perturb(BigVGAN(TINY_BIGVGAN, weight_norm=True), 2)
    plain = BigVGAN(TINY_BIGVGAN)
    wn_keys = list(wn.state_dict())
    assert "ups.0.0.weight_g" in wn_keys and "resblocks.1.activations.3.downsample.lowpass.filter" in wn_keys
    assert "conv_post.bias" not in wn_keys  # use_bias_at_final false
    plain.load_state_dict(fold_weight_norm_state(wn.state_dict()), strict=True)
    mel = torch.randn(1, 8, 6)
    with torch.no_grad():
        torch.testing.assert_close(plain(mel), wn(mel))


def test_bigvgan_final_clamp_or_tanh() -> None:
    torch.manual_seed(0)
    outs = {}
    for tanh in (False, True):
        config = replace(TINY_BIGVGAN, use_tanh_at_final=tanh, use_bias_at_final=True)
        model = BigVGAN(config)
        torch.manual_seed(3)
        _perturb(model, 3)
        with torch.no_grad():
            model.conv_post.bias.fill_(5.0)  # pushes the output past 1
            outs[tanh] = model(torch.randn(1, 8, 4))
    assert (outs[False] == 1.0).all()  # clamped
    assert (outs[True] < 1.0).all() and (outs[True] > 0.99).all()  # tanh(~5)


def test_bigvgan_block_and_activation_variants() -> None:
    torch.manual_seed(0)
    config = replace(TINY_BIGVGAN, resblock="2", activation="snake")
    model = _perturb(BigVGAN(config), 4)
    keys = list(model.state_dict())
    assert "resblocks.0.convs.1.weight" in keys and not any("convs1" in k for k in keys)
    assert "resblocks.0.activations.1.act.alpha" in keys and not any(k.endswith(".beta") for k in keys)
    assert len(model.resblocks[0].activations) == 2  # one per dilation (AMPBlock1 has two)
    assert len(BigVGAN(TINY_BIGVGAN).resblocks[0].activations) == 4
    with torch.no_grad():
        assert model(torch.randn(1, 8, 3)).shape == (1, 1, 24)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hop_size": 16}, "hop_size 16 differs from the product of upsample_rates"),
        ({"activation": "relu"}, "activation must be one of"),
        ({"resblock": "3"}, "resblock must be one of"),
        ({"upsample_kernel_sizes": (8,)}, "must have the same length"),
        ({"resblock_dilation_sizes": ((1, 3),)}, "must have the same length"),
        ({"snake_logscale": 1}, "snake_logscale must be true or false"),
        ({"num_mels": 0}, "num_mels must be a positive integer"),
        ({"upsample_rates": (4, 2.0)}, "upsample_rates must be a non-empty list of positive integers"),
        ({"upsample_initial_channel": 2}, "cannot be halved 2 times"),
    ],
)
def test_bigvgan_config_errors(change: dict, message: str) -> None:
    with pytest.raises(BigVGANConfigError, match=message):
        replace(TINY_BIGVGAN, **change)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"upsample_kernel_sizes": (8,)}, "same length"),
        ({"resblock": "x"}, "resblock must be"),
        ({"upsample_initial_channel": 2}, "cannot be halved"),
    ],
)
def test_hifigan_config_errors(change: dict, message: str) -> None:
    with pytest.raises(HiFiGANVocoderConfigError, match=message):
        replace(TINY_HIFIGAN, **change)


def test_hifigan_config_from_state_dict() -> None:
    state = HiFiGANVocoder(HiFiGANVocoderConfig(upsample_initial_channel=32)).state_dict()
    assert HiFiGANVocoderConfig.from_state_dict(state) == HiFiGANVocoderConfig(upsample_initial_channel=32)
    with pytest.raises(HiFiGANVocoderConfigError, match=r"conv_pre\.weight"):
        HiFiGANVocoderConfig.from_state_dict({"ups.0.weight": torch.zeros(1)})
