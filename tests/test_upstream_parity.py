"""Parity with upstream GPT-SoVITS / so-vits-svc on the fixtures in ``$UPSTREAM_FIXTURES``.

Each section is parametrized over the fixture files present, reads every size from the files,
and uses the tolerances of the fixtures' README.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent


def _fixture_dir() -> Path:
    """Same rule as the ``upstream_fixtures`` fixture, usable at collection time."""
    return Path(os.environ.get("UPSTREAM_FIXTURES") or REPO_ROOT.parent / "shared" / "fixtures" / "upstream")


# ========================================================================================== GPT
# GPT (GPT-SoVITS stage 1): gpt_<v>_tiny.ckpt + gpt_<v>_tiny_io.pt, manifest_gpt_<v>.json

from app.models.gpt.config import GPTConfig  # noqa: E402
from app.models.gpt.model import GPT  # noqa: E402
from app.models.gpt.sampling import SamplingOptions, decode  # noqa: E402
from app.models.upstream.gpt import gpt_weights, load_gpt  # noqa: E402

GPT_STEMS = sorted(
    p.name.removesuffix(".ckpt")
    for p in _fixture_dir().glob("gpt_*_tiny.ckpt")
    if (p.parent / f"{p.name.removesuffix('.ckpt')}_io.pt").is_file()
)
GPT_MANIFESTS = sorted(p.name for p in _fixture_dir().glob("manifest_gpt_*.json"))
GPT_LOGITS_ATOL = 1e-4  # README: logits atol 1e-4, tokens exact
GPT_LOSS_RTOL = 1e-5  # README: loss_sum rtol 1e-5, top3_acc exact
# Linear kernels that must all reproduce upstream: the straightforward path and the packed fp32 one.
GPT_EXACT_PRECISIONS = ("reference", "fp32")


@pytest.fixture(scope="module", params=GPT_STEMS or ["<no gpt fixtures>"])
def gpt_case(request: pytest.FixtureRequest, upstream_fixtures: Path):
    """(file record, io dict) for one fixture, loaded once per module."""
    stem = request.param
    if stem not in GPT_STEMS:
        pytest.fail(f"no gpt_*_tiny.ckpt with its _io.pt in {upstream_fixtures}")
    record = load_gpt(upstream_fixtures / f"{stem}.ckpt")
    io = torch.load(upstream_fixtures / f"{stem}_io.pt", weights_only=True)
    return record, io


def _gpt_decode_cases(io: dict) -> list[str]:
    return sorted(io["decode"])


def test_gpt_file_read_as_upstream(gpt_case, upstream_fixtures: Path) -> None:
    record, io = gpt_case
    assert record.version == io["variant"]
    # every weight of the file is an exact fp16 -> fp32 upcast
    weights = torch.load(upstream_fixtures / io["meta"]["checkpoint"], weights_only=True)["weight"]
    ours = gpt_weights(record.model)
    assert list(ours) == list(weights)
    for name, tensor in weights.items():
        assert torch.equal(record.model.state_dict()[name.removeprefix("model.")], tensor.float()), name
        assert torch.equal(ours[name], tensor), name


@pytest.mark.parametrize("precision", GPT_EXACT_PRECISIONS)
def test_gpt_decode_tokens_and_logits(gpt_case, precision: str) -> None:
    """Upstream's KV-cache loop with top_k=1: same tokens, raw logits within 1e-4, every case."""
    record, io = gpt_case
    model, inp = record.model, io["inputs"]
    model.set_precision(precision)
    for case in _gpt_decode_cases(io):
        d = io["decode"][case]
        steps = d["tokens"].numel()
        options = SamplingOptions(
            top_k=d["top_k"],
            top_p=d["top_p"],
            temperature=d["temperature"],
            repetition_penalty=d["repetition_penalty"],
            max_new_tokens=steps,  # upstream: early_stop_num = steps - 1
            suppress_eos=True,  # the fixture forced the EOS logit to -inf
        )
        result = decode(model, inp["phoneme_ids"], inp["bert_feature"], inp["prompt_semantic"], options)
        assert torch.equal(result.tokens[0], d["tokens"]), case
        assert result.stopped_on_eos == (False,)
        # raw logits along upstream's tokens: row 0 from the prefill, row i from step i
        cache = model.new_cache(1, inp["phoneme_ids"].shape[1] + inp["prompt_semantic"].shape[1] + steps)
        with torch.inference_mode():
            rows = [model.prefill(cache, inp["phoneme_ids"], inp["bert_feature"], inp["prompt_semantic"])]
            rows += [model.step(cache, t.view(1)) for t in d["tokens"][:-1]]
        torch.testing.assert_close(torch.cat(rows), d["logits"], rtol=0, atol=GPT_LOGITS_ATOL, msg=case)


