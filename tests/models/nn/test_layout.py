"""Channels-last 2-D convolutions compute what the 1-D layers they replace compute."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from app.models.nn.layout import Conv1dAs2d, convs_as_2d, from_2d, to_2d
from app.models.nn.norm import WNConv1d, WNConvTranspose1d


@st.composite
def conv_layers(draw) -> nn.Module:
    """Any 1-D conv or transposed conv with zero padding: kernel, stride, dilation, groups, bias."""
    groups = draw(st.sampled_from([1, 2]))
    c_in, c_out = groups * draw(st.integers(1, 4)), groups * draw(st.integers(1, 4))
    kernel, stride, dilation = draw(st.integers(1, 7)), draw(st.integers(1, 4)), draw(st.integers(1, 3))
    padding = draw(st.integers(0, dilation * (kernel - 1)))
    bias = draw(st.booleans())
    kind = draw(st.sampled_from(["conv", "transposed", "wn_conv", "wn_transposed"]))
    torch.manual_seed(draw(st.integers(0, 2**16)))
    if kind in ("conv", "wn_conv"):
        cls = nn.Conv1d if kind == "conv" else WNConv1d
        return cls(c_in, c_out, kernel, stride, padding, dilation, groups, bias)
    output_padding = draw(st.integers(0, max(stride, dilation) - 1))
    cls = nn.ConvTranspose1d if kind == "transposed" else WNConvTranspose1d
    return cls(c_in, c_out, kernel, stride, padding, output_padding, groups, bias, dilation)


@settings(max_examples=60, deadline=None)
@given(conv=conv_layers(), frames=st.integers(20, 40), batch=st.integers(1, 2))
def test_conv1d_as_2d_equals_the_1d_layer(conv, frames, batch):
    x = torch.randn(batch, conv.in_channels, frames)
    with torch.inference_mode():
        want = conv(x)
        got = Conv1dAs2d(conv)(to_2d(x))
    assert got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(from_2d(got), want, rtol=1e-5, atol=1e-5)


def test_convs_as_2d_replaces_every_conv_and_counts_them():
    net = nn.Sequential(
        nn.Conv1d(2, 4, 3, padding=1), nn.ReLU(), nn.Sequential(nn.ConvTranspose1d(4, 2, 4, 2, 1))
    )
    x = torch.randn(1, 2, 10)
    with torch.inference_mode():
        want = net(x)
        assert convs_as_2d(net) == 2
        got = from_2d(net(to_2d(x)))
    assert all(isinstance(m, Conv1dAs2d) for m in (net[0], net[2][0]))
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize(
    "conv", [nn.Conv1d(2, 2, 3, padding="same"), nn.Conv1d(2, 2, 3, padding=1, padding_mode="reflect")]
)
def test_other_paddings_are_refused(conv):
    with pytest.raises(ValueError, match="zero padding"):
        Conv1dAs2d(conv)


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "bias"),
    [(10, 5, 0, False), (16, 8, 4, True), (1, 1, 0, True)],  # HuBERT's first conv; other strides
)
def test_one_input_channel_by_a_strided_view_equals_the_conv(kernel, stride, padding, bias):
    torch.manual_seed(1)
    conv = nn.Conv1d(1, 6, kernel, stride, padding, bias=bias)
    x = torch.randn(2, 1, 203)
    with torch.inference_mode():
        got = Conv1dAs2d(conv)(to_2d(x))
        want = conv(x)
    assert got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(from_2d(got), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gelu_fused_into_the_convolution_equals_conv_then_gelu(dtype: torch.dtype) -> None:
    """bf16: oneDNN's fused GELU (erf form) within bf16 rounding of conv then GELU; float32 keeps
    torch's own ops (bit for bit)."""
    torch.manual_seed(0)
    conv = nn.Conv1d(16, 24, 3, stride=2, bias=False)
    layer = Conv1dAs2d(conv).to(dtype)
    x = to_2d(torch.randn(2, 16, 50)).to(dtype)
    with torch.inference_mode():
        got = from_2d(layer.gelu(x)).float()
        want = torch.nn.functional.gelu(from_2d(layer(x)).float())
        plain = from_2d(torch.nn.functional.gelu(layer(x)))
    if dtype == torch.float32:
        assert torch.equal(got, plain)  # torch's own GELU, on the same layout
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    else:
        torch.testing.assert_close(got, want, rtol=2e-2, atol=2e-2)


@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(1, 3),
    c_in=st.integers(1, 24),
    c_out=st.integers(1, 24),
    shape=st.sampled_from([(3, 2), (2, 2), (4, 2), (5, 3), (3, 3)]),
    extra=st.integers(0, 40),
    bias=st.booleans(),
    gelu=st.booleans(),
)
def test_strided_bf16_convolutions_as_one_gemm_equal_the_conv(batch, c_in, c_out, shape, extra, bias, gelu):
    """Strided unpadded convolutions in bf16 run as one GEMM over the input's overlapping row
    windows (HuBERT's feature encoder): the conv's values to bf16 rounding, any size, channels-last
    out."""
    kernel, stride = shape
    gen = torch.Generator().manual_seed(batch * 1000 + c_in * 31 + extra)
    conv = nn.Conv1d(c_in, c_out, kernel, stride, bias=bias)
    layer = Conv1dAs2d(conv).bfloat16()
    assert layer.as_gemm
    x = torch.randn(batch, c_in, kernel + extra, generator=gen)
    with torch.inference_mode():
        got = layer.gelu(to_2d(x.bfloat16())) if gelu else layer(to_2d(x.bfloat16()))
        weight = conv.weight.bfloat16().float()
        want = torch.nn.functional.conv1d(
            x.bfloat16().float(), weight, None if conv.bias is None else conv.bias.bfloat16().float(), stride
        )
        want = torch.nn.functional.gelu(want) if gelu else want
    assert got.dtype == torch.bfloat16 and got.is_contiguous(memory_format=torch.channels_last)
    scale = want.abs().max().item() + 1e-3
    torch.testing.assert_close(from_2d(got).float(), want, rtol=0, atol=2e-2 * scale)


@pytest.mark.parametrize(
    ("kwargs", "as_gemm"),
    [
        ({"kernel_size": 3, "stride": 2}, True),
        ({"kernel_size": 3, "stride": 1}, False),  # windows overlap 3x: oneDNN's convolution
        ({"kernel_size": 5, "stride": 2}, False),
        ({"kernel_size": 3, "stride": 2, "padding": 1}, False),
        ({"kernel_size": 4, "stride": 2, "groups": 2}, False),
        ({"kernel_size": 3, "stride": 2, "dilation": 2}, False),
    ],
)
def test_only_unpadded_strided_convolutions_take_the_gemm(kwargs, as_gemm):
    layer = Conv1dAs2d(nn.Conv1d(4, 4, **kwargs))
    assert layer.as_gemm is as_gemm
    x = to_2d(torch.randn(1, 4, 21))
    with torch.inference_mode():  # float32 is never a GEMM: the convolution's own sums
        torch.testing.assert_close(
            from_2d(layer(x)),
            nn.functional.conv1d(
                x.squeeze(2),
                layer.weight.squeeze(2).contiguous(),
                layer.bias,
                layer.stride[1],
                layer.padding[1],
                layer.dilation[1],
                layer.groups,
            ),
        )
