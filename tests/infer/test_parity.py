"""With upstream's fixture checkpoints, the pipeline's stages reproduce upstream's outputs (fp32).

GPT: ``gpt_<v>_tiny_io.pt`` decodes (top_k 1, EOS forced off) through the pipeline's batched token
stage and through its whole runner; SoVITS: ``sovits_v2_tiny_io.pt`` decodes through the pipeline's
reference spectrogram + timbre + audio stage, and the prompt codes through its quantizer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from app.infer import PipelineSpec, TTSPipeline
from app.infer.inputs import SynthesisPlan, TextInput
from app.models.gpt.sampling import SamplingOptions

AUDIO_ATOL = 1e-5  # fixture README: SoVITS audio atol 1e-5


def _fixture_cases(folder: Path) -> list[str]:
    return sorted(p.name.removesuffix("_io.pt") for p in folder.glob("gpt_*_tiny_io.pt"))


@pytest.fixture(scope="module")
def fixture_pipelines(upstream_fixtures: Path, tmp_path_factory):
    """One fp32 pipeline per GPT fixture, each with the v2 SoVITS fixture (encoders never loaded)."""
    nowhere = tmp_path_factory.mktemp("no-encoders")
    out = {}
    for stem in _fixture_cases(upstream_fixtures):
        sovits = upstream_fixtures / "sovits_v2_tiny.pth"
        if stem == "gpt_v1_tiny":
            continue  # a v1 GPT cannot pair with a v2 SoVITS model (its GPT stage is checked below)
        spec = PipelineSpec(upstream_fixtures / f"{stem}.ckpt", sovits, nowhere / "h", nowhere / "b")
        out[stem] = TTSPipeline.load(spec)
    if not out:
        pytest.fail(f"no gpt_*_tiny fixtures in {upstream_fixtures}")
    return out


def _options(case: dict) -> SamplingOptions:
    return SamplingOptions(
        top_k=case["top_k"],
        top_p=case["top_p"],
        temperature=case["temperature"],
        repetition_penalty=case["repetition_penalty"],
        max_new_tokens=case["tokens"].numel(),
        suppress_eos=True,  # the fixture forced the EOS logit to -inf
    )


def test_gpt_tokens_equal_upstream(fixture_pipelines, upstream_fixtures):
    for stem, pipeline in fixture_pipelines.items():
        io = torch.load(upstream_fixtures / f"{stem}_io.pt", weights_only=True)
        inp = io["inputs"]
        for name, case in io["decode"].items():
            (chunk,) = list(
                pipeline.generate_tokens(
                    [inp["phoneme_ids"][0]],
                    [inp["bert_feature"][0]],
                    inp["prompt_semantic"][0],
                    _options(case),
                )
            )
            assert torch.equal(chunk.tokens[0], case["tokens"]), f"{stem} {name}"


def test_gpt_tokens_through_the_runner_equal_upstream(fixture_pipelines, upstream_fixtures):
    """The whole decoding loop (batch of two identical rows, then audio) keeps upstream's tokens."""
    stem, pipeline = next(iter(fixture_pipelines.items()))
    io = torch.load(upstream_fixtures / f"{stem}_io.pt", weights_only=True)
    inp = io["inputs"]
    case = io["decode"]["greedy_rep1.35"]
    segment = TextInput("fixture", tuple(inp["phoneme_ids"][0].tolist()), inp["bert_feature"][0])
    timbre = pipeline.timbre([pipeline.spectrogram(np.sin(np.arange(32000 * 3) / 20).astype(np.float32))])
    plan = SynthesisPlan(
        segments=(segment, segment),
        prompt=None,
        prompt_tokens=inp["prompt_semantic"][0],
        timbre=timbre,
        sampling=_options(case),
        seed=0,
        batch_size=2,
    )
    result = list(pipeline.run(plan))[-1].result
    for tokens in result.tokens:
        assert torch.equal(tokens, case["tokens"])


def test_sovits_audio_equals_upstream(fixture_pipelines, upstream_fixtures):
    pipeline = next(iter(fixture_pipelines.values()))
    io = torch.load(upstream_fixtures / "sovits_v2_tiny_io.pt", weights_only=True)
    inp = io["inputs"]
    spec = pipeline.spectrogram(inp["ref_wav_32k"].numpy())
    assert (spec - io["refer_spec"]).abs().max() <= 1e-5 * io["refer_spec"].abs().max()
    timbre = pipeline.timbre([spec])
    assert torch.equal(pipeline.sovits.extract_codes(inp["ssl"]), io["codes"])
    for name, case in io["decode"].items():
        audio = pipeline.decode_tokens(
            io["codes"][0, 0],
            inp["phones"][0],
            timbre,
            speed=float(case["speed"]),
            noise_scale=float(case["noise_scale"]),
        )
        np.testing.assert_allclose(audio, case["audio"][0, 0].numpy(), rtol=0, atol=AUDIO_ATOL, err_msg=name)


def test_v1_gpt_stage_and_version_pairing(upstream_fixtures, tmp_path):
    from app.infer import ModelLoadError

    if not (upstream_fixtures / "gpt_v1_tiny.ckpt").is_file():
        pytest.fail(f"gpt_v1_tiny.ckpt missing in {upstream_fixtures}")
    spec = PipelineSpec(
        upstream_fixtures / "gpt_v1_tiny.ckpt", upstream_fixtures / "sovits_v2_tiny.pth", tmp_path, tmp_path
    )
    with pytest.raises(ModelLoadError, match=r"is a v1 GPT .* but .* is a v2 SoVITS model"):
        TTSPipeline.load(spec)
