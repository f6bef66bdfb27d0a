"""The HiFi-GAN generator on channels-last activations, with the padding of a fixed-length input masked.

:class:`HiFiGAN2d` runs a :class:`~app.models.nn.hifigan.HiFiGANGenerator` (its 1-D convolutions as
channels-last 2-D ones, :mod:`app.models.nn.layout`) on a ``(B, C, 1, L)`` input of which only the
first ``valid`` frames are real: after every convolution the samples past the real ones are set to
zero, so each layer sees exactly the zero padding it would see at the end of a ``valid``-frame input
and the first ``valid * hop`` output samples are those of the unpadded decode. With every input
padded to one length the network meets one shape only: oneDNN builds its kernels once (in bf16 ~1 s
per 100 frames at first sight of a length, and ~100 MB of state per length in this layout) instead
of at every request.

An input longer than every such length goes through :meth:`HiFiGAN2d.tiled`: layer by layer, the
activations between layers held whole (C x T: a few MB), each convolution run on windows of exactly
the lengths it has in :meth:`HiFiGAN2d.forward` at those lengths (:func:`tile`, :func:`tiled`), so
oneDNN still meets only the shapes it has built, and a window's seams cost that one layer's reach
(a few samples at its rate) instead of the whole network's receptive field (v2: 15 frames each
side; 500 frames cost 640 in whole-network windows of 128, ~515 layer by layer). The whole
activations cost memory in proportion to the input (v2: ~120 KB per frame), so the caller
(:class:`~app.infer.decoder.FixedWindowDecoder`) bounds the length it hands over.

The leaky ReLU after a residual block's first convolution and the residual sum after its second are
fused into the convolutions where oneDNN has the fused kernels (float32 gives the same values; bf16
rounds once instead of twice).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from app.models.nn.hifigan import LRELU_SLOPE, ResBlock1
from app.models.nn.layout import Conv1dAs2d
from app.models.nn.qconv import Int8Conv, int8_pays


def _zero_tail(x: torch.Tensor, valid: int) -> torch.Tensor:
    """Sets ``x[..., valid:]`` to zero in place (a fresh tensor of this module); returns ``x``."""
    if valid < x.shape[-1]:
        x[..., valid:] = 0
    return x


def _halo(conv: Conv1dAs2d) -> int:
    """Input samples a window of ``conv`` needs on each side of the inputs whose outputs it keeps.

    A stride-1 convolution's output ``t`` reads inputs ``t - p .. t - p + d (k - 1)``; a transposed
    one's (stride ``s``) reads inputs ``(t + p - j) / s`` for taps ``j < k``: from
    ``ceil((k - 1 - p) / s)`` inputs before its own up to ``ceil((p + s - 1) / s)`` after.
    """
    kernel, stride, pad, dilation = conv.weight.shape[-1], conv.stride[1], conv.padding[1], conv.dilation[1]
    if conv.transposed:
        return math.ceil(max(kernel - 1 - pad, pad + stride - 1, 0) / stride)
    if stride != 1:
        raise ValueError("tiled convolutions are stride 1 or transposed")
    return max(pad, dilation * (kernel - 1) - pad)


def tile(samples: int, halo: int, lengths: Sequence[int]) -> list[tuple[int, int, int, int]]:
    """``(start, length, keep_from, keep_to)`` windows inside ``[0, samples)`` whose kept ranges
    tile it: each kept sample has ``halo`` inputs of the window on every side that is not an end of
    the input (the first window starts at 0, the last ends at ``samples``: there the convolution's
    own zero padding is the input's). The longest length that fits while what is left needs it, the
    shortest that reaches the end last. ``lengths`` ascend; those without room for the halos are unused.
    """
    usable = [n for n in lengths if 2 * halo < n <= samples]
    if not usable:
        raise ValueError(
            f"no window length within {samples} samples exceeds twice the halo ({halo}): {tuple(lengths)}"
        )
    out, keep = [], 0
    while keep < samples:
        if keep == 0:
            start, length = 0, usable[-1]
        else:
            last = next((n for n in usable if n - halo >= samples - keep), None)
            length = usable[-1] if last is None else last
            start = keep - halo if last is None else samples - length
        end = samples if start + length == samples else start + length - halo
        out.append((start, length, keep, end))
        keep = end
    return out


class Buffers:
    """Reusable full-length channels-last activations of one tiled decode.

    A fresh tensor of a few MB is memory the kernel maps and faults in page by page (v2, 500
    frames, 1 thread: ~0.25 s of a 2.4 s decode); a buffer handed back is taken again instead.
    """

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype
        self.free: dict[int, list[torch.Tensor]] = {}

    def take(self, channels: int, samples: int) -> torch.Tensor:
        """A (1, channels, 1, samples) channels-last tensor (contents undefined)."""
        size = channels * samples
        pool = self.free.get(size)
        flat = pool.pop() if pool else torch.empty(size, dtype=self.dtype)
        return flat.view(1, 1, samples, channels).permute(0, 3, 1, 2)

    def give(self, *tensors: torch.Tensor) -> None:
        """Hands back tensors :meth:`take` gave (they must not be used after)."""
        for t in tensors:
            flat = t.permute(0, 2, 3, 1).reshape(-1)  # a view: channels-last memory as it lies
            self.free.setdefault(flat.numel(), []).append(flat)

    def leaky_relu(self, x: torch.Tensor, slope: float) -> torch.Tensor:
        """``leaky_relu(x, slope)`` into a taken buffer."""
        return torch.ops.aten.leaky_relu.out(x, slope, out=self.take(x.shape[1], x.shape[-1]))


def tiled(
    conv: Conv1dAs2d,
    x: torch.Tensor,
    lengths: Sequence[int],
    run: Callable[..., torch.Tensor] | None = None,
    residual: torch.Tensor | None = None,
    buffers: Buffers | None = None,
) -> torch.Tensor:
    """``run(x)`` (default ``conv(x)``; ``run(x, residual)`` with a residual) of a stride-1 or
    transposed ``conv`` over an input of any length (at least the shortest of ``lengths``),
    computed on windows of exactly the ``lengths`` given (input samples) that :func:`tile` lays
    out: every kept output sample is the whole input's, while oneDNN only meets the window
    shapes. ``x`` and ``residual`` (the output's length) are (1, C, 1, T) channels-last; the
    windows are views of them, each window's kept output is copied once (into a buffer taken
    from ``buffers``, or a fresh one)."""
    run = conv if run is None else run
    halo, ratio, samples = _halo(conv), conv.stride[1] if conv.transposed else 1, x.shape[-1]
    out = None
    for start, length, a, b in tile(samples, halo, lengths):
        window = x[..., start : start + length]
        if residual is None:
            y = run(window)
        else:
            y = run(window, residual[..., start * ratio : (start + length) * ratio])
        if y.shape[-1] != length * ratio:
            raise ValueError(f"tiled convolutions keep the length (times a transposed stride), got {y.shape}")
        if out is None:
            out = (buffers or Buffers(y.dtype)).take(y.shape[1], samples * ratio)
        out[..., a * ratio : b * ratio] = y[..., (a - start) * ratio : (b - start) * ratio]
    assert out is not None
    return out


class _ResBlock1As2d(nn.Module):
    """:class:`~app.models.nn.hifigan.ResBlock1` on channels-last input, padding masked; with
    ``int8``, its convolutions as :class:`~app.models.nn.qconv.Int8Conv` (batch 1) where that pays
    for its width (:func:`~app.models.nn.qconv.int8_pays`)."""

    def __init__(self, block: ResBlock1, int8: bool = False) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(Conv1dAs2d(c) for c in block.convs1)
        self.convs2 = nn.ModuleList(Conv1dAs2d(c) for c in block.convs2)
        pays = int8 and int8_pays(block.convs1[0].in_channels)
        self.int8 = (
            None
            if not pays
            else nn.ModuleList(nn.ModuleList((Int8Conv(c1), Int8Conv(c2))) for c1, c2 in self._pairs())
        )

    def _pairs(self) -> list[tuple[Conv1dAs2d, Conv1dAs2d]]:
        return list(zip(self.convs1, self.convs2, strict=True))

    def forward(self, x: torch.Tensor, valid: int) -> torch.Tensor:
        """(B, C, 1, T) -> (B, C, 1, T), zero past ``valid``; ``x`` is left as it is."""
        if self.int8 is not None:
            return self._forward_int8(x, valid)
        for c1, c2 in self._pairs():
            xt = _zero_tail(c1.leaky_relu(F.leaky_relu(x, LRELU_SLOPE), LRELU_SLOPE), valid)
            x = _zero_tail(c2.plus(xt, x), valid)
        return x

    def _forward_int8(self, x: torch.Tensor, valid: int) -> torch.Tensor:
        """:meth:`forward` with block-scaled int8 convolutions (the leaky ReLUs fused into their
        quantisers, the residual sum into the second's finishing pass)."""
        for q1, q2 in self.int8:
            xt = _zero_tail(q1(x, LRELU_SLOPE), valid)
            x = _zero_tail(q2(xt, LRELU_SLOPE, residual=x), valid)
        return x

    def tiled(self, x: torch.Tensor, lengths: Sequence[int], buffers: Buffers) -> torch.Tensor:
        """:meth:`forward` on an input of any length, each convolution in windows of ``lengths``;
        the result is a buffer of ``buffers``, ``x`` is left as it is."""
        if self.int8 is not None:  # int8 convolutions tile themselves (blocks, a few batch sizes)
            return self._forward_int8(x, x.shape[-1])
        out = x
        for c1, c2 in self._pairs():

            def act(w: torch.Tensor, c1: Conv1dAs2d = c1) -> torch.Tensor:
                return c1.leaky_relu(w, LRELU_SLOPE)

            a = buffers.leaky_relu(out, LRELU_SLOPE)
            xt = tiled(c1, a, lengths, act, buffers=buffers)
            nxt = tiled(c2, xt, lengths, c2.plus, residual=out, buffers=buffers)
            buffers.give(a, xt, *([] if out is x else [out]))
            out = nxt
        return out


class HiFiGAN2d(nn.Module):
    """A :class:`HiFiGANGenerator` (residual blocks of type "1") for inference on channels-last input;
    also so-vits-svc's NSF generator (the same stages, plus its excitation added after each upsampling
    through ``noise_convs``; the excitation itself is made outside, from the whole f0).

    The weights are copied (weight norm folded); the generator given is left as it is. With
    ``int8`` the residual blocks' convolutions run as :class:`~app.models.nn.qconv.Int8Conv`
    (quantised from the float32 weights given; batch 1 only, see :mod:`app.models.nn.qconv`).
    """

    def __init__(self, generator: nn.Module, int8: bool = False) -> None:
        super().__init__()
        if not all(isinstance(b, ResBlock1) for b in generator.resblocks):
            raise ValueError("HiFiGAN2d converts generators with residual blocks of type '1' only")
        self.num_kernels = generator.num_kernels
        self.conv_pre = Conv1dAs2d(generator.conv_pre)
        self.cond = Conv1dAs2d(generator.cond) if hasattr(generator, "cond") else None
        self.ups = nn.ModuleList(Conv1dAs2d(up) for up in generator.ups)
        self.rates = [up.stride[0] for up in generator.ups]
        self.resblocks = nn.ModuleList(_ResBlock1As2d(b, int8) for b in generator.resblocks)
        self.conv_post = Conv1dAs2d(generator.conv_post)
        self.in_channels = generator.conv_pre.in_channels
        self.gin_channels = generator.cond.in_channels if self.cond is not None else 0
        noise_convs = getattr(generator, "noise_convs", None)  # an NSF generator's excitation inputs
        self.noise_convs = None if noise_convs is None else nn.ModuleList(Conv1dAs2d(c) for c in noise_convs)

    def forward(
        self,
        x: torch.Tensor,
        g: torch.Tensor | None = None,
        valid: int | None = None,
        excitation: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (B, initial_channel, 1, L) channels-last, g (B, gin, 1, 1 or L) or None, ``valid`` real
        frames (default all), an NSF generator's excitation (B, 1, 1, L * prod(rates)) ->
        (B, 1, 1, L * prod(rates)); samples past ``valid * prod(rates)`` are zero."""
        self._check_excitation(excitation)
        valid = x.shape[-1] if valid is None else valid
        x = self.conv_pre(x)
        if self.cond is not None and g is not None:
            x = x + self.cond(g)
        _zero_tail(x, valid)
        for i, up in enumerate(self.ups):
            valid *= self.rates[i]
            x = up(F.leaky_relu(x, LRELU_SLOPE, inplace=True))
            if self.noise_convs is not None:
                x += self.noise_convs[i](excitation)
            _zero_tail(x, valid)
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            xs = blocks[0](x, valid)
            for block in blocks[1:]:
                xs += block(x, valid)
            x = xs.div_(self.num_kernels)
        # Upstream uses torch's default slope (0.01) here, not LRELU_SLOPE.
        x = _zero_tail(self.conv_post(F.leaky_relu(x, inplace=True)), valid)
        return torch.tanh_(x)

    def _check_excitation(self, excitation: torch.Tensor | None) -> None:
        if (excitation is None) != (self.noise_convs is None):
            raise ValueError("an NSF generator takes its excitation, a plain HiFi-GAN none")

    def tiled(
        self,
        x: torch.Tensor,
        lengths: Sequence[int],
        g: torch.Tensor | None = None,
        excitation: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """:meth:`forward`'s output for an input of any number of frames, every convolution run in
        windows of exactly the lengths it has when :meth:`forward` is given ``lengths`` frames (so
        oneDNN meets no new shape), each window with its own layer's halo of context only.

        Decoding a long input in whole-network windows recomputes the whole receptive field at
        every seam (v2: 15 frames each side, 500 frames cost 640 in 128-frame windows); layer by
        layer a seam costs that layer's reach (a few samples at the layer's rate), and the
        activations between layers (small: C x T) are held whole. A single-channel convolution (an
        NSF excitation's) runs whole: it does not go through oneDNN.
        """
        self._check_excitation(excitation)
        buffers, rate = Buffers(x.dtype), 1

        def at(rate: int) -> list[int]:
            return [n * rate for n in lengths]

        x = tiled(self.conv_pre, x, at(rate), buffers=buffers)
        if self.cond is not None and g is not None:
            x += self.cond(g) if g.shape[-1] == 1 else tiled(self.cond, g, at(rate))
        for i, up in enumerate(self.ups):
            stage_in = tiled(up, F.leaky_relu(x, LRELU_SLOPE, inplace=True), at(rate), buffers=buffers)
            buffers.give(x)
            rate *= self.rates[i]
            if self.noise_convs is not None:
                stage_in += self.noise_convs[i](excitation)
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            x = blocks[0].tiled(stage_in, at(rate), buffers)
            for block in blocks[1:]:
                part = block.tiled(stage_in, at(rate), buffers)
                x += part
                buffers.give(part)
            buffers.give(stage_in)
            x.div_(self.num_kernels)
        x = tiled(self.conv_post, F.leaky_relu(x, inplace=True), at(rate))
        return torch.tanh_(x)
