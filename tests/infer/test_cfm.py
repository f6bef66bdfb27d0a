"""v3/v4 (flow matching + vocoder) in the one TTS pipeline: whole models, LoRA voices, errors.

Whole models are tiny random ones written with the upstream writer; LoRA voices are upstream's
own fixture files (``sovits_v{3,4}_lora_tiny.pth`` on their base), one test per file present.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from app.infer import ModelLoadError, TTSInputError, TTSPipeline, TTSRequest
from app.infer.pipeline import DEFAULT_CFM_STEPS
from app.models.upstream.cfm_voice import LORA_BASE_FILES
from app.models.vocoders import VOCODER_PATHS
from tests.infer.tiny import CFM_SOVITS_NAMES, build_cfm_home, spec_for

PROMPT = "你好欢迎来到我们的节目"
TEXT = "Hello there. This is a test of the new decoder."
# Mel frames per 25 Hz token and samples per frame: v4 4 x 480 at 48 kHz, v3 3.75 x 256 at 24 kHz.
RATES = {"v4": 48000, "v3": 24000}
HOPS = {"v4": 480, "v3": 256}


def frames(version: str, tokens: int) -> int:
    return 4 * tokens if version == "v4" else int(2 * tokens * 1.875)


def request(ref: Path, **changes) -> TTSRequest:
    fields = {
        "text": TEXT, "text_language": "en", "reference": str(ref), "prompt_text": PROMPT,
        "prompt_language": "all_zh", "split_method": "cut5", "seed": 5, **changes,
    }  # fmt: skip
    return TTSRequest(**fields)


@pytest.fixture(scope="module")
def cfm_home(tmp_path_factory) -> Path:
    return build_cfm_home(tmp_path_factory.mktemp("cfm_home"))


@pytest.fixture(scope="module", params=["v4", "v3"])
def cfm(request, cfm_home) -> TTSPipeline:
    return TTSPipeline.load(spec_for(cfm_home, sovits=CFM_SOVITS_NAMES[request.param]))


def test_segments_are_vocoded_at_the_versions_rate(cfm, ref_wav) -> None:
    result = cfm.synthesize(request(ref_wav))
    v = cfm.version
    assert cfm.is_cfm and result.sample_rate == RATES[v] == cfm.sample_rate
    pause = round(0.3 * RATES[v])
    lengths = [int(t.numel()) for t in result.tokens]
    assert len(lengths) == 2 and len(result.audio) == sum(frames(v, n) * HOPS[v] + pause for n in lengths)
    start = 0
    for n in lengths:
        speech = frames(v, n) * HOPS[v]
        assert np.abs(result.audio[start : start + speech]).max() > 100
        assert not result.audio[start + speech : start + speech + pause].any()
        start += speech + pause


def test_sample_steps_are_honoured(cfm, ref_wav, monkeypatch) -> None:
    seen: list[int] = []
    real = cfm.sovits.decode_mel
    monkeypatch.setattr(cfm.sovits, "decode_mel", lambda *a, **k: seen.append(a[3]) or real(*a, **k))
    default = cfm.synthesize(request(ref_wav))
    assert seen == [DEFAULT_CFM_STEPS[cfm.version]] * 2
    again = cfm.synthesize(request(ref_wav, sample_steps=DEFAULT_CFM_STEPS[cfm.version]))
    other = cfm.synthesize(request(ref_wav, sample_steps=4))
    assert seen[-2:] == [4, 4]
    assert np.array_equal(default.audio, again.audio)
    assert all(torch.equal(a, b) for a, b in zip(default.tokens, other.tokens, strict=True))
    assert len(other.audio) == len(default.audio) and not np.array_equal(default.audio, other.audio)


def test_speed_batching_and_streaming(cfm, ref_wav) -> None:
    greedy = {"top_k": 1}
    one = cfm.synthesize(request(ref_wav, **greedy))
    batched = cfm.synthesize(request(ref_wav, batch_size=2, **greedy))
    assert np.array_equal(one.audio, batched.audio)
    chunks = list(cfm.stream(request(ref_wav, **greedy), token_chunks=True))
    assert [c.segment for c in chunks[:-1]] == [0, 1]  # whole segments: no token chunks for v3/v4
    assert np.array_equal(np.concatenate([c.audio for c in chunks]), one.audio)
    fast = cfm.synthesize(request(ref_wav, speed=1.5, **greedy))
    assert len(fast.audio) < len(one.audio)


def test_what_v3_v4_cannot_do_is_refused(cfm, ref_wav, tmp_path) -> None:
    with pytest.raises(TTSInputError, match="need its transcript as the prompt text") as caught:
        cfm.synthesize(request(ref_wav, prompt_text=""))
    assert caught.value.field == "prompt_text"
    with pytest.raises(TTSInputError, match="reference-free mode is not available"):
        cfm.synthesize(request(ref_wav, reference_free=True))
    with pytest.raises(TTSInputError, match="leave the extra reference clips out"):
        cfm.synthesize(request(ref_wav, extra_references=(str(ref_wav),)))


def test_fast_precision_runs(cfm_home, ref_wav) -> None:
    pipe = TTSPipeline.load(spec_for(cfm_home, precision="fast", sovits=CFM_SOVITS_NAMES["v4"]))
    result = pipe.synthesize(request(ref_wav))
    assert result.sample_rate == 48000 and np.abs(result.audio).max() > 100


def test_missing_vocoder_is_named_with_the_download_command(cfm_home, tmp_path) -> None:
    home = tmp_path / "home"
    shutil.copytree(cfm_home, home)
    shutil.rmtree(home / "pretrained_models" / VOCODER_PATHS["v3"])
    with pytest.raises(
        ModelLoadError, match=r"needs the v3 vocoder .*bigvgan.*download_models\.py gpt-sovits-v3"
    ):
        TTSPipeline.load(spec_for(home, sovits=CFM_SOVITS_NAMES["v3"]))


# --------------------------------------------------------------------------- LoRA voices
def lora_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("sovits_v*_lora*.pth"))


def _lora_home(cfm_home: Path, fixtures: Path, lora: Path, target: Path) -> tuple[Path, str]:
    """A data root with upstream's LoRA fixture in SoVITS_weights/ and its base where upstream keeps it."""
    io_data = torch.load(fixtures / f"{lora.stem}_io.pt", weights_only=True)
    version = io_data["meta"]["model_version"]
    shutil.copytree(cfm_home, target)
    base = target / "pretrained_models" / LORA_BASE_FILES[version]
    base.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(fixtures / io_data["meta"]["base_checkpoint"], base)
    shutil.copy2(lora, target / "SoVITS_weights" / lora.name)
    return target, version


