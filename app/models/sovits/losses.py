"""SoVITS training objectives, as upstream's s2 training step combines them.

Generator: LSGAN + feature matching + ``c_mel`` x mel L1 (target mel from the linear spectrogram,
generated mel from the decoded window) + ``c_kl`` x KL + the quantizer's commitment loss.
Discriminator: LSGAN on the real window against the detached generated window.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from app.models.nn.losses import discriminator_loss, feature_loss, generator_loss, kl_loss
from app.models.nn.masks import slice_segments
from app.models.nn.spectrogram import mel_spectrogram, spec_to_mel
from app.models.sovits.config import SoVITSConfig
from app.models.sovits.model import TrainOutput

# (real (B, 1, S), fake (B, 1, S)) -> (real scores, fake scores, real fmaps, fake fmaps)
Discriminator = Callable[[torch.Tensor, torch.Tensor], tuple[list, list, list, list]]


def real_window(wav: torch.Tensor, out: TrainOutput, config: SoVITSConfig) -> torch.Tensor:
    """The target audio under the decoded window: (B, 1, N) -> (B, 1, segment_size)."""
    return slice_segments(wav, out.slice_starts * config.hop_length, config.segment_size)


def discriminator_objective(
    out: TrainOutput, wav: torch.Tensor, disc: Discriminator, config: SoVITSConfig
) -> torch.Tensor:
    """LSGAN loss of the discriminator on this step (generator output detached)."""
    real, fake, _, _ = disc(real_window(wav, out, config), out.audio.detach())
    return discriminator_loss(real, fake)[0]


def generator_objectives(
    out: TrainOutput, spec: torch.Tensor, wav: torch.Tensor, disc: Discriminator, config: SoVITSConfig
) -> dict[str, torch.Tensor]:
    """Named, already weighted generator losses; their sum is what upstream minimises.

    Args:
        out: the model's training forward on this batch.
        spec: (B, 1025, T) linear spectrograms the forward was given.
        wav: (B, 1, T * hop) target audio.
        disc: the multi-period discriminator.
    """
    c = config
    mel = spec_to_mel(spec, c.filter_length, c.n_mel_channels, c.sampling_rate, c.mel_fmin, c.mel_fmax)
    y_mel = slice_segments(mel, out.slice_starts, c.segment_frames)
    y_hat_mel = mel_spectrogram(
        out.audio.squeeze(1),
        c.filter_length,
        c.n_mel_channels,
        c.sampling_rate,
        c.hop_length,
        c.win_length,
        c.mel_fmin,
        c.mel_fmax,
    )
    _, fake, fmap_r, fmap_g = disc(real_window(wav, out, c), out.audio)
    return {
        "gen": generator_loss(fake)[0],
        "fm": feature_loss(fmap_r, fmap_g),
        "mel": F.l1_loss(y_mel, y_hat_mel) * c.c_mel,
        "kl": kl_loss(out.z_p, out.logs_q, out.m_p, out.logs_p, out.y_mask) * c.c_kl,
        "commit": out.commit_loss,
    }
