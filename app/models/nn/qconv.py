"""Block-scaled int8 convolutions on channels-last activations: the fast mode's HiFi-GAN residual blocks.

The VITS decoder is ~95 % convolutions, and in bfloat16 they already run near the CPU's peak
(measured on a 2-core Zen 4, 1 thread: 175-215 GFLOP/s for AVX512-BF16's ~230). oneDNN's int8
convolutions (VNNI, AMX where present) do twice the multiply-adds per instruction: ~400-440 GOP/s
on the same shapes. So the residual blocks' convolutions run as int8 weights times uint8
activations:

- weights: one scale per output channel (symmetric, max|w| -> 127), from the float32 weights;
- activations: one scale and zero point per *block* of output samples (:data:`BLOCK_SAMPLES`,
  ~15 ms at the last stage's 32 kHz), over the input window that block reads (the block and the
  convolution's reach on both sides), zero always exact. One scale per whole activation was
  measured first and dropped: on a trained decoder (``bench/decoder_quality.py``, Piper's) a
  scale set by the loud passages leaves the quiet ones a few codes, audible as noise (DNSMOS
  -0.18, 12.7 dB log-spectral distance); per ~256-sample blocks the audio is as close to float32
  as bf16's.
- the native ``quantize_blocks`` (``app/models/gpt/csrc/quantize.cpp``, the leaky ReLU before the
  convolution fused) lays the blocks' windows out one after another as a batch; one oneDNN call
  convolves them all with zero point 0 and scale 1 ("valid": a window holds its own padding), and
  the native ``finish_blocks`` applies each block's scale and zero point (``zero * sum(w)``), the
  bias and the residual, writing the output in time order.

A dilated convolution (dilation ``d``) runs as an undilated one over ``d`` interleaved phases: a
window of ``block + 2 reach`` samples (a multiple of ``d``) in channels-last memory is the
``(rows, d)`` image whose rows hold every ``d``-th sample, and a ``(k, 1)`` kernel over the rows is
the dilated ``k``-tap kernel over time (oneDNN's dilated int8 kernels ran at ~60 % of its plain
ones). Calls take :data:`MAX_BLOCKS` blocks, a remainder in powers of two: oneDNN meets a few
batch sizes only, whatever the input's length.
"""

from __future__ import annotations

import functools
import logging
import math

import torch
import torch.nn.functional as F
from torch import nn

from app.models.gpt import native  # the project's native CPU kernels
from app.models.nn.int8 import int8_rows
from app.models.nn.layout import CHANNELS_LAST, Conv1dAs2d

log = logging.getLogger(__name__)

# Output samples per activation scale (rounded up to a multiple of the dilation): ~15 ms at the v2
# decoder's last stage (32 kHz), 48 ms at 10 kHz, one block for a 16-frame window's first stage.
BLOCK_SAMPLES = 480
# Blocks per oneDNN call (a remainder goes in powers of two).
MAX_BLOCKS = 32


def int8_pays(channels: int) -> bool:
    """Whether a residual block of ``channels`` channels runs int8 (else bf16): where oneDNN's
    int8 kernels beat its bf16 ones. Measured on a 2-core Zen 4 (2 threads, a kernel-11
    convolution over 10 s of a decoder stage, quantising and finishing included, int8 / bf16 ms):
    16 ch 5.0 / 4.1, 24 ch 11.5 / 12.1, 48 ch 12.5 / 18.8, 96 ch 27.4 / 35.7, 192 ch 82.8 / 71.7,
    256 ch 9.4 / 15.9, 384 ch 151.7 / 37.0 (oneDNN's int8 kernel for 192 and 384 channels ran at a
    third of its rate on the others)."""
    return 32 <= channels <= 128 or channels == 256


def _calls(blocks: int) -> list[tuple[int, int]]:
    """``(first block, blocks)`` of each call: ``MAX_BLOCKS`` at a time, the rest in powers of two
    (its binary digits): no padding, and oneDNN meets at most log2(MAX_BLOCKS) + 1 batch sizes."""
    out, first = [], 0
    while blocks - first >= MAX_BLOCKS:
        out.append((first, MAX_BLOCKS))
        first += MAX_BLOCKS
    size = MAX_BLOCKS // 2
    while first < blocks:
        if blocks - first >= size:
            out.append((first, size))
            first += size
        size //= 2
    return out


