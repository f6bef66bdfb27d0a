"""Windowed decoding: the receptive field bound holds, and windows give the whole decode's samples."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.infer.decoder import (
    CastDecoder,
    CastFlow,
    CastPrior,
    FixedWindowDecoder,
    FixedWindowNSF,
    FixedWindowVocoder,
    WindowedDecoder,
    receptive_frames,
)
from app.models.nn import hifigan2d
from app.models.nn.hifigan import HiFiGANGenerator, ResBlock1
from app.models.nn.hifigan2d import Buffers, _ResBlock1As2d, tile, tiled
from app.models.nn.layout import Conv1dAs2d, to_2d
from app.models.nn.qconv import int8_convolutions
from app.models.sovits.config import preset
from app.models.sovits.model import SoVITS
from app.models.svc.config import SynthesizerConfig
from app.models.svc.noise import TorchNoise
from app.models.svc.nsf import NSFGenerator
from app.models.vocoders.hifigan import HiFiGANVocoder, HiFiGANVocoderConfig
from tests.models.conftest import randomize, tiny_sovits_config

V2 = preset("v2")
# Relative error of the tiny NSF decoder with int8 residual blocks against float32 (observed 1.0-1.3e-3).
INT8_NSF_ERROR = 5e-3


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


def test_cast_prior_and_flow_follow_the_float32_ones():
    """The prior encoder and the flow in bf16: float32 out, within bf16's rounding of the float32
    modules (forward, and with the text encoded beforehand as streaming does); the flow runs the
    inference direction only."""
    config = tiny_sovits_config("v2")
    model = randomize(SoVITS(config), seed=0).eval()
    enc, flow = copy.deepcopy(model.enc_p), copy.deepcopy(model.flow)
    cast_enc, cast_flow = CastPrior(model.enc_p, torch.bfloat16), CastFlow(model.flow, torch.bfloat16)
    frames, phones = 20, torch.randint(1, 100, (1, 9))
    y, ge = torch.randn(1, 768, frames), torch.randn(1, 512, 1)  # MRTE's timbre is 512 wide
    lengths, text_lengths = torch.tensor([frames]), torch.tensor([9])
    with torch.inference_mode():
        want = enc(y, lengths, phones, text_lengths, ge)
        got = cast_enc(y, lengths, phones, text_lengths, ge)
        encoded = cast_enc.encode_text(phones, text_lengths, torch.float32)
        again = cast_enc(y, lengths, phones, text_lengths, ge, encoded_text=encoded)
        z_p, g = want[0], torch.randn(1, config.gin_channels, 1)
        z_want, z_got = flow(z_p, want[2], g=g, reverse=True), cast_flow(z_p, want[2], g=g, reverse=True)
    assert encoded[0].dtype == torch.bfloat16
    for w, a, b in zip(want, got, again, strict=True):
        assert a.dtype == b.dtype == torch.float32 and torch.equal(a, b)
        torch.testing.assert_close(a, w, rtol=0.05, atol=0.05)
    assert z_got.dtype == torch.float32
    assert float((z_got - z_want).norm() / z_want.norm()) < 0.02
    with pytest.raises(ValueError, match="reverse=True"):
        cast_flow(z_p, want[2], g=g)


def test_receptive_field_grows_with_kernels():
    wider = dataclasses.replace(V2, resblock_kernel_sizes=(3, 7, 21))
    assert receptive_frames(wider) > receptive_frames(V2)


@pytest.mark.parametrize("mode", ["float32", "bfloat16", "int8"])
@given(frames=st.integers(1, 260))
@example(frames=5).via("padded")
@example(frames=77).via("layer by layer")
@example(frames=233).via("spans")
@settings(max_examples=8, deadline=None)
def test_fixed_windows_equal_the_whole_decode(fixed_decoders, mode, frames):
    """Padded-and-masked short inputs and overlapping fixed windows give the whole float32 decode's
    samples: float32 up to summation order, bf16 and int8 residual blocks (bf16 around them) as
    close as the plain bf16 network gets."""
    if mode == "int8" and not int8_convolutions():
        pytest.skip("needs oneDNN's int8 convolutions and the native kernels")
    dec, fixed = fixed_decoders[mode]
    dtype = fixed.dtype
    x = torch.randn(1, 8, frames, generator=torch.Generator().manual_seed(frames))
    g = torch.randn(1, 16, 1, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        want = dec(x, g=g)
        got = fixed(x, g=g)
        plain = dec.to(dtype)(x.to(dtype), g=g.to(dtype)).float()
        dec.float()
    assert got.dtype == torch.float32 and got.shape == want.shape == (1, 1, frames * V2.hop_length)
    if mode == "float32":
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
        return
    error, plain_error = (float((y - want).norm() / want.norm()) for y in (got, plain))
    assert error <= 2 * plain_error + 1e-3, (error, plain_error)


@pytest.mark.skipif(not int8_convolutions(), reason="needs oneDNN's int8 convolutions and the native kernels")
@given(samples=st.integers(64, 700), seed=st.integers(0, 2**16), kernel=st.sampled_from([3, 7, 11]))
@settings(max_examples=15, deadline=None)
def test_int8_residual_blocks_tiled_are_the_whole_ones(samples, seed, kernel):
    """An int8 residual block over an input of any length, each convolution in windows: every
    activation is quantised whole (one scale for all its windows), so the output is the whole
    input's (float32 activations: int32 sums, the same dequantisation), whatever the tiling."""
    torch.manual_seed(seed)
    block = _ResBlock1As2d(ResBlock1(32, kernel, (1, 3, 5)), int8=True)  # 32: a width int8 pays at
    assert block.int8 is not None
    x = to_2d(torch.randn(1, 32, samples, generator=torch.Generator().manual_seed(seed)))
    with torch.inference_mode():
        whole = block(x, samples)
        got = block.tiled(x, [64, 128], Buffers(torch.float32))  # halos up to 25 (kernel 11, dilation 5)
    torch.testing.assert_close(got, whole, rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def fixed_decoders():
    """Per dtype: the narrow decoder in that dtype and a FixedWindowDecoder of it (windows 8 and 40:
    inputs of 1-130 frames take the short window, the long one padded, layer by layer windows, or
    above 110 frames spans of those with the receptive field's context)."""
    out = {}
    for mode, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16), ("int8", torch.bfloat16)):
        if mode == "int8" and not int8_convolutions():
            continue
        dec = _narrow_v2_decoder()
        with pytest.MonkeyPatch.context() as patch:  # int8 at every width (the rule is for speed)
            patch.setattr(hifigan2d, "int8_pays", lambda channels: True)
            fixed = FixedWindowDecoder(
                dec, V2, lengths=(8, 40), dtype=dtype, max_tiled=110, int8=mode == "int8"
            )
        out[mode] = (dec, fixed)
    return out


