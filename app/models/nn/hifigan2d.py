"""The HiFi-GAN generator on channels-last activations, with the padding of a fixed-length input masked.

:class:`HiFiGAN2d` runs a :class:`~app.models.nn.hifigan.HiFiGANGenerator` (its 1-D convolutions as
channels-last 2-D ones, :mod:`app.models.nn.layout`) on a ``(B, C, 1, L)`` input of which only the
first ``valid`` frames are real: after every convolution the samples past the real ones are set to
zero, so each layer sees exactly the zero padding it would see at the end of a ``valid``-frame input
and the first ``valid * hop`` output samples are those of the unpadded decode. With every input
padded to one length the network meets one shape only: oneDNN builds its kernels once (in bf16 ~1 s
per 100 frames at first sight of a length, and ~100 MB of state per length in this layout) instead
of at every request.

The leaky ReLU after a residual block's first convolution and the residual sum after its second are
fused into the convolutions where oneDNN has the fused kernels (float32 gives the same values; bf16
rounds once instead of twice).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from app.models.nn.hifigan import LRELU_SLOPE, ResBlock1
from app.models.nn.layout import Conv1dAs2d


def _zero_tail(x: torch.Tensor, valid: int) -> torch.Tensor:
    """Sets ``x[..., valid:]`` to zero in place (a fresh tensor of this module); returns ``x``."""
    if valid < x.shape[-1]:
        x[..., valid:] = 0
    return x


class _ResBlock1As2d(nn.Module):
    """:class:`~app.models.nn.hifigan.ResBlock1` on channels-last input, padding masked."""

    def __init__(self, block: ResBlock1) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(Conv1dAs2d(c) for c in block.convs1)
        self.convs2 = nn.ModuleList(Conv1dAs2d(c) for c in block.convs2)

    def forward(self, x: torch.Tensor, valid: int) -> torch.Tensor:
        """(B, C, 1, T) -> (B, C, 1, T), zero past ``valid``; ``x`` is left as it is."""
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            xt = _zero_tail(c1.leaky_relu(F.leaky_relu(x, LRELU_SLOPE), LRELU_SLOPE), valid)
            x = _zero_tail(c2.plus(xt, x), valid)
        return x


class HiFiGAN2d(nn.Module):
    """A :class:`HiFiGANGenerator` (residual blocks of type "1") for inference on channels-last input;
    also so-vits-svc's NSF generator (the same stages, plus its excitation added after each upsampling
    through ``noise_convs``; the excitation itself is made outside, from the whole f0).

    The weights are copied (weight norm folded); the generator given is left as it is.
    """

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        if not all(isinstance(b, ResBlock1) for b in generator.resblocks):
            raise ValueError("HiFiGAN2d converts generators with residual blocks of type '1' only")
        self.num_kernels = generator.num_kernels
        self.conv_pre = Conv1dAs2d(generator.conv_pre)
        self.cond = Conv1dAs2d(generator.cond) if hasattr(generator, "cond") else None
        self.ups = nn.ModuleList(Conv1dAs2d(up) for up in generator.ups)
        self.rates = [up.stride[0] for up in generator.ups]
        self.resblocks = nn.ModuleList(_ResBlock1As2d(b) for b in generator.resblocks)
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
        if (excitation is None) != (self.noise_convs is None):
            raise ValueError("an NSF generator takes its excitation, a plain HiFi-GAN none")
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
