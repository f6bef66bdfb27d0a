"""One-dimensional convolutions run as channels-last two-dimensional ones (inference only).

A ``(B, C, T)`` activation is held as ``(B, C, 1, T)`` in ``torch.channels_last`` memory (physically
``(B, T, C)``), and each ``Conv1d``/``ConvTranspose1d`` as the same kernel with a height of 1. On CPU
this is oneDNN's native layout: the plain ``(B, C, T)`` path reorders every convolution's input and
output (a transposing copy as large as the activation) and, in bfloat16, misses the AMX/AVX512-BF16
kernels. Elementwise operations keep their input's memory layout, so a network whose forward is only
convolutions, activations, norms and sums runs unchanged on the 4-D tensors.

Used by HuBERT's conv stack in bf16 (0.31 -> 0.20 s CPU for a 5.3 s clip at 1 thread, ~2 MB of
oneDNN state per new clip length; its strided layers as GEMMs, see ``Conv1dAs2d._gemm``) and by the fast mode's HiFi-GAN decoder
(:mod:`app.models.nn.hifigan2d`): there oneDNN keeps ~2 MB of kernel state per frame of input
length in this layout (the plain layout ~6 MB per length), so the decoder runs in windows of a few
fixed lengths (:class:`~app.infer.decoder.FixedWindowDecoder`) instead of meeting a new length with
every request.
"""

from __future__ import annotations

import functools
import logging

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

CHANNELS_LAST = torch.channels_last


def channels_last_pays(device: torch.device) -> bool:
    """True where the channels-last layout was measured to pay: the CPU with oneDNN (no GPU figures yet)."""
    return device.type == "cpu" and torch.backends.mkldnn.is_available()


