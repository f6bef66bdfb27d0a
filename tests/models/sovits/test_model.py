"""SoVITS synthesizer behaviour beyond the upstream fixtures: references, speed, noise, training."""

from __future__ import annotations

import pytest
import torch

from app.models.nn.spectrogram import mel_spectrogram, spec_to_mel
from app.models.sovits.config import SoVITSConfig, preset
from app.models.sovits.losses import discriminator_objective, generator_objectives
from app.models.sovits.model import SoVITS
from app.models.sovits.reference import normalize_reference, reference_spectrogram

HOP = 640


def _inputs(version: str, frames: int = 12, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 1024, (1, 1, frames), generator=gen)
    phones = torch.randint(1, 322, (1, 9), generator=gen)
    wav = 0.3 * torch.randn(HOP * 20, generator=gen)
    sv = torch.randn(1, 20480, generator=gen) if version in ("v2Pro", "v2ProPlus") else None
    return codes, phones, reference_spectrogram(wav), sv


@pytest.mark.parametrize("version", ["v1", "v2ProPlus"])
def test_decode_shapes_and_determinism(tiny_sovits, version: str) -> None:
    model = tiny_sovits(version).prepare_for_inference()
    codes, phones, spec, sv = _inputs(version)
    audio = model.decode(codes, phones, spec, noise_scale=0.0, sv_emb=sv)
    assert audio.shape == (1, 1, codes.size(2) * 2 * HOP)
    assert torch.equal(audio, model.decode(codes, phones, spec, noise_scale=0.0, sv_emb=sv))
    noisy = [
        model.decode(
            codes, phones, spec, noise_scale=0.5, sv_emb=sv, generator=torch.Generator().manual_seed(3)
        )
        for _ in range(2)
    ]
    assert torch.equal(noisy[0], noisy[1]) and not torch.allclose(noisy[0], audio)
    faster = model.decode(codes, phones, spec, speed=1.5, noise_scale=0.0, sv_emb=sv)
    assert faster.size(2) == (int(codes.size(2) * 2 / 1.5) + 1) * HOP


def test_several_references_average_their_timbre(tiny_sovits) -> None:
    model = tiny_sovits("v2Pro").prepare_for_inference()
    codes, phones, spec_a, sv_a = _inputs("v2Pro", seed=1)
    _, _, spec_b, sv_b = _inputs("v2Pro", seed=2)
    ge_a = model.timbre([spec_a], [sv_a]).ge
    ge_b = model.timbre([spec_b], [sv_b]).ge
    both = model.timbre([spec_a, spec_b], [sv_a, sv_b])
    torch.testing.assert_close(both.ge, (ge_a + ge_b) / 2)
    assert both.ge_text.shape == (1, 512, 1)
    from_specs = model.synthesize(codes, phones, [spec_a, spec_b], noise_scale=0.0, sv_emb=[sv_a, sv_b])
    torch.testing.assert_close(from_specs.ge, both.ge)
    # A precomputed timbre gives the same audio without the references.
    torch.testing.assert_close(model.decode(codes, phones, both, noise_scale=0.0), from_specs.audio)
    with pytest.raises(ValueError, match="speaker embedding"):
        model.decode(codes, phones, [spec_a, spec_b], sv_emb=[sv_a])


def test_folding_keeps_outputs(tiny_sovits) -> None:
    model = tiny_sovits("v2")
    codes, phones, spec, _ = _inputs("v2")
    before = model.decode(codes, phones, spec, noise_scale=0.0)
    model.prepare_for_inference()
    assert not hasattr(model, "enc_q")
    torch.testing.assert_close(model.decode(codes, phones, spec, noise_scale=0.0), before, rtol=0, atol=1e-6)


def test_extract_codes_roundtrip(tiny_sovits) -> None:
    model = tiny_sovits("v2").prepare_for_inference()
    ssl = torch.randn(1, 768, 30)
    codes = model.extract_codes(ssl)
    assert codes.shape == (1, 1, 15) and codes.dtype == torch.int64
    # Feeding a codebook row (through an identity projection) gives back its own index.
    with torch.inference_mode():
        embed = model.quantizer.vq.layers[0]._codebook.embed
        idx = model.quantizer.encode(embed[[5, 700]].t().unsqueeze(0))
    assert idx.flatten().tolist() == [5, 700]


