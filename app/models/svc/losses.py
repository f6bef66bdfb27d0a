"""Training objectives of so-vits-svc: spectrograms with its conventions and the generator loss sum.

The linear spectrogram (posterior input) and the mel spectrogram (reconstruction loss) follow
4.1's ``mel_processing``: reflect padding by ``(n_fft - hop) / 2``, periodic Hann window, no
centring, magnitude ``sqrt(re^2 + im^2 + 1e-6)`` (GPT-SoVITS uses 1e-8), Slaney mel filters,
``ln(max(x, 1e-5))``: :mod:`app.models.nn.spectrogram` with 4.1's epsilon.

Generator loss (4.1 ``train.py``): LSGAN adversarial + feature matching + ``c_mel`` x mel L1 +
``c_kl`` x KL + (with the F0 decoder) MSE between predicted and true log-f0.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from app.models.nn import spectrogram
from app.models.nn.discriminators import MultiPeriodDiscriminator
from app.models.nn.losses import feature_loss, generator_loss, kl_loss
from app.models.nn.masks import slice_segments
from app.models.svc.config import DataSection
from app.models.svc.synthesizer import SvcTrainOutput

MAGNITUDE_EPS = 1e-6  # 4.1 mel_processing
DISCRIMINATOR_PERIODS = (2, 3, 5, 7, 11)  # so-vits-svc MultiPeriodDiscriminator


def linear_spectrogram(y: torch.Tensor, data: DataSection) -> torch.Tensor:
    """(B, N) or (N,) audio in [-1, 1] -> (B, filter_length // 2 + 1, frames) magnitudes."""
    return spectrogram.linear_spectrogram(
        y, data.filter_length, data.hop_length, data.win_length, magnitude_eps=MAGNITUDE_EPS
    )


def mel_spectrogram(y: torch.Tensor, data: DataSection) -> torch.Tensor:
    """(B, N) audio -> (B, n_mel_channels, frames) log-mel."""
    spec = linear_spectrogram(y, data)
    return spectrogram.spec_to_mel(
        spec, data.filter_length, data.n_mel_channels, data.sampling_rate, data.mel_fmin, data.mel_fmax
    )


def build_discriminator(width_divisor: int = 1) -> MultiPeriodDiscriminator:
    """The discriminator of ``D_*.pth`` (scale discriminator + periods 2, 3, 5, 7, 11); a
    ``width_divisor`` > 1 divides every width (tests, experiments: such files fit no 4.1 D)."""
    return MultiPeriodDiscriminator(DISCRIMINATOR_PERIODS, width_divisor)


def slice_audio(y: torch.Tensor, out: SvcTrainOutput, hop: int) -> torch.Tensor:
    """Cut the real audio (B, 1, N) at the frames the decoder produced: (B, 1, segment * hop)."""
    return slice_segments(y, out.ids_slice * hop, out.audio.size(-1))


def generator_losses(
    out: SvcTrainOutput,
    mel_real: torch.Tensor,
    mel_fake: torch.Tensor,
    fake_scores: Sequence[torch.Tensor],
    real_fmaps: Sequence[Sequence[torch.Tensor]],
    fake_fmaps: Sequence[Sequence[torch.Tensor]],
    c_mel: float = 45.0,
    c_kl: float = 1.0,
) -> dict[str, torch.Tensor]:
    """Named generator losses and their sum ``"total"`` (weights from config.json ``train``)."""
    adv, _ = generator_loss(fake_scores)
    losses = {
        "adv": adv,
        "fm": feature_loss(real_fmaps, fake_fmaps),
        "mel": F.l1_loss(mel_real, mel_fake) * c_mel,
        "kl": kl_loss(out.z_p, out.logs_q, out.m_p, out.logs_p, out.spec_mask) * c_kl,
    }
    if out.pred_lf0 is not None and out.lf0 is not None:
        losses["lf0"] = F.mse_loss(out.pred_lf0, out.lf0)
    losses["total"] = torch.stack(list(losses.values())).sum()
    return losses
