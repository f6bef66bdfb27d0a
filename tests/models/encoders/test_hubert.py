"""HuBERT content encoder: local files only, raw-wave feeding, prompt padding, training scaling."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import HubertConfig, HubertModel

from app.models.encoders.hubert import PROMPT_PAD_SAMPLES, HubertEncoder, load_hubert, training_input


@pytest.fixture(scope="module")
def hubert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    config = HubertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
    )
    folder = tmp_path_factory.mktemp("chinese-hubert-base")
    HubertModel(config).save_pretrained(folder)
    return folder


def test_features_are_raw_wave_hubert_at_50hz(hubert_dir: Path) -> None:
    enc = HubertEncoder(hubert_dir)
    wav = 0.1 * torch.randn(16000)
    feats = enc.features(wav)
    assert feats.shape == (1, 32, 49)  # 1 s -> 49 frames (conv stack without padding)
    reference = HubertModel.from_pretrained(hubert_dir).eval()
    with torch.no_grad():
        expected = reference(wav.unsqueeze(0)).last_hidden_state.transpose(1, 2)
    torch.testing.assert_close(feats, expected)
    # No feature-extractor normalisation: the scale of the input matters.
    assert not torch.allclose(enc.features(wav * 10), feats, atol=1e-3)


def test_prompt_padding_is_a_parameter(hubert_dir: Path) -> None:
    enc = load_hubert(str(hubert_dir))
    assert load_hubert(str(hubert_dir)) is enc
    wav = np.float32(0.1) * np.random.default_rng(0).standard_normal(80000).astype(np.float32)
    padded = enc.prompt_features(wav)
    assert padded.shape[-1] == 279  # 5 s + 9,600 zeros, as upstream's prompts
    torch.testing.assert_close(
        padded, enc.features(np.concatenate([wav, np.zeros(PROMPT_PAD_SAMPLES, np.float32)]))
    )
    assert enc.prompt_features(wav, pad_samples=0).shape[-1] == 249


def test_training_input_scaling() -> None:
    t = np.arange(32000) / 32000
    wav = (0.5 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    out = training_input(wav)
    assert out.shape == (16000,) and out.dtype == np.float32
    # peak 0.5 -> 0.5/0.5*0.95*0.5*1145.14 + 0.5*1145.14*0.5 = 830.2
    assert np.abs(out).max() == pytest.approx(0.95 * 0.5 * 1145.14 + 0.25 * 1145.14, rel=0.01)
    with pytest.raises(ValueError, match="silent"):
        training_input(np.zeros(100, np.float32))
    with pytest.raises(ValueError, match=r"2\.2"):
        training_input(np.full(100, 3.0, np.float32))


def test_missing_model_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"config\.json missing"):
        HubertEncoder(tmp_path / "nothing")


def test_own_network_reproduces_transformers_exactly(hubert_dir: Path) -> None:
    """The encoder runs app's HubertNet, not transformers: the same values (to the bit for a clip
    within one window of the conv stack, up to float summation order beyond it)."""
    from app.models.encoders.hubert_net import HubertNet

    enc = HubertEncoder(hubert_dir)
    assert isinstance(enc.model, HubertNet)
    wav = 0.1 * torch.randn(24000, generator=torch.Generator().manual_seed(3))
    reference = HubertModel.from_pretrained(hubert_dir).eval()
    with torch.no_grad():
        expected = reference(wav.unsqueeze(0)).last_hidden_state.transpose(1, 2)
    torch.testing.assert_close(enc.features(wav), expected, rtol=1e-5, atol=1e-5)
    short = wav[:16000]  # 49 frames: one window
    with torch.no_grad():
        expected = reference(short.unsqueeze(0)).last_hidden_state.transpose(1, 2)
    assert torch.equal(enc.features(short), expected)


def test_legacy_bin_files_load_with_the_old_key_names(hubert_dir: Path, tmp_path: Path) -> None:
    """pytorch_model.bin of the transformers-4 era (chinese-hubert-base): a ``hubert.`` prefix, weight
    norm as weight_g/weight_v, LayerNorm as gamma/beta."""
    model = HubertModel.from_pretrained(hubert_dir).eval()
    with torch.no_grad():
        model.encoder.pos_conv_embed.conv.parametrizations.weight.original0.mul_(1.3)  # g != ||v||
    legacy = {}
    for key, value in model.state_dict().items():
        key = key.replace("parametrizations.weight.original0", "weight_g")
        key = key.replace("parametrizations.weight.original1", "weight_v")
        if key == "encoder.layer_norm.weight":
            key = "encoder.layer_norm.gamma"
        legacy["hubert." + key] = value.clone()
    legacy["lm_head.weight"] = torch.zeros(3, 32)  # a head HubertModel does not have: ignored
    folder = tmp_path / "legacy"
    folder.mkdir()
    (folder / "config.json").write_text((hubert_dir / "config.json").read_text())
    torch.save(legacy, folder / "pytorch_model.bin")
    wav = 0.1 * torch.randn(16000, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = model(wav.unsqueeze(0)).last_hidden_state.transpose(1, 2)
    enc = HubertEncoder(folder)
    assert type(enc.model).__name__ == "HubertNet"
    torch.testing.assert_close(enc.features(wav), expected, rtol=0, atol=1e-6)


def test_configurations_it_does_not_implement_load_through_transformers(tmp_path: Path) -> None:
    torch.manual_seed(1)
    config = HubertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(16,) * 7,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, do_stable_layer_norm=True,
        feat_extract_norm="layer",
    )  # fmt: skip
    HubertModel(config).save_pretrained(tmp_path)
    enc = HubertEncoder(tmp_path)
    assert isinstance(enc.model, HubertModel)
    wav = 0.1 * torch.randn(16000)
    with torch.no_grad():
        expected = HubertModel.from_pretrained(tmp_path).eval()(wav[None]).last_hidden_state.transpose(1, 2)
    torch.testing.assert_close(enc.features(wav), expected)


def test_a_truncated_weight_file_is_named(hubert_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "cut"
    folder.mkdir()
    (folder / "config.json").write_text((hubert_dir / "config.json").read_text())
    data = (hubert_dir / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(FileNotFoundError, match="truncated"):
        HubertEncoder(folder)


def test_encoding_does_not_import_transformers(hubert_dir: Path) -> None:
    """transformers' modeling stack (torch._dynamo, sympy) costs ~127 MB resident for good."""
    import subprocess
    import sys

    code = (
        "import sys, torch\n"
        "from app.models.encoders.hubert import HubertEncoder\n"
        f"HubertEncoder({str(hubert_dir)!r}).features(torch.zeros(16000))\n"
        "bad = [m for m in ('transformers.modeling_utils', 'torch._dynamo') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    root = Path(__file__).resolve().parents[3]
    run = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stderr[-2000:]


@settings(max_examples=15, deadline=None)
@given(samples=st.integers(400, 40_000), chunk=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_the_conv_stack_in_windows_equals_the_whole(
    hubert_dir: Path, samples: int, chunk: int, seed: int
) -> None:
    """The later conv layers run window by window on the normalised first layer: the same frames,
    any length and window (float summation order aside)."""
    stack = HubertEncoder(hubert_dir).model.feature_extractor
    wav = 0.1 * torch.randn(1, samples, generator=torch.Generator().manual_seed(seed))
    channels_last = copy.deepcopy(stack)
    channels_last.to_channels_last()  # what the bf16 encoder runs on CPU
    with torch.inference_mode():
        stack.chunk_frames = 10**9
        whole = stack(wav)
        stack.chunk_frames = channels_last.chunk_frames = chunk
        windows = stack(wav)
        laid_out = channels_last(wav)
    assert windows.shape == whole.shape == laid_out.shape == (1, 16, (samples - 400) // 320 + 1)
    torch.testing.assert_close(windows, whole, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(laid_out, whole, rtol=1e-5, atol=1e-6)


def test_released_pages_come_back_with_the_same_weights(hubert_dir: Path) -> None:
    """release_pages: the mapped float32 weights leave memory after each call and return unchanged."""
    kept = HubertEncoder(hubert_dir)
    released = HubertEncoder(hubert_dir, release_pages=True)
    wav = 0.1 * torch.randn(20000, generator=torch.Generator().manual_seed(5))
    for _ in range(2):
        assert torch.equal(released.features(wav), kept.features(wav))
    assert HubertEncoder(hubert_dir, dtype=torch.bfloat16, release_pages=True)._mapped is None  # a copy


def test_a_bf16_cast_from_the_map_equals_the_plain_cast(hubert_dir: Path, monkeypatch) -> None:
    from app.models.encoders.hubert_net import HubertNet, load_hubert_net

    monkeypatch.setattr(HubertNet, "for_inference", lambda self: 0)  # the weights as cast
    cast = HubertEncoder(hubert_dir, dtype=torch.bfloat16).model.state_dict()
    plain = load_hubert_net(hubert_dir).to(torch.bfloat16).state_dict()
    # (The conv stack's kernels are (out, in, 1, k) channels-last there: see to_channels_last.)
    assert cast.keys() == plain.keys() and all(
        torch.equal(cast[k].reshape(plain[k].shape), plain[k]) for k in cast
    )


@pytest.mark.parametrize("int8", [True, False])
def test_bf16_inference_layout_computes_the_plain_bf16_features(
    hubert_dir: Path, monkeypatch, int8: bool
) -> None:
    """Fast inference on CPU: the transformer's linears as int8 products (native kernels) or,
    without those kernels, through oneDNN in bf16 (the FFN's GELU fused); the positional conv's
    weight norm folded (g and v dropped), the first layer's GroupNorm folded into its conv: close
    to float32 (bf16: as close as the plain bf16 network; int8: within ~3x its error)."""
    from app.models.encoders import hubert_net
    from app.models.encoders.hubert_net import HubertNet, _Int8Linear, _OneDnnLinear
    from app.models.nn.layout import pointwise_fusion

    if not pointwise_fusion(torch.bfloat16):
        pytest.skip("oneDNN's fused kernels are not in this torch build")  # CPU builds have them
    if not int8:
        monkeypatch.setattr(hubert_net, "w8a8_kernel", lambda: None)
    wav = 0.1 * torch.randn(24_000, generator=torch.Generator().manual_seed(8))
    reference = HubertEncoder(hubert_dir).features(wav)
    prepared = HubertEncoder(hubert_dir, dtype=torch.bfloat16)
    net = prepared.model
    kind = _Int8Linear if int8 else _OneDnnLinear
    assert sum(isinstance(m, kind) for m in net.modules()) == 6 * len(net.encoder.layers)
    assert not any(isinstance(m, torch.nn.Linear) for m in net.encoder.layers.modules())
    assert net.encoder.pos_conv_embed.conv.folded is not None
    assert not hasattr(net.encoder.pos_conv_embed.conv, "weight_v")
    assert all(layer.attention.native is not None for layer in net.encoder.layers)  # the native kernel's
    monkeypatch.setattr(HubertNet, "for_inference", lambda self: 0)
    plain = HubertEncoder(hubert_dir, dtype=torch.bfloat16)
    plain.model.feature_extractor._first_layer = _unfolded_first_layer(
        plain.model.feature_extractor
    )  # GroupNorm as is

    def error(features: torch.Tensor) -> float:
        return ((features.float() - reference).norm() / reference.norm()).item()

    assert error(prepared.features(wav)) < (3.0 if int8 else 1.5) * error(plain.features(wav)) + 1e-3


def test_int8_linear_is_its_linear_within_the_quantisation_bound() -> None:
    """_Int8Linear: weight codes per output row, each input row quantised per call: within half a
    step of each (weight and input) of the float32 product, bf16 out; GELU on top for the FFN."""
    from app.models.encoders.hubert_net import _Int8Linear
    from app.models.nn.int8 import w8a8_kernel

    kernel = w8a8_kernel()
    assert kernel is not None  # built by make; CI has a compiler
    gen = torch.Generator().manual_seed(11)
    linear = torch.nn.Linear(96, 40)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(40, 96, generator=gen) / 8)
        linear.weight[3] = 0  # an all-zero row: codes 0, output = bias
    x = torch.randn(2, 7, 96, generator=gen)
    fast = _Int8Linear(linear, kernel)
    got = fast(x.bfloat16())
    assert got.dtype == torch.bfloat16 and got.shape == (2, 7, 40)
    want = linear(x).detach()
    rows = x.reshape(-1, 96)
    w = linear.weight.detach()
    bound = (rows.abs().amax(1, keepdim=True) / 254) @ w.abs().sum(1, keepdim=True).t()  # the rows' steps
    bound = bound + rows.abs() @ (w.abs().amax(1, keepdim=True) / 254).expand(-1, 96).t()  # the weight's
    bound = bound + 2**-7 * want.reshape(-1, 40).abs() + 2**-7 * (rows.abs() @ w.abs().t()) + 1e-5
    assert bool(((got.float() - want).reshape(-1, 40).abs() <= bound).all())
    torch.testing.assert_close(got[..., 3].float(), linear.bias.detach()[3].expand(2, 7).bfloat16().float())
    torch.testing.assert_close(fast.gelu(x.bfloat16()), torch.nn.functional.gelu(got))


def _unfolded_first_layer(stack):  # type: ignore[no-untyped-def]
    from app.models.nn.layout import to_2d

    def first_layer(wav: torch.Tensor):  # type: ignore[no-untyped-def]
        first = stack.conv_layers[0]
        x = first.layer_norm(first.conv(to_2d(wav[:, None])))
        return x.shape[-1], lambda a, b: torch.nn.functional.gelu(x[..., a:b])

    return first_layer


@settings(max_examples=20, deadline=None)
@given(samples=st.integers(20, 3000), offset=st.floats(-1.0, 1.0), seed=st.integers(0, 2**16))
def test_group_norm_folded_into_the_first_conv_is_the_same_maths(
    samples: int, offset: float, seed: int
) -> None:
    """GroupNorm(C, C) after a one-channel conv as one affine map of each window (statistics from
    the windows' covariance), in float64: the normalised conv's values, any clip and DC offset."""
    from app.models.encoders.hubert_net import _FeatureEncoder
    from app.models.nn.layout import Conv1dAs2d

    gen = torch.Generator().manual_seed(seed)
    conv = torch.nn.Conv1d(1, 12, 10, stride=5, bias=bool(seed % 2)).double()
    norm = torch.nn.GroupNorm(12, 12).double()
    with torch.no_grad():
        norm.weight.normal_(generator=gen)
        norm.bias.normal_(generator=gen)
    wav = (0.1 * torch.randn(1, samples, generator=gen) + offset).double()
    length, window = _FeatureEncoder._folded_first(wav, Conv1dAs2d(conv), norm)
    with torch.inference_mode():
        want = torch.nn.functional.gelu(norm(conv(wav[:, None])))
        cut = length // 3
        got = torch.cat([window(0, cut).squeeze(2), window(cut, length).squeeze(2)], dim=-1)
    assert length == want.shape[-1]
    torch.testing.assert_close(got, want, rtol=1e-7, atol=1e-7)