@given(
    samples=st.integers(1, 3000),
    halo=st.integers(0, 40),
    lengths=st.lists(st.integers(1, 400), min_size=1, max_size=4, unique=True).map(sorted),
)
@settings(deadline=None)
def test_tiles_cover_the_input_once_with_their_halos(samples, halo, lengths):
    """Every sample is kept exactly once, windows lie inside the input and have one of the lengths,
    and a kept sample has ``halo`` inputs of its window on each side that is not an end of the
    input; where no length fits inside with room for the halos, tiling is refused."""
    if not any(2 * halo < n <= samples for n in lengths):
        with pytest.raises(ValueError, match="twice the halo"):
            tile(samples, halo, lengths)
        return
    windows, keep = tile(samples, halo, lengths), 0
    for start, length, a, b in windows:
        assert length in lengths and start >= 0 and start + length <= samples
        assert a == keep < b and start <= a and b <= start + length
        assert start == 0 or a - start >= halo
        assert start + length == samples or start + length - b >= halo
        keep = b
    assert keep == samples


@st.composite
def _convs(draw):
    """A stride-1 convolution (any kernel, dilation, 'same' padding) or a transposed one whose output
    is its stride times its input (kernel - 2 * padding = stride), few channels."""
    channels_in, channels_out = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    if draw(st.booleans()):
        stride = draw(st.integers(2, 10))
        pad = draw(st.integers(0, 6))
        return torch.nn.ConvTranspose1d(channels_in, channels_out, stride + 2 * pad, stride, padding=pad)
    kernel, dilation = draw(st.sampled_from([1, 3, 5, 7, 11])), draw(st.integers(1, 5))
    return torch.nn.Conv1d(
        channels_in, channels_out, kernel, dilation=dilation, padding=dilation * (kernel - 1) // 2
    )


@given(conv=_convs(), extra=st.integers(0, 300), seed=st.integers(0, 2**16))
@settings(max_examples=60, deadline=None)
def test_a_tiled_convolution_is_the_whole_ones(conv, extra, seed):
    """Any stride-1 or transposed convolution over an input of any length, in windows of fixed
    lengths, gives the whole input's output (float32, up to summation order), with a residual too."""
    layer = Conv1dAs2d(conv)
    lengths = [24, 64]  # a halo of up to 25 (kernel 11, dilation 5) fits the longer
    samples = max(lengths) + extra
    gen = torch.Generator().manual_seed(seed)
    x = to_2d(torch.randn(1, conv.in_channels, samples, generator=gen))
    with torch.inference_mode():
        whole = layer(x)
        got = tiled(layer, x, lengths)
        residual = torch.randn(whole.shape, generator=gen).contiguous(memory_format=torch.channels_last)
        plus = tiled(layer, x, lengths, lambda w, r: layer(w) + r, residual=residual)
    assert got.shape == whole.shape and got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got, whole, rtol=0, atol=1e-5)
    torch.testing.assert_close(plus, whole + residual, rtol=0, atol=1e-5)


