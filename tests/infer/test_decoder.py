"""Windowed decoding: the receptive field bound holds, and windows give the whole decode's samples."""

from __future__ import annotations

import dataclasses

import torch

from app.infer.decoder import CastDecoder, WindowedDecoder, receptive_frames
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
