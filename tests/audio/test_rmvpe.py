"""RMVPE network: shapes with random weights, the decoding maths, and the weights-file rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from app.audio import pitch, rmvpe

TINY = rmvpe.RMVPEConfig(n_blocks=1, inter_layers=1, en_out_channels=2, gru_hidden=8)


def test_full_size_layout_matches_the_released_checkpoint_names() -> None:
    with torch.device("meta"):
        model = rmvpe.RMVPE()
    names = set(model.state_dict())
    for name in (
        "unet.encoder.bn.running_var",
        "unet.encoder.layers.0.conv.0.shortcut.weight",
        "unet.encoder.layers.4.conv.3.conv.4.num_batches_tracked",
        "unet.intermediate.layers.0.conv.0.shortcut.bias",
        "unet.decoder.layers.0.conv1.0.weight",
        "unet.decoder.layers.4.conv2.0.conv.3.weight",
        "cnn.weight",
        "fc.0.gru.weight_ih_l0_reverse",
        "fc.1.weight",
    ):
        assert name in names
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["unet.decoder.layers.0.conv1.0.weight"] == (512, 256, 3, 3)
    assert shapes["fc.0.gru.weight_ih_l0"] == (768, 384)
    assert shapes["fc.1.weight"] == (360, 512)
    # 90.4 M parameters (the ~181 MB public file holds them in float16)
    assert 90.0e6 < sum(p.numel() for p in model.parameters()) < 90.6e6


def test_random_network_shapes_and_padding() -> None:
    torch.manual_seed(0)
    model = rmvpe.RMVPE(TINY).eval()
    audio = torch.randn(16000 + 77) * 0.1
    mel = model.log_mel(audio[None])
    assert mel.shape == (1, 128, (16000 + 77) // 160 + 1)
    salience = model(mel)
    assert salience.shape == (1, mel.shape[-1], 360)
    assert ((salience >= 0) & (salience <= 1)).all()
    f0 = model.track(audio, threshold=0.0)
    assert f0.shape == (mel.shape[-1],)
    assert (f0 > 0).all()  # threshold 0: every frame voiced
    assert (model.track(audio, threshold=1.0) == 0).all()


def test_decode_is_the_salience_weighted_mean_of_the_nine_bins_around_the_peak() -> None:
    model = rmvpe.RMVPE(TINY)
    salience = torch.zeros(3, 360)
    salience[0, 100] = 0.9  # single peak: exactly the bin's pitch
    salience[1, 200:203] = torch.tensor([0.2, 0.8, 0.6])  # skewed peak
    salience[1, 250] = 0.5  # outside the 9-bin window: ignored
    salience[2, 50] = 0.04  # below threshold: unvoiced
    f0 = model.decode(salience, threshold=0.05)
    cents = lambda k: 20 * k + rmvpe.CENTS_OFFSET  # noqa: E731
    assert f0[0] == pytest.approx(10 * 2 ** (cents(100) / 1200), rel=1e-5)
    mean_cents = (0.2 * cents(200) + 0.8 * cents(201) + 0.6 * cents(202)) / 1.6
    assert f0[1] == pytest.approx(10 * 2 ** (mean_cents / 1200), rel=1e-5)
    assert f0[2] == 0
    # bins at the edges use the part of the window that exists
    edge = torch.zeros(1, 360)
    edge[0, 0], edge[0, 1] = 0.5, 0.5
    assert model.decode(edge, 0.05)[0] == pytest.approx(10 * 2 ** ((cents(0) + 10) / 1200), rel=1e-5)


def test_both_file_layouts_load_and_the_tracker_uses_them(tmp_path, monkeypatch) -> None:
    torch.manual_seed(1)
    model = rmvpe.RMVPE(TINY)
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    plain = tmp_path / "plain.pt"
    torch.save(state, plain)
    nested = tmp_path / "nested.pt"
    extra = {"unet.tf.layers.0.conv.0.weight": torch.zeros(2, 2, 3, 3)}
    torch.save({"model": {**state, **extra}}, nested)
    a = rmvpe.load_rmvpe(plain, "cpu", TINY)
    b = rmvpe.load_rmvpe(nested, "cpu", TINY)
    audio = torch.randn(8000) * 0.1
    torch.testing.assert_close(a.track(audio, 0.0), b.track(audio, 0.0))
    # through the f0 interface (the tiny config stands in for the released size)
    monkeypatch.setattr(pitch, "RMVPE_CONFIG", TINY)
    f0, uv = pitch.extract(
        np.random.default_rng(0).normal(0, 0.1, 8000).astype(np.float32),
        16000,
        160,
        "rmvpe",
        f0_min=1.0,
        f0_max=1e5,
        threshold=0.0,
        rmvpe_path=plain,
    )
    assert f0.shape == (50,) and uv.all()


def test_a_file_that_is_not_rmvpe_is_refused(tmp_path) -> None:
    other = tmp_path / "G_0.pth"
    torch.save({"model": {"emb_g.weight": torch.zeros(2, 4)}}, other)
    with pytest.raises(rmvpe.RMVPEWeightsError, match=r"G_0\.pth: not an RMVPE checkpoint"):
        rmvpe.load_rmvpe(other, "cpu", TINY)
    wrong = tmp_path / "wrong.pt"
    torch.save({"cnn.weight": torch.zeros(3, 2, 3, 3)}, wrong)
    with pytest.raises(rmvpe.RMVPEWeightsError, match="does not match"):
        rmvpe.load_rmvpe(wrong, "cpu", TINY)