class _TinyDiscriminator(torch.nn.Module):
    """Same interface as MultiPeriodDiscriminator, a fraction of its cost."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(1, 2, 15, stride=8)

    def forward(self, y, y_hat):
        fr, fg = self.conv(y), self.conv(y_hat)
        return [fr.flatten(1)], [fg.flatten(1)], [[fr]], [[fg]]


def test_training_forward_backpropagates(tiny_sovits) -> None:
    torch.manual_seed(0)
    model = tiny_sovits("v2Pro").train()
    config = model.config
    frames = 10
    wav = 0.3 * torch.randn(2, frames * HOP)
    spec = torch.cat([reference_spectrogram(w) for w in wav])
    assert spec.shape == (2, 1025, frames)
    lengths = torch.tensor([frames, frames - 2])
    text = torch.randint(1, 300, (2, 7))
    out = model(
        torch.randn(2, 768, frames), spec, lengths, text, torch.tensor([7, 5]), sv_emb=torch.randn(2, 20480)
    )
    assert out.audio.shape == (2, 1, config.segment_size)
    assert torch.all(out.slice_starts <= lengths - config.segment_frames)
    assert float(out.commit_loss) == 0.0  # frozen quantizer
    disc = _TinyDiscriminator()
    d_loss = discriminator_objective(out, wav.unsqueeze(1), disc, config)
    d_loss.backward()
    assert disc.conv.weight.grad is not None and model.dec.conv_pre.weight.grad is None
    losses = generator_objectives(out, spec, wav.unsqueeze(1), disc, config)
    assert set(losses) == {"gen", "fm", "mel", "kl", "commit"}
    assert all(torch.isfinite(v) for v in losses.values()) and losses["mel"] > 0
    loss = sum(losses.values())
    loss.backward()
    assert model.enc_p.text_embedding.weight.grad is not None
    assert model.dec.ups[0].weight_g.grad is not None
    assert model.enc_q.enc.in_layers[0].weight_v.grad is not None
    assert model.sv_emb.weight.grad is not None
    assert model.ssl_proj.weight.grad is None  # frozen with the quantizer, as upstream


def test_mel_matches_linear_then_filterbank() -> None:
    wav = 0.3 * torch.randn(1, HOP * 6)
    direct = mel_spectrogram(wav, 2048, 128, 32000, HOP, 2048, 0.0, None)
    spec = reference_spectrogram(wav)
    torch.testing.assert_close(direct, spec_to_mel(spec, 2048, 128, 32000, 0.0, None))
    assert direct.shape == (1, 128, 6) and torch.all(direct >= torch.log(torch.tensor(1e-5)))


def test_config_validation_and_presets() -> None:
    assert preset("v2ProPlus").upsample_initial_channel == 768 and preset("v1").n_symbols == 322
    assert preset("v2").ref_enc_bins == 704 and preset("v1").ref_enc_bins == 1025
    with pytest.raises(ValueError, match="hop_length"):
        SoVITSConfig(upsample_rates=(10, 8, 2, 2))
    with pytest.raises(ValueError, match="MRTE"):
        SoVITSConfig(hidden_channels=128)
    with pytest.raises(ValueError, match="version"):
        preset("v5")
    # v3/v4 are flow-matching models (CfmSoVITS), not buildable as the VITS SoVITS.
    assert preset("v3").is_cfm and not preset("v2").is_cfm
    with pytest.raises(ValueError, match="CfmSoVITS"):
        SoVITS(preset("v4"))


def test_reference_level_rule_and_spectrogram_frames() -> None:
    quiet = torch.tensor([0.5, -0.9])
    assert torch.equal(normalize_reference(quiet), quiet)
    torch.testing.assert_close(normalize_reference(torch.tensor([1.5, -0.3])), torch.tensor([1.0, -0.2]))
    torch.testing.assert_close(normalize_reference(torch.tensor([4.0, 1.0])), torch.tensor([2.0, 0.5]))
    for n in (HOP * 10, HOP * 10 + 321):
        assert reference_spectrogram(torch.zeros(n)).shape == (1, 1025, 1 + (n + 1408 - 2048) // HOP)
