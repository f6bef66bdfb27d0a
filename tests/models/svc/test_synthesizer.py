"""The synthesizer on a tiny config: inference options, speaker mix, training pass, legacy layout."""

from __future__ import annotations

import pytest
import torch

from app.models.svc.noise import ReplayNoise, TorchNoise, ZeroNoise
from app.models.svc.synthesizer import SvcSynthesizer
from tests.models.svc.tiny import tiny_config

T = 12


def make(seed: int = 0, **overrides: object) -> SvcSynthesizer:
    torch.manual_seed(seed)
    return SvcSynthesizer(tiny_config(**overrides).synthesizer()).eval()


def inputs(batch: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    f0 = 150 + 200 * torch.rand(batch, T, generator=g)
    uv = torch.ones(batch, T)
    uv[:, :3] = 0
    return {"c": torch.randn(batch, 12, T, generator=g), "f0": f0, "uv": uv}


def test_infer_shapes_and_determinism() -> None:
    model = make()
    x = inputs()
    out = model.infer(**x, sid=1, noise=ZeroNoise())
    assert out.audio.shape == (1, 1, T * model.hop_length)
    assert torch.equal(out.f0, x["f0"])
    again = model.infer(**x, sid=1, noise=ZeroNoise())
    assert torch.equal(out.audio, again.audio)
    seeded_a = model.infer(**x, sid=1, seed=5).audio
    assert torch.equal(seeded_a, model.infer(**x, sid=1, seed=5).audio)
    assert not torch.equal(seeded_a, model.infer(**x, sid=1, seed=6).audio)
    assert not torch.equal(out.audio, model.infer(**x, sid=2, noise=ZeroNoise()).audio)


def test_speaker_mix_static_and_per_frame() -> None:
    model = make()
    x = inputs()
    by_id = model.infer(**x, sid=2, noise=ZeroNoise()).audio
    one_hot = model.infer(**x, mix=torch.tensor([0.0, 0.0, 1.0]), noise=ZeroNoise()).audio
    torch.testing.assert_close(one_hot, by_id)
    per_frame = torch.zeros(1, 3, T)
    per_frame[:, 2] = 1
    torch.testing.assert_close(
        model.infer(**x, mix=per_frame, noise=ZeroNoise()).audio, by_id, atol=1e-6, rtol=0
    )
    half = model.speaker(mix=torch.tensor([[0.5, 0.5, 0.0]]))
    torch.testing.assert_close(half[:, :, 0], model.emb_g.weight[:2].mean(0, keepdim=True))
    assert model.speaker(mix=per_frame).shape == (1, 8, T)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sid": 3}, "out of range"),
        ({"sid": 0, "mix": torch.ones(3)}, "exactly one"),
        ({"mix": torch.ones(2)}, "S = 3"),
        ({"sid": 0, "uv": None}, "need uv"),
        ({"sid": 0, "c": torch.randn(1, 10, T)}, "expects 12"),
        ({"sid": 0, "f0": torch.full((1, T + 1), 200.0)}, "equal B and T"),
    ],
)
def test_bad_inference_input_is_named(kwargs: dict, message: str) -> None:
    model = make()
    args = {**inputs(), **kwargs}
    with pytest.raises(ValueError, match=message):
        model.infer(**args, noise=ZeroNoise())


def test_predict_f0_replaces_the_pitch_and_needs_the_decoder() -> None:
    model = make()
    x = inputs()
    out = model.infer(**x, sid=0, predict_f0=True, noise=ZeroNoise())
    assert out.f0.shape == x["f0"].shape and not torch.allclose(out.f0, x["f0"])
    plain = make(use_automatic_f0_prediction=False)
    assert not hasattr(plain, "f0_decoder")
    with pytest.raises(ValueError, match="no F0 decoder"):
        plain.infer(**x, sid=0, predict_f0=True)


