"""NSF-HiFiGAN decoder: a HiFi-GAN generator that is also fed a harmonic excitation built from f0.

Neural source-filter (Wang et al. 2019) as so-vits-svc uses it:

1. f0 (Hz per frame) is repeated to one value per output sample (nearest upsampling by
   ``hop = prod(upsample_rates)``).
2. Harmonic source: for k = 1..9, a sine of frequency ``k * f0`` with amplitude 0.1, starting
   at a random phase (0 for the fundamental); where f0 = 0 (unvoiced) the sines are silenced.
   Gaussian noise is added: std 0.003 where voiced, 0.1/3 where unvoiced.
   A Linear(9 -> 1) + tanh merges the harmonics into one excitation signal ``e`` (B, 1, N).
3. The generator upsamples the latent; after every transposed conv the excitation is brought
   to that stage's rate by a strided conv (``noise_convs``: kernel 2s, stride s, s = product of
   the remaining rates; 1x1 at the last stage) and added.

Phase: sample n of harmonic k has phase ``phi_k + sum_{m <= n} frac(k f0_m / sr)`` cycles. Since
f0 is constant within a frame, the sum is computed per frame in float64 and then inside the
frame, so long inputs keep their phase accuracy (upstream reaches the same values by an
incremental float32 sum with wrap corrections).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from app.models.nn.hifigan import LRELU_SLOPE, make_resblock
from app.models.nn.norm import WNConv1d, WNConvTranspose1d
from app.models.svc.noise import NoiseSource

HARMONICS = 9  # fundamental + 8 overtones (upstream harmonic_num=8)
SINE_AMP = 0.1  # amplitude of each sine
VOICED_NOISE_STD = 0.003
UNVOICED_NOISE_STD = SINE_AMP / 3  # so unvoiced noise peaks near the sine amplitude


INIT_STD = 0.01  # HiFi-GAN's init_weights: normal(0, 0.01)


def init_small(*modules: nn.Module) -> None:
    """HiFi-GAN's initialisation: weight-normed kernels of ``modules`` drawn from N(0, 0.01).

    Upstream calls the same ``init_weights`` on the upsampling, residual and output convs, but
    after torch's legacy ``weight_norm`` has split the kernel into ``weight_g``/``weight_v``, so the
    call changes a copy that the next forward overwrites: its models start from PyTorch's default
    (much larger) kernels. Applied for real, the small kernels let the harmonic excitation, which
    enters through the default-initialised ``noise_convs``, dominate the output from the first
    step, so a model trained from scratch follows the f0 it is given early on. Loaded weights
    replace all of this; only training from scratch sees it.
    """
    with torch.no_grad():
        for module in modules:
            for layer in module.modules():
                if hasattr(layer, "weight_v") and hasattr(layer, "weight_g"):
                    layer.weight_v.normal_(0.0, INIT_STD)
                    layer.weight_g.copy_(
                        torch.linalg.vector_norm(
                            layer.weight_v, dim=tuple(range(1, layer.weight_v.dim())), keepdim=True
                        )
                    )


def upsample_f0(f0: torch.Tensor, hop: int) -> torch.Tensor:
    """(B, T) Hz per frame -> (B, T * hop) Hz per sample (each frame value repeated)."""
    return f0.repeat_interleave(hop, dim=1)


class HarmonicSource(nn.Module):
    """f0 -> merged harmonic excitation (upstream ``SourceModuleHnNSF``; key ``l_linear``).

    Args:
        sampling_rate: output rate in Hz.
        harmonics: number of sines (fundamental included).
    """

    def __init__(self, sampling_rate: int, harmonics: int = HARMONICS) -> None:
        super().__init__()
        self.sampling_rate = sampling_rate
        self.harmonics = harmonics
        self.l_linear = nn.Linear(harmonics, 1)

    def sines(self, f0: torch.Tensor, hop: int, noise: NoiseSource) -> torch.Tensor:
        """f0 (B, T) Hz per frame -> noisy harmonic sines (B, T * hop, harmonics), float32."""
        b, t = f0.shape
        f0 = f0.float()
        k = torch.arange(1, self.harmonics + 1, device=f0.device, dtype=torch.float64)
        # Phase increment per sample, in cycles; only its fractional part matters.
        step = torch.remainder(f0.double()[:, :, None] * k / self.sampling_rate, 1.0)  # (B, T, H)
        start = noise.uniform((b, self.harmonics), f0).double()
        start[:, 0] = 0.0  # the fundamental starts at phase 0
        # Phase after the last sample of each earlier frame, then within the frame.
        before = torch.cumsum(step * hop, dim=1) - step * hop  # (B, T, H): sum over earlier frames
        offsets = torch.arange(1, hop + 1, device=f0.device, dtype=torch.float64)
        phase = (
            start[:, None, None, :]
            + before[:, :, None, :]
            + offsets[None, None, :, None] * step[:, :, None, :]
        )
        phase = torch.remainder(phase, 1.0).reshape(b, t * hop, self.harmonics)  # (B, N, H)
        sines = torch.sin(2 * math.pi * phase).float() * SINE_AMP
        voiced = (upsample_f0(f0, hop) > 0).float()[:, :, None]  # (B, N, 1)
        std = voiced * VOICED_NOISE_STD + (1 - voiced) * UNVOICED_NOISE_STD
        return sines * voiced + std * noise.normal((b, t * hop, self.harmonics), sines)

    def forward(self, f0: torch.Tensor, hop: int, noise: NoiseSource) -> torch.Tensor:
        """f0 (B, T) -> excitation (B, 1, T * hop) in (-1, 1)."""
        sines = self.sines(f0, hop, noise).to(self.l_linear.weight.dtype)
        return torch.tanh(self.l_linear(sines)).transpose(1, 2)


class NSFGenerator(nn.Module):
    """Latent frames + f0 -> waveform (upstream ``vdecoder.hifigan.models.Generator``, key ``dec``).

    Args:
        inter_channels: latent width.
        sampling_rate: output rate in Hz.
        resblock, resblock_kernel_sizes, resblock_dilation_sizes: HiFi-GAN residual blocks.
        upsample_rates, upsample_kernel_sizes, upsample_initial_channel: upsampling stages.
        gin_channels: speaker vector width (added after ``conv_pre`` via ``cond``).
        legacy_padding: innnky 32k's padding formulas, ``(k - u) // 2`` for the transposed convs
            and ``s // 2`` for the noise convs; 4.1 uses ``(k - u + 1) // 2`` and ``(s + 1) // 2``.
    """

    def __init__(
        self,
        inter_channels: int,
        sampling_rate: int,
        resblock: str,
        resblock_kernel_sizes: Sequence[int],
        resblock_dilation_sizes: Sequence[Sequence[int]],
        upsample_rates: Sequence[int],
        upsample_initial_channel: int,
        upsample_kernel_sizes: Sequence[int],
        gin_channels: int,
        legacy_padding: bool = False,
    ) -> None:
        super().__init__()
        self.hop = math.prod(upsample_rates)
        self.num_kernels = len(resblock_kernel_sizes)
        self.m_source = HarmonicSource(sampling_rate)
        self.noise_convs = nn.ModuleList()
        self.conv_pre = WNConv1d(inter_channels, upsample_initial_channel, 7, 1, padding=3)
        self.ups = nn.ModuleList()
        for i, (u, k) in enumerate(zip(upsample_rates, upsample_kernel_sizes, strict=True)):
            c_in, c_out = upsample_initial_channel // 2**i, upsample_initial_channel // 2 ** (i + 1)
            padding = (k - u) // 2 if legacy_padding else (k - u + 1) // 2
            self.ups.append(WNConvTranspose1d(c_in, c_out, k, u, padding=padding))
            s = math.prod(upsample_rates[i + 1 :])  # excitation samples per sample of this stage
            if s > 1:
                pad = s // 2 if legacy_padding else (s + 1) // 2
                self.noise_convs.append(nn.Conv1d(1, c_out, kernel_size=2 * s, stride=s, padding=pad))
            else:
                self.noise_convs.append(nn.Conv1d(1, c_out, kernel_size=1))
        self.resblocks = nn.ModuleList()
        ch = upsample_initial_channel
        for i in range(len(upsample_rates)):
            ch = upsample_initial_channel // 2 ** (i + 1)
            for k, d in zip(resblock_kernel_sizes, resblock_dilation_sizes, strict=True):
                self.resblocks.append(make_resblock(resblock, ch, k, d))
        self.conv_post = WNConv1d(ch, 1, 7, 1, padding=3)
        self.cond = nn.Conv1d(gin_channels, upsample_initial_channel, 1)
        init_small(self.ups, self.resblocks, self.conv_post)

    def forward(self, x: torch.Tensor, f0: torch.Tensor, g: torch.Tensor, noise: NoiseSource) -> torch.Tensor:
        """x (B, inter, T), f0 (B, T) Hz, g (B, gin, 1 or T) -> audio (B, 1, T * hop) in (-1, 1)."""
        excitation = self.m_source(f0, self.hop, noise)  # (B, 1, N)
        x = self.conv_pre(x) + self.cond(g)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            x = x + self.noise_convs[i](excitation)
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            xs = blocks[0](x)
            for block in blocks[1:]:
                xs = xs + block(x)
            x = xs / self.num_kernels
        # torch's default slope (0.01) here, as upstream.
        return torch.tanh(self.conv_post(F.leaky_relu(x)))
