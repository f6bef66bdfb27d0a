"""Windowed decoding: the receptive field bound holds, and windows give the whole decode's samples."""

from __future__ import annotations

import copy
import dataclasses

import torch

from app.infer.decoder import (
    CastDecoder,
    ChannelsLastDecoder,
    ChannelsLastVocoder,
    WindowedDecoder,
    receptive_frames,
)
from app.models.nn.hifigan import HiFiGANGenerator
from app.models.sovits.config import preset

V2 = preset("v2")


def _narrow_v2_decoder() -> HiFiGANGenerator:
    """v2's kernels, strides and dilations (its receptive field) with few channels."""
    torch.manual_seed(0)
    dec = HiFiGANGenerator(
        8, V2.resblock, V2.resblock_kernel_sizes, V2.resblock_dilation_sizes, V2.upsample_rates, 64,
        V2.upsample_kernel_sizes, gin_channels=16,
    )  # fmt: skip
    return dec.eval()


def test_receptive_field_bound_holds_for_v2():
    reach = receptive_frames(V2)
    assert 10 <= reach <= 20
    dec, hop = _narrow_v2_decoder(), V2.hop_length
    x, g = torch.randn(1, 8, 80), torch.randn(1, 16, 1)
    bumped = x.clone()
    bumped[:, :, 40] += 1.0
    with torch.inference_mode():
        diff = (dec(bumped, g=g) - dec(x, g=g)).abs()[0, 0]
    touched = torch.nonzero(diff > 1e-6).flatten()
    first, last = int(touched.min()) // hop, int(touched.max()) // hop
    assert 40 - reach < first <= 40 <= last < 40 + reach, (first, last, reach)


def test_windows_equal_the_whole_decode():
    dec = _narrow_v2_decoder()
    x, g = torch.randn(1, 8, 150), torch.randn(1, 16, 1)
    windowed = WindowedDecoder(dec, V2, max_frames=40)  # 4 windows
    with torch.inference_mode():
        whole = dec(x, g=g)
        parts = windowed(x, g=g)
        short = windowed(x[:, :, :30], g=g)
    assert parts.shape == whole.shape == (1, 1, 150 * V2.hop_length)
    torch.testing.assert_close(parts, whole, rtol=0, atol=1e-5)
    torch.testing.assert_close(short, dec(x[:, :, :30], g=g), rtol=0, atol=0)  # one window: the same call


def test_cast_decoder_returns_float32():
    dec = CastDecoder(_narrow_v2_decoder(), torch.bfloat16)
    with torch.inference_mode():
        out = dec(torch.randn(1, 8, 10), g=torch.randn(1, 16, 1))
    assert out.dtype == torch.float32 and next(dec.inner.parameters()).dtype == torch.bfloat16


def test_receptive_field_grows_with_kernels():
    wider = dataclasses.replace(V2, resblock_kernel_sizes=(3, 7, 21))
    assert receptive_frames(wider) > receptive_frames(V2)


def test_channels_last_decoder_computes_the_same_samples():
    plain = _narrow_v2_decoder()
    converted = ChannelsLastDecoder(_narrow_v2_decoder())  # the same seed: the same weights
    assert not any(isinstance(m, torch.nn.Conv1d | torch.nn.ConvTranspose1d) for m in converted.modules())
    x, g = torch.randn(1, 8, 30), torch.randn(1, 16, 1)
    with torch.inference_mode():
        want = plain(x, g=g)
        got = converted(x, g=g)
        windowed = WindowedDecoder(converted, V2, max_frames=12)(x, g=g)
    assert got.shape == want.shape and got.is_contiguous()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(windowed, want, rtol=1e-5, atol=1e-5)


def test_channels_last_decoder_in_bf16_keeps_its_layout():
    dec = CastDecoder(ChannelsLastDecoder(_narrow_v2_decoder()), torch.bfloat16)
    weights = [p for p in dec.parameters() if p.dim() == 4]
    assert weights and all(p.dtype == torch.bfloat16 for p in weights)
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)
    x, g = torch.randn(1, 8, 20), torch.randn(1, 16, 1)
    with torch.inference_mode():
        want = _narrow_v2_decoder()(x, g=g)
        got = dec(x, g=g)
    assert got.dtype == torch.float32
    assert (got - want).abs().max() <= 0.05 * want.abs().max()  # bf16's 8-bit mantissa


def test_channels_last_vocoder_computes_the_same_samples():
    from app.models.vocoders.hifigan import HiFiGANVocoder, HiFiGANVocoderConfig

    config = HiFiGANVocoderConfig(
        num_mels=20, upsample_initial_channel=32, upsample_rates=(5, 4), upsample_kernel_sizes=(10, 8),
        resblock_kernel_sizes=(3, 7), resblock_dilation_sizes=((1, 3, 5), (1, 3, 5)), sample_rate=8000,
    )  # fmt: skip
    torch.manual_seed(0)
    plain = HiFiGANVocoder(config).eval()
    converted = ChannelsLastVocoder(copy.deepcopy(plain))
    assert (converted.sample_rate, converted.hop_length, converted.num_mels) == (
        plain.sample_rate, plain.hop_length, plain.num_mels,
    )  # fmt: skip
    mel = torch.randn(1, 20, 12)
    with torch.inference_mode():
        torch.testing.assert_close(converted(mel), plain(mel), rtol=1e-5, atol=1e-6)
