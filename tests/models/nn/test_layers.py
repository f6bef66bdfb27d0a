"""Shared VITS layers: key names, weight-norm folding, relative attention, flow inverse, shapes."""

from __future__ import annotations

import math

import pytest
import torch

from app.models.nn.attention import CausalTransformer, MultiHeadAttention, TransformerEncoder
from app.models.nn.discriminators import MultiPeriodDiscriminator
from app.models.nn.flow import ResidualCouplingBlock
from app.models.nn.hifigan import HiFiGANGenerator
from app.models.nn.losses import discriminator_loss, feature_loss, generator_loss, kl_loss
from app.models.nn.masks import rand_slice_segments, sequence_mask
from app.models.nn.norm import WNConv1d, WNConvTranspose1d, fold_weight_norm
from app.models.nn.wavenet import WaveNet


def test_sequence_mask() -> None:
    mask = sequence_mask(torch.tensor([1, 3]), 4)
    assert mask.tolist() == [[True, False, False, False], [True, True, True, False]]


def test_weight_norm_keys_shapes_and_math() -> None:
    conv = WNConv1d(3, 5, 3, padding=1)
    assert list(conv.state_dict()) == ["bias", "weight_g", "weight_v"]
    assert conv.weight_g.shape == (5, 1, 1)
    with torch.no_grad():
        conv.weight_g.mul_(2.0)
    v = conv.weight_v
    expected = conv.weight_g * v / v.norm(dim=(1, 2), keepdim=True)
    x = torch.randn(2, 3, 7)
    torch.testing.assert_close(conv(x), torch.nn.functional.conv1d(x, expected, conv.bias, padding=1))
    up = WNConvTranspose1d(4, 2, 4, 2, padding=1)
    assert up.weight_g.shape == (4, 1, 1)  # dim 0 = input channels, as upstream
    assert up(torch.randn(1, 4, 5)).shape == (1, 2, 10)


def test_fold_matches_and_is_dropped_on_load_and_train() -> None:
    torch.manual_seed(0)
    wn = WaveNet(8, 5, 1, 3, gin_channels=4)
    x, mask, g = torch.randn(1, 8, 11), torch.ones(1, 1, 11), torch.randn(1, 4, 1)
    before = wn(x, mask, g)
    assert fold_weight_norm(wn) == 7  # 3 in_layers + 3 res_skip + cond_layer
    torch.testing.assert_close(wn(x, mask, g), before, rtol=0, atol=1e-6)
    state = {k: v * 1.5 if k.endswith("weight_g") else v for k, v in wn.state_dict().items()}
    wn.load_state_dict(state)
    assert all(m.folded_weight is None for m in wn.in_layers)
    assert not torch.allclose(wn(x, mask, g), before)
    fold_weight_norm(wn)
    wn.train()
    assert wn.cond_layer.folded_weight is None


def test_in_place_fold_keeps_one_copy_and_the_same_layer() -> None:
    torch.manual_seed(1)
    wn = WaveNet(8, 5, 1, 3, gin_channels=4)
    with torch.no_grad():  # g != ||v||, as in trained files
        for name, p in wn.named_parameters():
            if name.endswith("weight_g"):
                p.mul_(1.5)
    x, mask, g = torch.randn(1, 8, 11), torch.ones(1, 1, 11), torch.randn(1, 4, 1)
    before = wn(x, mask, g)
    exact = {k: v.clone() for k, v in wn.state_dict().items()}
    fold_weight_norm(wn, in_place=True)
    for conv in [*wn.in_layers, *wn.res_skip_layers, wn.cond_layer]:
        # The folded kernel is the parameter v itself: no second copy of any kernel.
        assert conv.folded_weight.data_ptr() == conv.weight_v.data_ptr()
    torch.testing.assert_close(wn(x, mask, g), before, rtol=0, atol=1e-6)
    # The rewritten (g, v) pairs are the same layer: unfolded (training) maths and a reload agree.
    wn.train()
    assert wn.cond_layer.folded_weight is None
    torch.testing.assert_close(wn(x, mask, g), before, rtol=0, atol=1e-5)
    reloaded = WaveNet(8, 5, 1, 3, gin_channels=4)
    reloaded.load_state_dict(wn.state_dict())
    torch.testing.assert_close(reloaded(x, mask, g), before, rtol=0, atol=1e-5)
    rescaled = wn.state_dict()["cond_layer.weight_v"]
    assert not torch.equal(rescaled, exact["cond_layer.weight_v"])  # v holds the kernel now
    torch.testing.assert_close(wn.state_dict()["cond_layer.weight_g"], exact["cond_layer.weight_g"])


