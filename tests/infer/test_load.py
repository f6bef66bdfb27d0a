"""Loading: clear errors for unusable model files; the fast precision mode's plan."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from app.infer import ModelLoadError, TTSPipeline, TTSRequest
from app.infer.decoder import (
    CastDecoder,
    CastFlow,
    CastPrior,
    FixedWindowDecoder,
    WindowedDecoder,
    fixed_windows_pay,
)
from app.infer.precision import fast_cpu_gpt, native_bf16, plan_for
from app.models.nn.qconv import int8_convolutions, int8_pays
from tests.infer.tiny import spec_for


def test_unusable_files_are_named(tiny_home, tmp_path):
    spec = spec_for(tiny_home)
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    cases = [
        (
            dataclasses.replace(spec, gpt_path=broken),
            r"GPT model: .*broken.ckpt: the zip container is truncated",
        ),
        (dataclasses.replace(spec, gpt_path=tmp_path / "none.ckpt"), "GPT model: .*none.ckpt: no such file"),
        (dataclasses.replace(spec, sovits_path=spec.gpt_path), "SoVITS model: .*tiny-e2.ckpt"),
        (dataclasses.replace(spec, device="cuda:7"), "no CUDA GPU")
        if not torch.cuda.is_available()
        else None,
    ]
    for changed, message in filter(None, cases):
        with pytest.raises(ModelLoadError, match=message):
            TTSPipeline.load(changed)


def test_precision_plans():
    cpu = torch.device("cpu")
    assert plan_for("fp32", cpu).gpt == "fp32" and plan_for("fp32", cpu).decoder == torch.float32
    assert plan_for("fp32", cpu).hubert == plan_for("fp32", cpu).speaker == torch.float32
    fast = plan_for("fast", cpu)
    low = torch.bfloat16 if native_bf16(cpu) else torch.float32
    assert fast.gpt == fast_cpu_gpt() == "int8" and fast.decoder == fast.hubert == fast.speaker == low
    assert fast.prior == low and plan_for("fp32", cpu).prior == torch.float32
    # int8 residual blocks where the decoder is bf16 and oneDNN's int8 convolutions check out.
    assert fast.decoder_int8 == (low == torch.bfloat16 and int8_convolutions())
    assert not plan_for("fp32", cpu).decoder_int8
    assert fast.decoder_label == ("bfloat16 + int8 residual blocks" if fast.decoder_int8 else str(low)[6:])
    cuda = plan_for("fast", torch.device("cuda"))
    assert cuda.gpt == "bf16" and cuda.decoder == cuda.speaker == torch.bfloat16
    assert cuda.prior == torch.float32 and not cuda.decoder_int8
    with pytest.raises(ValueError, match="unknown precision"):
        plan_for("fp8", cpu)


def test_fast_mode_synthesizes(tiny_home, ref_wav):
    pipe = TTSPipeline.load(spec_for(tiny_home, precision="fast"))
    assert pipe.gpt.precision == fast_cpu_gpt()
    if pipe.precision.decoder == torch.float32:
        assert isinstance(pipe.sovits.dec, WindowedDecoder) and not isinstance(
            pipe.sovits.dec.inner, CastDecoder
        )
    elif fixed_windows_pay(pipe.precision.decoder, torch.device("cpu"), pipe.sovits.config):
        assert isinstance(pipe.sovits.dec, FixedWindowDecoder) and pipe.sovits.dec.dtype == torch.bfloat16
        blocks = pipe.sovits.dec.inner.resblocks  # int8 where the convolutions hold and pay
        int8 = [block.int8 is not None for block in blocks]
        assert int8 == [
            pipe.precision.decoder_int8 and int8_pays(b.convs1[0].weight.shape[1]) for b in blocks
        ]
    else:
        assert isinstance(pipe.sovits.dec.inner, CastDecoder)
    if pipe.precision.prior == torch.float32:
        assert not isinstance(pipe.sovits.enc_p, CastPrior) and not isinstance(pipe.sovits.flow, CastFlow)
    else:
        assert isinstance(pipe.sovits.enc_p, CastPrior) and isinstance(pipe.sovits.flow, CastFlow)
        assert next(pipe.sovits.enc_p.parameters()).dtype == pipe.precision.prior
    result = pipe.synthesize(
        TTSRequest(text="Fast mode works.", text_language="en", reference=str(ref_wav), seed=1)
    )
    n = int(result.tokens[0].numel())
    assert len(result.audio) == n * 1280 + round(0.3 * 32000) and np.abs(result.audio).max() > 100


def test_packed_gpt_weights_are_freed_and_decoding_is_unchanged(tiny_home):
    from app.models.gpt import SamplingOptions, decode
    from app.models.upstream.gpt import load_gpt

    pipe = TTSPipeline.load(spec_for(tiny_home))
    layer = pipe.gpt.h.layers[0]
    assert layer.linear1.weight.numel() == 0 and pipe.gpt.ar_predict_layer.weight.numel() == 0
    assert pipe.gpt.ar_audio_embedding.word_embeddings.weight.numel() > 0  # embeddings are still read
    full = load_gpt(spec_for(tiny_home).gpt_path).model
    full.set_precision("fp32")
    phones = torch.randint(1, 700, (1, 20), generator=torch.Generator().manual_seed(0))
    bert, prompt = (
        torch.zeros(1, 1024, 20),
        torch.randint(0, 1024, (1, 15), generator=torch.Generator().manual_seed(1)),
    )
    options = SamplingOptions(max_new_tokens=30, suppress_eos=True, seed=4)
    expected = decode(full, phones, bert, prompt, options).tokens[0]
    assert torch.equal(decode(pipe.gpt, phones, bert, prompt, options).tokens[0], expected)


def test_fast_mode_builds_its_decoder_kernels_at_load(tiny_home, ref_wav, monkeypatch):
    """bf16 on CPU: the decoder's window lengths have all run at load, and a stream (chunks of many
    lengths) then only ever hands the network inputs of those lengths."""
    lengths: list[int] = []
    inner = FixedWindowDecoder._run

    def spy(self, x, g, excitation, valid):
        lengths.append(x.shape[-1])
        return inner(self, x, g, excitation, valid)

    monkeypatch.setattr(FixedWindowDecoder, "_run", spy)
    pipe = TTSPipeline.load(spec_for(tiny_home, precision="fast"))
    if not isinstance(pipe.sovits.dec, FixedWindowDecoder):
        assert pipe.precision.decoder == torch.float32 and not lengths  # no native bf16 on this CPU
        return
    assert lengths == list(pipe.sovits.dec.lengths)
    request = TTSRequest(text="Streaming starts early.", text_language="en", reference=str(ref_wav), seed=1)
    lengths.clear()
    chunks = list(pipe.stream(request, token_chunks=True))
    assert len(chunks) > 1 and lengths and set(lengths) <= set(pipe.sovits.dec.lengths)