class Conv1dAs2d(nn.Module):
    """A ``Conv1d`` or ``ConvTranspose1d`` (weight-normalised ones folded) as a channels-last 2-D conv.

    Input ``(B, C_in, 1, T)`` channels-last -> output ``(B, C_out, 1, T')`` channels-last, the
    values of the 1-D layer on ``(B, C_in, T)``.
    """

    def __init__(self, conv: nn.Conv1d | nn.ConvTranspose1d) -> None:
        super().__init__()
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError(f"only zero padding given as a number is supported, got {conv.padding!r}")
        normed = getattr(conv, "normed_weight", None)
        kernel = (normed() if normed is not None else conv.weight).detach()
        self.transposed = isinstance(conv, nn.ConvTranspose1d)
        # (out, in, k) -> (out, in, 1, k), for the transposed conv (in, out/groups, 1, k).
        self.weight = nn.Parameter(
            kernel.unsqueeze(2).contiguous(memory_format=CHANNELS_LAST), requires_grad=False
        )
        self.bias = (
            None if conv.bias is None else nn.Parameter(conv.bias.detach().clone(), requires_grad=False)
        )
        self.stride = (1, conv.stride[0])
        self.padding = (0, conv.padding[0])
        self.dilation = (1, conv.dilation[0])
        self.groups = conv.groups
        self.output_padding = (0, conv.output_padding[0]) if self.transposed else (0, 0)
        # A strided convolution without padding whose windows overlap at most by half (HuBERT's
        # feature encoder: kernel 3 or 2, stride 2) is one GEMM over its input rows (see _gemm).
        kernel_size, stride = conv.kernel_size[0], conv.stride[0]
        self.as_gemm = (
            not self.transposed
            and self.groups == 1
            and conv.dilation[0] == 1
            and conv.padding[0] == 0
            and 2 <= stride <= kernel_size <= 2 * stride
        )

    def _args(self) -> tuple:
        return (self.weight, self.bias, self.padding, self.stride, self.dilation, self.groups)

    def leaky_relu(self, x: torch.Tensor, slope: float) -> torch.Tensor:
        """``leaky_relu(self(x), slope)``, fused into the convolution where oneDNN can."""
        if self.transposed or not pointwise_fusion(x.dtype):
            return F.leaky_relu(self(x), slope, inplace=True)
        return torch.ops.mkldnn._convolution_pointwise(x, *self._args(), "leaky_relu", [slope], "")

    def gelu(self, x: torch.Tensor) -> torch.Tensor:
        """``gelu(self(x))`` (the erf form), fused into the convolution where oneDNN can, in bf16
        only: float32 keeps torch's own GELU values (the exact paths compare to upstream's)."""
        if self.transposed or x.dtype != torch.bfloat16 or not pointwise_fusion(x.dtype):
            return F.gelu(self(x))
        if self._gemm_pays(x):
            return self._gemm(x, "gelu")
        return torch.ops.mkldnn._convolution_pointwise(x, *self._args(), "gelu", [], "none")

    def plus(self, x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        """``self(x) + other`` (a new tensor), fused into the convolution where oneDNN can."""
        if self.transposed or not pointwise_fusion(x.dtype):
            return self(x).add_(other)
        return torch.ops.mkldnn._convolution_pointwise.binary(
            x, other, *self._args(), "add", 1.0, None, [], None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, 1, T) -> (B, C_out, 1, T')"""
        if self.weight.shape[1] == 1 and not self.transposed and self.groups == 1 and self.dilation[1] == 1:
            return self._one_channel(x)
        if self._gemm_pays(x):
            return self._gemm(x, "none")
        if self.transposed:
            out = F.conv_transpose2d(
                x,
                self.weight,
                self.bias,
                self.stride,
                self.padding,
                self.output_padding,
                self.groups,
                self.dilation,
            )
        else:
            out = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        # One input channel reads as either layout, and oneDNN then answers in the plain one.
        return out.contiguous(memory_format=CHANNELS_LAST)

    def _gemm_pays(self, x: torch.Tensor) -> bool:
        """bf16 on oneDNN, channels-last input. On HuBERT's feature encoder (5 s clip, 2 threads,
        AMX) the AMX GEMM ran ~2x faster than oneDNN's stride-2 bf16 convolution on the long
        layers, ~3x on the kernel-2 ones and within 15 % either way on the shortest: the stack
        ~10 ms less per clip. float32 stays a convolution (its sums as upstream orders them)."""
        return (
            self.as_gemm
            and x.dtype == torch.bfloat16
            and x.is_contiguous(memory_format=CHANNELS_LAST)
            and pointwise_fusion(x.dtype)
        )

    def _gemm(self, x: torch.Tensor, attr: str) -> torch.Tensor:
        """The convolution as one GEMM: in channels-last memory the ``kernel`` input rows of output
        frame ``t`` (rows ``[t * stride, t * stride + kernel)`` of ``(T, C_in)``) lie contiguously,
        so the ``(T', kernel * C_in)`` window matrix is a strided view of the input (overlapping
        rows are copied once; none when kernel == stride), and the channels-last kernel
        ``(C_out, 1, kernel, C_in)`` in memory is the ``(C_out, kernel * C_in)`` GEMM weight as is.
        ``attr`` ("none" or "gelu") is fused into the GEMM."""
        B, C, _, T = x.shape
        stride, kernel = self.stride[1], self.weight.shape[-1]
        frames = (T - kernel) // stride + 1
        rows = x.permute(0, 2, 3, 1)  # (B, 1, T, C) contiguous: the memory as it lies
        windows = rows.as_strided((B, frames, kernel * C), (T * C, stride * C, 1))
        windows = windows.reshape(-1, kernel * C).contiguous()  # a copy only where windows overlap
        weight = self.weight.permute(0, 2, 3, 1).reshape(self.weight.shape[0], -1)  # a view
        out = torch.ops.mkldnn._linear_pointwise(windows, weight, self.bias, attr, [], "none")
        return out.view(B, 1, frames, -1).permute(0, 3, 1, 2)  # (B, C_out, 1, T') channels-last

    def _one_channel(self, x: torch.Tensor) -> torch.Tensor:
        """One input channel (a waveform): oneDNN would answer in the plain layout (and reorder
        twice); a strided view of the padded signal times the kernel writes ``(B, T', C_out)``,
        which is the channels-last output itself."""
        pad, stride, kernel = self.padding[1], self.stride[1], self.weight.shape[-1]
        signal = F.pad(x.reshape(x.shape[0], x.shape[-1]), (pad, pad))  # (B, T + 2 pad)
        frames = signal.unfold(-1, kernel, stride)  # (B, T', k)
        out = frames @ self.weight.reshape(-1, kernel).t()  # (B, T', C_out)
        if self.bias is not None:
            out += self.bias
        return out.transpose(1, 2).unsqueeze(2)  # (B, C_out, 1, T') channels-last


@functools.cache
def pointwise_fusion(dtype: torch.dtype) -> bool:
    """True when oneDNN's fused convolution kernels (``torch.ops.mkldnn._convolution_pointwise``,
    what torch.compile's CPU backend emits) exist here and compute what the plain ops do."""
    if not torch.backends.mkldnn.is_available() or dtype not in (torch.float32, torch.bfloat16):
        return False
    try:
        gen = torch.Generator().manual_seed(0)  # not the global generator: callers' seeds stay
        x = torch.randn(1, 4, 1, 16, generator=gen).to(dtype).contiguous(memory_format=CHANNELS_LAST)
        weight = torch.randn(4, 4, 1, 3, generator=gen).to(dtype).contiguous(memory_format=CHANNELS_LAST)
        bias = torch.randn(4, generator=gen).to(dtype)
        args = (weight, bias, (0, 1), (1, 1), (1, 1), 1)
        with torch.inference_mode():
            got = torch.ops.mkldnn._convolution_pointwise(x, *args, "leaky_relu", [0.1], "")
            gelu = torch.ops.mkldnn._convolution_pointwise(x, *args, "gelu", [], "none")
            plus = torch.ops.mkldnn._convolution_pointwise.binary(x, x, *args, "add", 1.0, None, [], None)
            want = F.conv2d(x, weight, bias, padding=(0, 1))
        tol = 1e-5 if dtype == torch.float32 else 2e-2
        ok = torch.allclose(got.float(), F.leaky_relu(want, 0.1).float(), atol=tol, rtol=tol)
        ok = ok and torch.allclose(gelu.float(), F.gelu(want.float()), atol=tol, rtol=tol)
        return ok and torch.allclose(plus.float(), (want + x).float(), atol=tol, rtol=tol)
    except (AttributeError, RuntimeError) as err:  # a build without the fused kernels
        log.info("oneDNN fused convolutions unavailable (%s); plain convolutions and activations", err)
        return False


def convs_as_2d(module: nn.Module) -> int:
    """Replace every ``Conv1d``/``ConvTranspose1d`` inside ``module`` by :class:`Conv1dAs2d`, in place.

    The 1-D layers (and their weight-norm parameters) are dropped; returns how many were replaced.
    The module then takes ``to_2d`` inputs; use it for inference only.
    """
    count = 0
    for name, child in module.named_children():
        if isinstance(child, nn.Conv1d | nn.ConvTranspose1d):
            setattr(module, name, Conv1dAs2d(child))
            count += 1
        else:
            count += convs_as_2d(child)
    return count


def to_2d(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T) -> (B, C, 1, T) channels-last (one copy, unless already laid out so)."""
    return x.unsqueeze(2).contiguous(memory_format=CHANNELS_LAST)


def from_2d(x: torch.Tensor) -> torch.Tensor:
    """(B, C, 1, T) -> (B, C, T) contiguous."""
    return x.squeeze(2).contiguous()