def test_wavenet_key_layout() -> None:
    keys = list(WaveNet(4, 5, 1, 2, gin_channels=3).state_dict())
    assert keys[0] == "in_layers.0.bias" and keys[-3:] == [
        "cond_layer.bias",
        "cond_layer.weight_g",
        "cond_layer.weight_v",
    ]
    assert "res_skip_layers.1.weight_v" in keys


def _brute_force_relative_attention(attn: MultiHeadAttention, x: torch.Tensor) -> torch.Tensor:
    """Relative attention written out per (i, j) pair: offsets beyond the window get nothing."""
    w = attn.window_size
    q, k, v = attn.conv_q(x), attn.conv_k(x), attn.conv_v(x)
    b, c, t = q.shape
    h, dk = attn.n_heads, attn.k_channels
    q = q.view(b, h, dk, t) / math.sqrt(dk)
    k = k.view(b, h, dk, t)
    v = v.view(b, h, dk, t)
    out = torch.zeros(b, h, dk, t)
    for i in range(t):
        scores = torch.einsum("bhd,bhdj->bhj", q[..., i], k)
        for j in range(t):
            if abs(j - i) <= w:
                scores[..., j] += torch.einsum("bhd,d->bh", q[..., i], attn.emb_rel_k[0, j - i + w])
        p = torch.softmax(scores, -1)
        out[..., i] = torch.einsum("bhj,bhdj->bhd", p, v)
        for j in range(t):
            if abs(j - i) <= w:
                out[..., i] += p[..., j, None] * attn.emb_rel_v[0, j - i + w]
    return attn.conv_o(out.reshape(b, c, t))


@pytest.mark.parametrize("length", [3, 12])  # shorter and longer than the window
def test_relative_attention_matches_pairwise_definition(length: int) -> None:
    torch.manual_seed(1)
    attn = MultiHeadAttention(8, 8, 2, window_size=4).eval()
    x = torch.randn(2, 8, length)
    torch.testing.assert_close(attn(x, x), _brute_force_relative_attention(attn, x), rtol=1e-4, atol=1e-5)


def test_encoders_mask_padding_and_key_names() -> None:
    torch.manual_seed(2)
    enc = TransformerEncoder(8, 16, 2, 2, kernel_size=3, gin_channels=4).eval()
    assert "attn_layers.0.emb_rel_k" in enc.state_dict()
    assert "cond_layer.weight_v" in enc.state_dict() and "cond_pre.weight" in enc.state_dict()
    x = torch.randn(1, 8, 10)
    mask = sequence_mask(torch.tensor([7]), 10).unsqueeze(1).float()
    y = enc(x, mask, g=torch.randn(1, 4, 1))
    assert y.shape == (1, 8, 10) and torch.all(y[..., 7:] == 0)
    # Padding content must not leak into valid frames.
    x2 = x.clone()
    x2[..., 7:] = 100.0
    torch.testing.assert_close(enc(x2, mask, g=None)[..., :7], enc(x, mask, g=None)[..., :7])

    fft = CausalTransformer(8, 16, 2, 2, kernel_size=3).eval()
    assert "self_attn_layers.0.conv_q.weight" in fft.state_dict()
    assert "norm_layers_0.1.gamma" in fft.state_dict()
    assert not any("emb_rel" in k for k in fft.state_dict())
    full = torch.ones(1, 1, 10)
    y_full = fft(x, full)
    x3 = x.clone()
    x3[..., 6:] = -5.0  # the future must not change the past
    torch.testing.assert_close(fft(x3, full)[..., :6], y_full[..., :6])