class Int8Conv(nn.Module):
    """A stride-1, ungrouped, length-keeping :class:`Conv1dAs2d` (odd kernel) as a block-scaled
    int8 convolution.

    ``conv(x, slope, residual=None)``: ``x`` (1, C_in, 1, T) channels-last float32 or bf16 ->
    ``conv(leaky_relu(x, slope)) (+ residual)``, (1, C_out, 1, T) channels-last in ``x``'s dtype;
    slope 1 convolves ``x`` itself.
    """

    def __init__(self, conv: Conv1dAs2d, block: int = BLOCK_SAMPLES) -> None:
        super().__init__()
        kernel, dilation, pad = conv.weight.shape[-1], conv.dilation[1], conv.padding[1]
        if (
            conv.transposed
            or conv.stride[1] != 1
            or conv.groups != 1
            or 2 * pad != dilation * (kernel - 1)
            or kernel % 2 == 0
        ):
            raise ValueError(
                "int8 convolutions are stride-1, ungrouped, of an odd kernel and keep the length"
                " (padding = dilation * (kernel - 1) / 2)"
            )
        codes, scale = int8_rows(conv.weight)  # (out, in, 1, k)
        self.weight_scale = scale.contiguous()
        # What a block's zero point adds to each output: zero * scale * sum of the output's codes.
        self.colsum = (scale * codes.sum(dim=(1, 2, 3)).float()).contiguous()
        self.weight_zero = torch.zeros(scale.shape[0], dtype=torch.int64)
        self.bias = None if conv.bias is None else conv.bias.detach().float().contiguous()
        taps = codes.permute(0, 1, 3, 2).contiguous()  # (out, in, k, 1): taps over rows
        self.packed = torch.ops.onednn.qconv_prepack(
            taps, self.weight_scale, 1.0, 0, [1, 1], [0, 0], [1, 1], 1, None
        )
        self.dilation, self.reach = dilation, pad
        self.block = dilation * math.ceil(block / dilation)
        self.out_channels = scale.shape[0]

    def forward(
        self, x: torch.Tensor, slope: float = 1.0, residual: torch.Tensor | None = None
    ) -> torch.Tensor:
        halves = native.block_quantiser()
        if halves is None:
            raise RuntimeError(
                "int8 convolutions need the native kernels (quantize_blocks); use the bf16 decoder"
            )
        quantise, finish = halves
        samples, channels = x.shape[-1], x.shape[1]
        blocks = math.ceil(samples / self.block)
        calls = _calls(blocks)
        codes, scales, zeros = quantise(x, slope, self.block, self.reach, blocks)
        window = self.block + 2 * self.reach
        # Each window as the (rows, phases) image: channels-last memory as it lies.
        image = codes.view(blocks, window // self.dilation, self.dilation, channels).permute(0, 3, 1, 2)
        out = torch.empty(1, self.out_channels, 1, samples, dtype=x.dtype, memory_format=CHANNELS_LAST)
        for first, count in calls:
            acc = torch.ops.onednn.qconv2d_pointwise(
                image[first : first + count], 1.0, 0, self.packed, self.weight_scale, self.weight_zero, None,
                [1, 1], [0, 0], [1, 1], 1, 1.0, 0, torch.float32, "none", [], None,
            )  # fmt: skip
            span = slice(first, first + count)
            finish(
                acc,
                scales[span],
                zeros[span],
                self.colsum,
                self.bias,
                residual,
                out,
                self.block,
                first * self.block,
            )
        return out


@functools.cache
def int8_convolutions() -> bool:
    """True when oneDNN's int8 convolutions and the native quantiser exist here and come within
    int8's error of the float convolution (dilated and plain, the largest codes included)."""
    if not torch.backends.mkldnn.is_available() or native.block_quantiser() is None:
        return False
    try:
        gen = torch.Generator().manual_seed(0)  # not the global generator: callers' seeds stay
        for dilation in (1, 3):
            conv = nn.Conv1d(8, 8, 3, padding=dilation, dilation=dilation)
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen))
                conv.weight[0] = conv.weight[0].abs()  # all-positive weights against the largest codes
            x = torch.randn(1, 8, 1, 700, generator=gen).contiguous(memory_format=CHANNELS_LAST)
            x[..., 600:] = x[..., 600:].abs() * 50  # a loud passage: codes up to 255
            with torch.inference_mode():
                layer = Conv1dAs2d(conv)
                got = Int8Conv(layer)(x)
                want = F.conv2d(x, layer.weight, layer.bias, (1, 1), layer.padding, layer.dilation)
            error = float((got - want).norm() / want.norm())
            if not error < 0.02:
                log.info("oneDNN int8 convolutions off by %.3g of float32; bf16 decoder", error)
                return False
        return True
    except (AttributeError, RuntimeError) as err:  # a build without them
        log.info("oneDNN int8 convolutions unavailable (%s); bf16 decoder", err)
        return False