def test_volume_embedding_is_required_and_used() -> None:
    model = make(vol_embedding=True)
    x = inputs()
    with pytest.raises(ValueError, match="vol_embedding"):
        model.infer(**x, sid=0, noise=ZeroNoise())
    quiet = model.infer(**x, sid=0, vol=torch.full((1, T), 0.01), noise=ZeroNoise()).audio
    loud = model.infer(**x, sid=0, vol=torch.full((1, T), 0.5), noise=ZeroNoise()).audio
    assert not torch.allclose(quiet, loud)


def test_replay_noise_checks_kind_and_shape() -> None:
    model = make()
    x = inputs()
    wrong = ReplayNoise([("torch.rand", torch.zeros(1, 8, T))])
    with pytest.raises(ValueError, match="mismatch at draw 1"):
        model.infer(**x, sid=0, noise=wrong)
    short = ReplayNoise([("torch.randn_like", torch.zeros(1, 8, T))])
    with pytest.raises(ValueError, match="exhausted"):
        model.infer(**x, sid=0, noise=short)
    with pytest.raises(ValueError, match="unknown random draw kind"):
        ReplayNoise([("torch.bernoulli", torch.zeros(1))])


def test_torch_noise_without_seed_uses_the_global_generator() -> None:
    torch.manual_seed(11)
    expected = torch.randn(4, 5)
    torch.manual_seed(11)
    assert torch.equal(TorchNoise().normal((4, 5), torch.zeros(1)), expected)


def test_training_pass_shapes_gradients_and_detached_pitch_branch() -> None:
    model = make().train()
    cfg = model.cfg
    b, t = 2, 30
    x = inputs(b)
    c = torch.randn(b, 12, t)
    f0 = 100 + 300 * torch.rand(b, t)
    uv = torch.ones(b, t)
    spec = torch.rand(b, cfg.spec_channels, t)
    lengths = torch.tensor([t, t - 5])
    out = model(c, f0, uv, spec, torch.tensor([0, 2]), lengths, lengths)
    assert out.audio.shape == (b, 1, cfg.segment_frames * model.hop_length)
    assert out.z.shape == out.m_p.shape == out.m_q.shape == (b, cfg.inter_channels, t)
    assert out.pred_lf0.shape == out.lf0.shape == (b, 1, t)
    assert (out.ids_slice <= lengths - cfg.segment_frames).all()
    # the pitch loss must not reach the content pre-net (upstream detaches x)
    torch.nn.functional.mse_loss(out.pred_lf0, out.lf0).backward(retain_graph=True)
    assert model.pre.weight.grad is None or model.pre.weight.grad.abs().max() == 0
    assert model.f0_decoder.proj.weight.grad.abs().max() > 0
    (out.audio.abs().mean() + out.z_p.pow(2).mean() + out.m_p.pow(2).mean()).backward()
    for name in (
        "pre.weight",
        "enc_p.f0_emb.weight",
        "enc_q.pre.weight",
        "dec.conv_pre.weight_v",
        "emb_g.weight",
    ):
        assert dict(model.named_parameters())[name].grad.abs().max() > 0, name
    del x


def test_legacy_32k_layout_infers_and_clips_coarse_pitch() -> None:
    torch.manual_seed(0)
    config = tiny_config(ssl_dim=12)
    model = SvcSynthesizer(config.synthesizer("legacy32k")).eval()
    assert model.hop_length == 320 and len(model.prior.enc_.attn_layers) == 16
    assert not hasattr(model, "emb_uv") and not hasattr(model, "pre")
    c, f0 = torch.randn(1, 12, 5), torch.full((1, 5), 220.0)
    out = model.infer(c, f0, sid=1, noise=ZeroNoise())
    assert out.audio.shape == (1, 1, 5 * 320)
    high = torch.tensor([[1500.0]])
    assert model.coarse(high).item() == 255
    assert make().coarse(high).item() == 0  # 4.1's overflow quirk
    with pytest.raises(ValueError, match="no F0 decoder"):
        model.infer(c, f0, sid=0, predict_f0=True)