def test_lora_voices_merge_onto_their_base(cfm_home, upstream_fixtures, ref_wav, tmp_path) -> None:
    from app.models.upstream.sovits import _open
    from app.models.upstream.sovits_lora import merge_lora, read_lora

    loras = lora_files(upstream_fixtures)
    assert loras, f"no sovits_v*_lora*.pth in {upstream_fixtures}"
    for lora in loras:
        home, version = _lora_home(cfm_home, upstream_fixtures, lora, tmp_path / lora.stem)
        pipe = TTSPipeline.load(spec_for(home, sovits=lora.name))
        assert pipe.version == version and pipe.sample_rate == RATES[version]
        _, base, _ = _open(home / "pretrained_models" / LORA_BASE_FILES[version], "base")
        merged = merge_lora(base["weight"], read_lora(lora))
        key = "cfm.estimator.transformer_blocks.0.attn.to_q.weight"
        assert torch.equal(pipe.sovits.state_dict()[key], merged[key])
        result = pipe.synthesize(request(ref_wav))
        assert result.sample_rate == RATES[version] and np.abs(result.audio).max() > 100

        # Without its base, the LoRA cannot load: the message names the base and the download.
        (home / "pretrained_models" / LORA_BASE_FILES[version]).unlink()
        with pytest.raises(
            ModelLoadError, match=rf"{version} LoRA voice.*download_models\.py gpt-sovits-{version}"
        ):
            TTSPipeline.load(spec_for(home, sovits=lora.name))
