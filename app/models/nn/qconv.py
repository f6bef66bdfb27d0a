"""Int8 convolutions on channels-last activations: the fast mode's HiFi-GAN residual blocks on CPU.

The VITS decoder is ~95 % convolutions, and in bfloat16 they already run near the CPU's peak
(measured on a 2-core Zen 4, 1 thread: 175-215 GFLOP/s for AVX512-BF16's ~230). oneDNN's int8
convolutions (VNNI, AMX where present) do twice the multiply-adds per instruction: ~400-440 GOP/s
on the same shapes. So the residual blocks' convolutions (v2: ~90 % of the decoder's arithmetic)
run as int8 weights times uint8 activations:

- weights: one scale per output channel (symmetric, max|w| -> 127), from the float32 weights;
- activations: each convolution's input is quantised whole, once per call, with one scale and zero
  point (asymmetric over its range, zero always exact: padding stays padding), by the native
  ``quantize_u8`` (``app/models/gpt/csrc/quantize.cpp``, the leaky ReLU before it fused);
- int32 sums, both scales and the bias applied by oneDNN, the output in the decoder's dtype.

A dilated convolution (dilation ``d``, padding a multiple of ``d``) runs as an undilated one over
``d`` interleaved phases: in channels-last memory ``(T, C)`` the input viewed as ``(T / d, d, C)`` is
the 2-D image whose rows are the phases' samples, and a ``(k, 1)`` kernel over its rows is the
dilated ``k``-tap kernel over time (oneDNN's dilated int8 kernels run at ~60 % of its plain ones).
A window whose length is not a multiple of ``d`` is widened past its end: :class:`Codes` buffers
go on with codes of zero, and the outputs of the widening are cut off (they are not the window's).

Measured in the v2 decoder (random weights, float32 reference, same latent): the int8 residual
blocks' audio within ~48 dB of float32's (bf16's decoder ~37 dB); ``bench/tts_cpu.py`` reports the
fast mode's whole-pipeline deviation.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from app.models.gpt import native  # the project's native CPU kernels
from app.models.nn.layout import CHANNELS_LAST, Conv1dAs2d

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Codes:
    """A ``(1, C, 1, T)`` channels-last activation as uint8 codes: value = (code - zero_point) * scale.

    ``codes`` is a view of a buffer whose codes go on past ``T`` with ``zero_point`` (zeros) for
    ``tail`` samples, so a window may be widened past the activation's end (:class:`Int8Conv`).
    """

    codes: torch.Tensor
    scale: float
    zero_point: int

    @classmethod
    def of(cls, x: torch.Tensor, slope: float = 1.0, tail: int = 0) -> Codes:
        """``leaky_relu(x, slope)`` (slope 1: ``x``) of a ``(1, C, 1, T)`` channels-last float32 or
        bf16 activation, quantised whole; ``tail`` samples of zero codes after it."""
        kernel = native.quantize_u8_kernel()
        if kernel is None:
            raise RuntimeError(
                "int8 convolutions need the native kernels (quantize_u8); use the bf16 decoder"
            )
        if (
            x.dim() != 4
            or x.shape[0] != 1
            or x.shape[2] != 1
            or not x.is_contiguous(memory_format=CHANNELS_LAST)
        ):
            raise ValueError(f"expected a (1, C, 1, T) channels-last activation, got {tuple(x.shape)}")
        channels, samples = x.shape[1], x.shape[-1]
        flat, scale, zero_point = kernel(x, slope, tail * channels)
        codes = flat[: channels * samples].view(1, 1, samples, channels).permute(0, 3, 1, 2)
        return cls(codes, scale, zero_point)

    def dequantize(self) -> torch.Tensor:
        """The float32 values the codes stand for, ``(1, C, 1, T)``."""
        return (self.codes.float() - self.zero_point) * self.scale


class Int8Conv(nn.Module):
    """A stride-1, ungrouped, length-keeping :class:`Conv1dAs2d` as oneDNN's int8 convolution.

    ``conv(codes, scale, zero_point, dtype)``: ``codes`` a ``(1, C_in, 1, L)`` window of a
    :class:`Codes` buffer (at least :attr:`tail` codes of it must follow the window) -> ``(1, C_out,
    1, L)`` channels-last in ``dtype``, the float convolution of the dequantised input with the
    int8 weights. The layer's zero padding holds at the buffer's ends; where a dilated layer widens
    the window (see the module's notes), the outputs within the layer's reach of the window's end
    read the codes after it, as a window of :func:`~app.models.nn.hifigan2d.tiled` reads its halo
    (and it keeps none of those outputs).
    """

    def __init__(self, conv: Conv1dAs2d) -> None:
        super().__init__()
        kernel, dilation, pad = conv.weight.shape[-1], conv.dilation[1], conv.padding[1]
        if conv.transposed or conv.stride[1] != 1 or conv.groups != 1 or 2 * pad != dilation * (kernel - 1):
            raise ValueError(
                "int8 convolutions are stride-1, ungrouped and keep the length (padding = dilation * (kernel - 1) / 2)"
            )
        weight = conv.weight.detach().float()  # (out, in, 1, k)
        scale = (weight.abs().amax(dim=(1, 2, 3)) / 127).clamp_min(torch.finfo(torch.float32).tiny)
        codes = torch.round(weight / scale[:, None, None, None]).clamp_(-127, 127).to(torch.int8)
        self.phases = dilation if dilation > 1 and pad % dilation == 0 else 1
        if self.phases > 1:  # the taps over rows of the (L / d, d) phase image
            codes = codes.permute(0, 1, 3, 2).contiguous()  # (out, in, k, 1)
            self.geometry = ([1, 1], [pad // dilation, 0], [1, 1])
        else:
            self.geometry = ([1, 1], [0, pad], [1, dilation])
        self.weight_scale = scale.contiguous()
        self.weight_zero = torch.zeros(scale.shape[0], dtype=torch.int64)
        self.bias = None if conv.bias is None else conv.bias.detach().float().contiguous()
        self.packed = torch.ops.onednn.qconv_prepack(
            codes, self.weight_scale, 1.0, 0, *self.geometry, 1, None
        )
        # Codes a window may be widened by past its end.
        self.tail = self.phases - 1

    def forward(self, codes: torch.Tensor, scale: float, zero_point: int, dtype: torch.dtype) -> torch.Tensor:
        _, channels, _, length = codes.shape
        rows = math.ceil(length / self.phases)
        width = rows * self.phases
        image = codes
        if self.phases > 1:  # the window widened to whole phases, as the (rows, phases) image
            image = torch.as_strided(
                codes,
                (1, channels, rows, self.phases),
                (width * channels, 1, self.phases * channels, channels),
                codes.storage_offset(),
            )
        out = torch.ops.onednn.qconv2d_pointwise(
            image, scale, zero_point, self.packed, self.weight_scale, self.weight_zero, self.bias,
            *self.geometry, 1, 1.0, 0, dtype, "none", [], None,
        )  # fmt: skip
        if self.phases == 1:
            return out
        # (1, C_out, rows, phases) channels-last is (width, C_out) in time order; the widening cut off.
        return out.permute(0, 2, 3, 1).reshape(1, 1, width, -1)[:, :, :length].permute(0, 3, 1, 2)


@functools.cache
def int8_convolutions() -> bool:
    """True when oneDNN's int8 convolutions and the native quantiser exist here and compute what the
    float convolution of the dequantised codes does (dilated and plain, extreme codes included)."""
    if not torch.backends.mkldnn.is_available() or native.quantize_u8_kernel() is None:
        return False
    try:
        gen = torch.Generator().manual_seed(0)  # not the global generator: callers' seeds stay
        for dilation in (1, 3):
            conv = nn.Conv1d(8, 8, 3, padding=dilation, dilation=dilation)
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen))
                conv.weight[0] = conv.weight[0].abs()  # all-positive weights against the largest codes
            x = torch.randn(1, 8, 1, 37, generator=gen).contiguous(memory_format=CHANNELS_LAST)
            x[..., 5] = 100.0
            with torch.inference_mode():
                layer = Conv1dAs2d(conv)
                q, exact = Int8Conv(layer), Codes.of(x, 0.1, tail=2)
                got = q(exact.codes, exact.scale, exact.zero_point, torch.float32)
                dequant_w = torch.round(layer.weight / q.weight_scale[:, None, None, None]).clamp(-127, 127)
                want = F.conv2d(
                    exact.dequantize(), dequant_w * q.weight_scale[:, None, None, None], layer.bias,
                    (1, 1), layer.padding, layer.dilation,
                )  # fmt: skip
            if not torch.allclose(got, want, atol=1e-3, rtol=1e-4):
                log.info("oneDNN int8 convolutions disagree with float (max error %.3g); bf16 decoder",
                         float((got - want).abs().max()))  # fmt: skip
                return False
        return True
    except (AttributeError, RuntimeError) as err:  # a build without them
        log.info("oneDNN int8 convolutions unavailable (%s); bf16 decoder", err)
        return False