def test_flow_reverse_inverts_forward() -> None:
    torch.manual_seed(3)
    flow = ResidualCouplingBlock(8, 16, 5, 1, 2, n_flows=2, gin_channels=4)
    for p in flow.parameters():  # the zero-initialised post convs would make it the identity
        torch.nn.init.normal_(p, std=0.1)
    x, mask, g = torch.randn(1, 8, 9), torch.ones(1, 1, 9), torch.randn(1, 4, 1)
    z = flow(x, mask, g=g)
    assert not torch.allclose(z, x)
    torch.testing.assert_close(flow(z, mask, g=g, reverse=True), x, rtol=1e-5, atol=1e-5)
    assert [k for k in flow.state_dict() if k.startswith("flows.1")] == []  # Flip has no weights


def test_generator_and_discriminator_shapes() -> None:
    gen = HiFiGANGenerator(6, "1", [3, 5], [[1, 3, 5], [1, 3, 5]], [4, 2], 16, [8, 4], gin_channels=3)
    audio = gen(torch.randn(1, 6, 5), g=torch.randn(1, 3, 1))
    assert audio.shape == (1, 1, 40) and audio.abs().max() <= 1
    assert "conv_post.bias" not in gen.state_dict() and "ups.1.weight_g" in gen.state_dict()
    mpd = MultiPeriodDiscriminator(periods=(2, 3))
    assert len(mpd.discriminators) == 3
    real, fake, fr, fg = mpd(torch.randn(1, 1, 301), torch.randn(1, 1, 301))
    assert len(real) == len(fake) == 3 and len(fr[1]) == len(fg[1]) == 6 and len(fr[0]) == 7


def test_losses_values() -> None:
    real = [torch.ones(2, 3), torch.full((2, 3), 0.5)]
    fake = [torch.zeros(2, 3), torch.full((2, 3), 0.5)]
    total, r, g = discriminator_loss(real, fake)
    assert r == [0.0, 0.25] and g == [0.0, 0.25] and total.item() == pytest.approx(0.5)
    gen_total, _ = generator_loss(fake)
    assert gen_total.item() == pytest.approx(1.0 + 0.25)
    fm = feature_loss([[torch.zeros(2), torch.ones(2)]], [[torch.ones(2), torch.ones(2)]])
    assert fm.item() == pytest.approx(2.0)
    z = torch.zeros(1, 2, 3)
    mask = torch.tensor([[[1.0, 1.0, 0.0]]])
    # Equal distributions: KL term is -0.5 per element (VITS drops the constant), averaged over frames.
    assert kl_loss(z, z, z, z, mask).item() == pytest.approx(-0.5 * 2)
    windows, starts = rand_slice_segments(torch.arange(10.0).view(1, 1, 10), torch.tensor([6]), 4)
    assert int(starts) <= 2 and windows[0, 0, 0].item() == float(starts)


def test_spectrogram_epsilon_and_frames() -> None:
    from app.models.nn.spectrogram import linear_spectrogram

    silent = torch.zeros(1, 2048 * 3)
    assert linear_spectrogram(silent, 2048, 512, 2048).shape == (1, 1025, 12)
    torch.testing.assert_close(linear_spectrogram(silent, 2048, 512, 2048).max(), torch.tensor(1e-4))
    torch.testing.assert_close(
        linear_spectrogram(silent, 2048, 512, 2048, magnitude_eps=1e-6).max(), torch.tensor(1e-3)
    )
    tone = torch.sin(2 * math.pi * 1000 * torch.arange(32000) / 32000).unsqueeze(0)
    spec = linear_spectrogram(tone, 2048, 640, 2048)
    assert int(spec[0, :, 10].argmax()) == 64  # 1 kHz at 32 kHz / 2048 bins per 15.625 Hz