def test_gpt_teacher_forced(gpt_case) -> None:
    record, io = gpt_case
    inp, tf = io["inputs"], io["teacher_forced"]
    with torch.no_grad():
        out = record.model(
            inp["phoneme_ids"],
            inp["phoneme_ids_len"],
            inp["bert_feature"],
            tf["semantic_ids"],
            tf["semantic_ids_len"],
        )
    assert torch.equal(out.targets, tf["targets"])
    torch.testing.assert_close(out.logits, tf["logits"], rtol=0, atol=GPT_LOGITS_ATOL)
    torch.testing.assert_close(out.loss, tf["loss_sum"], rtol=GPT_LOSS_RTOL, atol=0)
    assert out.top_k_acc.item() == tf["top3_acc"]


def test_gpt_teacher_forced_batch2_upstream_padding(gpt_case) -> None:
    """Upstream's padded training batch, its left-pad-mask quirk reproduced with ``upstream_padding``."""
    record, io = gpt_case
    b = io["teacher_forced_batch2"]
    args = (
        b["phoneme_ids"],
        b["phoneme_ids_len"],
        b["bert_feature"],
        b["semantic_ids"],
        b["semantic_ids_len"],
    )
    with torch.no_grad():
        out = record.model(*args, upstream_padding=True)
        fixed = record.model(*args)
    torch.testing.assert_close(out.logits, b["logits"], rtol=0, atol=GPT_LOGITS_ATOL)
    torch.testing.assert_close(out.loss, b["loss_sum"], rtol=GPT_LOSS_RTOL, atol=0)
    assert out.top_k_acc.item() == b["top3_acc"]
    # correct masking differs from upstream exactly when some row is padded
    padded = bool((b["phoneme_ids_len"] < b["phoneme_ids"].shape[1]).any()) or bool(
        (b["semantic_ids_len"] < b["semantic_ids"].shape[1]).any()
    )
    gap = abs(fixed.loss.item() - b["loss_sum"].item())
    assert (gap > 1e-3 * abs(b["loss_sum"].item())) == padded


def test_gpt_kv_cache_matches_teacher_forced(gpt_case) -> None:
    """Decoding logits equal the training pass at the same positions, as upstream's two paths do."""
    record, io = gpt_case
    inp, tf, greedy = io["inputs"], io["teacher_forced"], io["decode"]["greedy"]
    Ty = inp["prompt_semantic"].shape[1]
    steps = greedy["logits"].shape[0]
    cache = record.model.new_cache(1, inp["phoneme_ids"].shape[1] + Ty + steps)
    record.model.set_precision("fp32")
    with torch.inference_mode():
        rows = [record.model.prefill(cache, inp["phoneme_ids"], inp["bert_feature"], inp["prompt_semantic"])]
        rows += [record.model.step(cache, t.view(1)) for t in greedy["tokens"][:-1]]
    gap = (torch.cat(rows) - tf["logits"][0, Ty : Ty + steps]).abs().max().item()
    assert gap <= max(10 * io["consistency"]["kv_cache_vs_teacher_forced_max_abs"], 1e-5)


@pytest.mark.parametrize("manifest_name", GPT_MANIFESTS or ["<no gpt manifests>"])
def test_gpt_manifest_keys_shapes_dtypes(manifest_name: str, upstream_fixtures: Path) -> None:
    """Our full-size model, as written to a file, has exactly upstream's tensor names, shapes and dtypes."""
    if manifest_name not in GPT_MANIFESTS:
        pytest.fail(f"no manifest_gpt_*.json in {upstream_fixtures}")
    manifest = json.loads((upstream_fixtures / manifest_name).read_text(encoding="utf-8"))
    model_cfg = {k: v["value"] for k, v in manifest["config_structure"]["model"].items()}
    with torch.device("meta"):
        model = GPT(GPTConfig.from_upstream(model_cfg))
    ours = {
        k: {"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")}
        for k, t in gpt_weights(model).items()
    }
    assert list(ours) == list(manifest["keys"])
    assert ours == manifest["keys"]
    assert len(ours) == manifest["n_tensors"]
    assert sum(p.numel() for p in model.parameters()) == manifest["n_params"]
