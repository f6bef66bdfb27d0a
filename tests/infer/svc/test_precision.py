"""The fast precision of singing voice conversion: bf16 content encoder and NSF decoder where native."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from app.infer.decoder import CastNSF, FixedWindowNSF
from app.infer.precision import native_bf16, plan_for
from app.infer.svc import cli
from app.infer.svc.pipeline import SVCPipeline, load_model
from app.infer.svc.request import SvcInputError, SvcRequest
from app.models.nn.qconv import int8_pays
from app.models.svc.noise import TorchNoise
from app.models.svc.nsf import NSFGenerator
from tests.svc_data import SR, melody
from tests.synth import silence

NATIVE = native_bf16(torch.device("cpu"))


@pytest.fixture(scope="module")
def phrase(tmp_path_factory):
    path = tmp_path_factory.mktemp("fast") / "phrase.wav"
    sf.write(
        path,
        np.concatenate([silence(0.3, SR), melody([247, 262, 220, 247], 0.5, seed=3), silence(0.3, SR)]),
        SR,
    )
    return path


def _snr(ref: np.ndarray, other: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum((ref - other) ** 2.0)))


def test_fast_converts_close_to_fp32_and_leaves_the_fp32_model_alone(svc_trained, phrase):
    torch.set_num_threads(1)
    pipeline = SVCPipeline(svc_trained.pretrained, device="cpu")
    request = SvcRequest(audio=phrase, model=svc_trained.model, speaker="alto")
    ref = pipeline.convert(request)
    fast = pipeline.convert(
        SvcRequest(audio=phrase, model=svc_trained.model, speaker="alto", precision="fast")
    )
    again = pipeline.convert(request)
    np.testing.assert_array_equal(again.audio, ref.audio)  # the cached fp32 model was not cast
    fp32_dec = load_model(svc_trained.model, None, "cpu").model.dec
    plan = plan_for("fast", torch.device("cpu"))  # the request's: its cached model
    fast_dec = load_model(svc_trained.model, None, "cpu", plan.decoder, plan.decoder_int8).model.dec
    assert isinstance(fp32_dec, NSFGenerator) and fp32_dec.conv_pre.weight_v.dtype == torch.float32
    if isinstance(fast_dec, FixedWindowNSF):  # CPU with oneDNN: bf16 channels-last windows
        assert fast_dec.dtype == torch.bfloat16 and fast_dec.inner.conv_pre.weight.dtype == torch.bfloat16
        int8 = [block.int8 is not None for block in fast_dec.inner.resblocks]  # where int8 convs hold and pay
        assert int8 == [
            plan.decoder_int8 and int8_pays(b.convs1[0].weight.shape[1]) for b in fast_dec.inner.resblocks
        ]
    else:
        assert isinstance(fast_dec, CastNSF) and fast_dec.inner.conv_pre.weight_v.dtype == torch.bfloat16
    assert fast.audio.shape == ref.audio.shape and fast.audio.dtype == np.float32
    if NATIVE:
        assert not np.array_equal(fast.audio, ref.audio)
        assert _snr(ref.audio, fast.audio) > 15.0, _snr(ref.audio, fast.audio)
    else:  # without native bf16 "fast" keeps float32 (emulated bf16 would be slower)
        np.testing.assert_array_equal(fast.audio, ref.audio)


@pytest.mark.parametrize("precision", ["bf16", "FAST", "", "fp16"])
def test_an_unknown_precision_is_refused_naming_the_choices(svc_trained, phrase, precision):
    pipeline = SVCPipeline(svc_trained.pretrained, device="cpu")
    with pytest.raises(SvcInputError, match=r"unknown precision .*choose one of fp32, fast"):
        pipeline.convert(SvcRequest(audio=phrase, model=svc_trained.model, precision=precision))


@pytest.mark.parametrize("frames", [1, 7, 40])
def test_cast_nsf_keeps_the_f0_in_float32_and_returns_float32(frames):
    torch.manual_seed(0)
    dec = NSFGenerator(8, 16000, "1", [3], [[1, 3]], [4, 4], 32, [8, 8], 4).eval()
    x, g = torch.randn(1, 8, frames), torch.randn(1, 4, 1)
    f0 = torch.full((1, frames), 220.0)
    with torch.no_grad():
        want = dec(x, f0, g, TorchNoise(1))
        got = CastNSF(dec, torch.bfloat16)(x, f0, g, TorchNoise(1))
    assert got.dtype == torch.float32 and got.shape == want.shape == (1, 1, frames * 16)
    assert (got - want).abs().max() < 0.05


def test_cli_fast(svc_trained, phrase, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path))
    out = tmp_path / "out.wav"
    code = cli.main([str(phrase), "-m", str(svc_trained.model), "--precision", "fast", "-o", str(out),
                     "--pretrained", str(svc_trained.pretrained), "--device", "cpu"])  # fmt: skip
    assert code == 0 and sf.info(out).frames > 0
    with pytest.raises(SystemExit):
        cli.main([str(phrase), "-m", str(svc_trained.model), "--precision", "half"])
    assert "invalid choice: 'half'" in capsys.readouterr().err