@given(frames=st.lists(st.integers(1, 400), min_size=1, max_size=4))
@settings(max_examples=10, deadline=None)
def test_fixed_windows_only_meet_the_warmed_shapes(fixed_decoders, frames):
    """After warm_up, latents of any length hand every oneDNN convolution only input lengths it met
    at warm-up: oneDNN builds no new kernels (nor keeps their state) for them. (The int8 residual
    blocks' convolutions take any length: they call oneDNN on batches of fixed-size blocks, a few
    batch sizes each: test_qconv.)"""
    seen: set[tuple[int, int]] = set()
    with pytest.MonkeyPatch.context() as patch:
        for cls, name in [(Conv1dAs2d, name) for name in ("forward", "leaky_relu", "plus")]:
            inner = getattr(cls, name)

            def spy(self, x, *args, inner=inner):
                seen.add((id(self), x.shape[-1]))
                return inner(self, x, *args)

            patch.setattr(cls, name, spy)
        for mode, (_, fixed) in fixed_decoders.items():
            seen.clear()
            fixed.warm_up()
            warmed, g = set(seen), torch.randn(1, 16, 1)
            seen.clear()
            with torch.inference_mode():
                for n in frames:
                    fixed(torch.randn(1, 8, n), g)
            assert seen and seen <= warmed, (mode, sorted(seen - warmed)[:5])


def test_fixed_windows_refuse_lengths_without_room_for_context():
    with pytest.raises(ValueError, match="twice the context"):
        FixedWindowDecoder(_narrow_v2_decoder(), V2, lengths=(8, 30))
    with pytest.raises(ValueError, match="ascend"):
        FixedWindowDecoder(_narrow_v2_decoder(), V2, lengths=(64, 40))
    with pytest.raises(ValueError, match="max_tiled"):
        FixedWindowDecoder(_narrow_v2_decoder(), V2, lengths=(8, 40), max_tiled=100)


def test_fixed_window_vocoder_gives_the_vocoders_samples():
    """v4's mel vocoder (no conditioning, conv_post bias) in fixed windows: its own samples, short
    inputs padded and long ones windowed; a wrong mel shape is refused as the vocoder refuses it."""
    torch.manual_seed(0)
    config = HiFiGANVocoderConfig(num_mels=12, upsample_initial_channel=32)
    vocoder = HiFiGANVocoder(config).eval()
    fixed = FixedWindowVocoder(vocoder, dtype=torch.float32)
    fixed.lengths = (8, 40)
    assert (fixed.sample_rate, fixed.hop_length, fixed.num_mels) == (48_000, 480, 12)
    with torch.inference_mode():
        for frames in (3, 37, 95):
            mel = torch.randn(1, 12, frames)
            torch.testing.assert_close(fixed(mel), vocoder(mel), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="expected mel"):
        fixed(torch.randn(1, 100, 5))


@pytest.mark.parametrize("int8", [False, True])
@pytest.mark.parametrize("per_frame_speaker", [False, True])
def test_fixed_window_nsf_gives_the_nsf_decoders_samples(per_frame_speaker, int8):
    """so-vits-svc's NSF decoder in fixed windows: the excitation made once from the whole f0 (the
    same draws), cut with the latent and a per-frame speaker mix; float32 equals the decoder's output,
    and with int8 residual blocks (float32 around them) it stays within their quantisation error."""
    if int8 and not int8_convolutions():
        pytest.skip("needs oneDNN's int8 convolutions and the native kernels")
    torch.manual_seed(0)
    cfg = SynthesizerConfig(inter_channels=8, gin_channels=16, upsample_initial_channel=32)
    nsf = NSFGenerator(
        cfg.inter_channels, cfg.sampling_rate, cfg.resblock, cfg.resblock_kernel_sizes,
        cfg.resblock_dilation_sizes, cfg.upsample_rates, cfg.upsample_initial_channel,
        cfg.upsample_kernel_sizes, cfg.gin_channels,
    ).eval()  # fmt: skip
    with torch.no_grad():  # HiFi-GAN's init (N(0, 0.01)) leaves the residual blocks near identity
        for name, param in nsf.resblocks.named_parameters():
            param.mul_(40.0 if name.endswith("weight_g") else 1.0)
    with pytest.MonkeyPatch.context() as patch:  # int8 at every width (the rule is for speed)
        patch.setattr(hifigan2d, "int8_pays", lambda channels: True)
        fixed = FixedWindowNSF(nsf, cfg, dtype=torch.float32, int8=int8)
    fixed.lengths = (8, 40)
    assert all((block.int8 is not None) == int8 for block in fixed.inner.resblocks)
    with torch.inference_mode():
        for frames in (5, 33, 97):
            x = torch.randn(1, 8, frames)
            f0 = torch.where(torch.rand(1, frames) > 0.3, 100 + 200 * torch.rand(1, frames), 0.0)
            g = torch.randn(1, 16, frames if per_frame_speaker else 1)
            want = nsf(x, f0, g, TorchNoise(seed=3))
            got = fixed(x, f0, g, TorchNoise(seed=3))
            assert got.shape == want.shape == (1, 1, frames * cfg.hop_length)
            if int8:
                assert float((got - want).norm() / want.norm()) < INT8_NSF_ERROR
            else:
                torch.testing.assert_close(got, want, rtol=0, atol=2e-6)
