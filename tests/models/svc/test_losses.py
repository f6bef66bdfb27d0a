"""One full generator/discriminator loss evaluation on the tiny model, plus the spectrogram rules."""

from __future__ import annotations

import math

import torch

from app.models.nn.losses import discriminator_loss
from app.models.svc.losses import (
    build_discriminator,
    generator_losses,
    linear_spectrogram,
    mel_spectrogram,
    slice_audio,
)
from app.models.svc.synthesizer import SvcSynthesizer
from tests.models.svc.tiny import tiny_config


def test_spectrogram_frames_and_floor() -> None:
    data = tiny_config().data
    y = torch.zeros(2, 16 * 20)
    spec = linear_spectrogram(y, data)
    assert spec.shape == (2, data.filter_length // 2 + 1, 20)
    assert torch.allclose(spec, torch.full_like(spec, math.sqrt(1e-6)))  # 4.1's magnitude floor
    tone = torch.sin(2 * math.pi * 1000 * torch.arange(16 * 40) / data.sampling_rate)
    spec = linear_spectrogram(tone, data)
    assert spec[0, :, 10].argmax().item() == round(1000 / data.sampling_rate * data.filter_length)
    assert mel_spectrogram(tone[None], data).shape == (1, data.n_mel_channels, 40)


def test_generator_and_discriminator_losses_on_a_training_step() -> None:
    torch.manual_seed(0)
    config = tiny_config()
    model = SvcSynthesizer(config.synthesizer()).train()
    disc = build_discriminator()
    b, t, hop = 2, 24, config.data.hop_length
    y = 0.3 * torch.sin(torch.arange(b * t * hop, dtype=torch.float32).reshape(b, 1, -1) * 0.07)
    spec = linear_spectrogram(y[:, 0], config.data)
    lengths = torch.full((b,), t)
    out = model(
        torch.randn(b, 12, t),
        torch.full((b, t), 220.0),
        torch.ones(b, t),
        spec,
        torch.tensor([0, 1]),
        lengths,
        lengths,
    )
    y_real = slice_audio(y, out, hop)
    assert y_real.shape == out.audio.shape
    real_scores, fake_scores, real_fmaps, fake_fmaps = disc(y_real, out.audio)
    mel_real = mel_spectrogram(y_real[:, 0], config.data)
    mel_fake = mel_spectrogram(out.audio[:, 0], config.data)
    losses = generator_losses(
        out, mel_real, mel_fake, fake_scores, real_fmaps, fake_fmaps, config.train.c_mel, config.train.c_kl
    )
    assert set(losses) == {"adv", "fm", "mel", "kl", "lf0", "total"}
    assert all(torch.isfinite(v) for v in losses.values())
    expected_mel = (mel_real - mel_fake).abs().mean() * config.train.c_mel
    torch.testing.assert_close(losses["mel"], expected_mel)
    torch.testing.assert_close(losses["total"], sum(v for k, v in losses.items() if k != "total"))
    losses["total"].backward()
    d_loss, _, _ = discriminator_loss(*disc(y_real, out.audio.detach())[:2])
    assert torch.isfinite(d_loss)
    assert len(real_scores) == 6  # scale + 5 periods
