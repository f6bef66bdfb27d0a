"""Parity with upstream GPT-SoVITS / so-vits-svc on the fixtures in ``$UPSTREAM_FIXTURES``.

Each section is parametrized over the fixture files present, reads every size from the files,
and uses the tolerances of the fixtures' README.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent


def _fixture_dir() -> Path:
    """Same rule as the ``upstream_fixtures`` fixture, usable at collection time."""
    return Path(os.environ.get("UPSTREAM_FIXTURES") or REPO_ROOT.parent / "shared" / "fixtures" / "upstream")


# ======================================================================================= SoVITS
# SoVITS (GPT-SoVITS stage 2): sovits_<v>_tiny.pth + sovits_<v>_tiny_io.pt, manifest_sovits_<v>.json

from app.models.sovits.config import preset  # noqa: E402
from app.models.sovits.model import SoVITS  # noqa: E402
from app.models.sovits.reference import reference_spectrogram  # noqa: E402
from app.models.upstream.sovits import VERSION_HEADERS, _hparams_for, load_sovits  # noqa: E402

# SoVITS fixtures come from two folders: $UPSTREAM_FIXTURES (the shared set) and the repo's own
# tests/fixtures/upstream/ (v2Pro/v2ProPlus, made by tools/fixtures/make_sovits_pro_fixtures.py
# from upstream code in the same format). A stem present in both runs from both.
REPO_UPSTREAM_FIXTURES = REPO_ROOT / "tests" / "fixtures" / "upstream"


def _sovits_fixtures() -> list[tuple[Path, str]]:
    """(folder, stem) of every VITS-decoder sovits_*_tiny.pth that has its _io.pt, shared folder
    first. v3/v4 files (sovits_v3*_tiny, sovits_v4*_tiny: CFM + vocoder) have another io layout."""
    found: list[tuple[Path, str]] = []
    seen: set[Path] = set()
    for folder in (_fixture_dir(), REPO_UPSTREAM_FIXTURES):
        if folder.resolve() in seen:
            continue
        seen.add(folder.resolve())
        for p in sorted(folder.glob("sovits_*_tiny.pth")):
            stem = p.name.removesuffix(".pth")
            if stem.startswith(("sovits_v3", "sovits_v4")):
                continue
            if (folder / f"{stem}_io.pt").is_file():
                found.append((folder, stem))
    return found


def _sovits_fixture_id(fixture: tuple[Path, str]) -> str:
    folder, stem = fixture
    where = "repo" if folder.resolve() == REPO_UPSTREAM_FIXTURES.resolve() else "UPSTREAM_FIXTURES"
    return f"{where}/{stem}"


SOVITS_FIXTURES = _sovits_fixtures()
# VITS-decoder versions (v1, v2, v2Pro, v2ProPlus); the v3/v4 CFM manifests describe another model.
SOVITS_MANIFESTS = sorted(
    p.name
    for p in _fixture_dir().glob("manifest_sovits_*.json")
    if not p.name.startswith(("manifest_sovits_v3", "manifest_sovits_v4"))
)
SOVITS_ATOL = 1e-5  # README: ge, m_p, logs_p, z and audio atol 1e-5
SOVITS_SPEC_RTOL_OF_MAX = 1e-5  # README: refer_spec rtol 1e-5 of its max


@pytest.fixture(
    scope="module",
    params=SOVITS_FIXTURES or [None],
    ids=[_sovits_fixture_id(f) for f in SOVITS_FIXTURES] or ["<no sovits fixtures>"],
)
def sovits_case(request: pytest.FixtureRequest):
    """(model ready for inference, file record, io dict) for one fixture, loaded once per module."""
    if request.param is None:
        pytest.fail(f"no sovits_*_tiny.pth with its _io.pt in {_fixture_dir()} or {REPO_UPSTREAM_FIXTURES}")
    folder, stem = request.param
    model, record = load_sovits(folder / f"{stem}.pth")
    io = torch.load(folder / f"{stem}_io.pt", weights_only=True)
    return model, record, io


def test_sovits_version_detected_as_upstream(sovits_case) -> None:
    _, record, io = sovits_case
    assert record.version == io["meta"]["detected_model_version"]
    assert record.header.decode("ascii") == io["meta"]["file_head_bytes"]


def test_sovits_refer_spec(sovits_case) -> None:
    _, _, io = sovits_case
    expected = io["refer_spec"]
    ours = reference_spectrogram(io["inputs"]["ref_wav_32k"])
    assert ours.shape == expected.shape
    assert (ours - expected).abs().max() <= SOVITS_SPEC_RTOL_OF_MAX * expected.abs().max()


def test_sovits_codes(sovits_case) -> None:
    model, _, io = sovits_case
    ssl = io["inputs"]["ssl"]
    with torch.inference_mode():
        projected = model.ssl_proj(ssl)
    torch.testing.assert_close(projected, io["ssl_proj_out"], rtol=0, atol=1e-4)
    codes = model.extract_codes(ssl)
    assert codes.dtype == torch.int64
    assert torch.equal(codes, io["codes"])


def _sovits_decode_cases() -> list[str]:
    cases: set[str] = set()
    for folder, stem in SOVITS_FIXTURES:
        io = torch.load(folder / f"{stem}_io.pt", weights_only=True)
        cases.update(io["decode"])
    return sorted(cases) or ["<none>"]


@pytest.mark.parametrize("case", _sovits_decode_cases())
def test_sovits_decode(sovits_case, case: str) -> None:
    model, record, io = sovits_case
    if case not in io["decode"]:
        pytest.fail(f"decode case {case} missing from this fixture")
    expected = io["decode"][case]
    sv_emb = io["inputs"].get("sv_emb") if record.config.is_pro else None
    result = model.synthesize(
        io["codes"],
        io["inputs"]["phones"],
        [io["refer_spec"]],
        speed=float(expected["speed"]),
        noise_scale=float(expected["noise_scale"]),
        sv_emb=[sv_emb] if sv_emb is not None else None,
    )
    bins = record.config.ref_enc_bins
    with torch.inference_mode():
        spec = io["refer_spec"]
        ge_ref_enc = model.ref_enc(spec[:, :bins], torch.ones(1, 1, spec.size(2)))
    close = {"rtol": 0.0, "atol": SOVITS_ATOL}
    torch.testing.assert_close(ge_ref_enc, expected["ge_ref_enc"], **close)
    torch.testing.assert_close(result.ge, expected["ge"], **close)
    if "ge512" in expected:
        torch.testing.assert_close(result.ge_text, expected["ge512"], **close)
    assert torch.equal(result.y_mask, expected["y_mask"])
    for name in ("m_p", "logs_p", "z", "audio"):
        torch.testing.assert_close(getattr(result, name), expected[name], **close, msg=f"{case} {name}")


@pytest.mark.parametrize("manifest_name", SOVITS_MANIFESTS or ["<none>"])
def test_sovits_manifest(upstream_fixtures: Path, manifest_name: str) -> None:
    path = upstream_fixtures / manifest_name
    if not path.is_file():
        pytest.fail(f"no manifest_sovits_*.json in {upstream_fixtures}")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    version = manifest_name.removeprefix("manifest_sovits_").removesuffix(".json")
    config = preset(version)
    with torch.device("meta"):
        state = SoVITS(config).state_dict()
    exported = {k: list(v.shape) for k, v in state.items() if "enc_q" not in k}
    dropped = {k: list(v.shape) for k, v in state.items() if "enc_q" in k}
    # Same keys, same shapes, same order as upstream's files.
    assert list(exported) == list(manifest["keys"])
    assert exported == {k: v["shape"] for k, v in manifest["keys"].items()}
    assert dropped == {k: v["shape"] for k, v in manifest["dropped_enc_q_keys"].items()}
    assert sum(math.prod(s) for s in exported.values()) == manifest["n_params"]
    assert {v["dtype"] for v in manifest["keys"].values()} == {"float16"}  # what write_sovits stores
    header = VERSION_HEADERS.get(version, b"PK")
    assert manifest["leading_bytes"].startswith((header.decode(), repr(header)))

    # The config tree we write has upstream's keys and value types.
    def structure(node: dict) -> dict:
        return {
            k: structure(v) if "__class__" in v else v["type"] for k, v in node.items() if k != "__class__"
        }

    def ours(node) -> dict:
        return {k: ours(v) if hasattr(v, "to_dict") else type(v).__name__ for k, v in node.items()}

    assert ours(_hparams_for(config, "fixture")) == structure(manifest["config_structure"])


# =================================================================================== end SoVITS


# ========================================================================================== SVC
# so-vits-svc 4.1 / innnky 32k: svc41_tiny*/ (G_*.pth + config.json) + svc41_tiny*_io.pt, manifest_svc*.json

from app.models.svc.config import SvcConfig  # noqa: E402
from app.models.svc.noise import ReplayNoise, TorchNoise, ZeroNoise  # noqa: E402
from app.models.svc.synthesizer import SvcSynthesizer  # noqa: E402
from app.models.upstream.svc.checkpoint import load_svc  # noqa: E402

SVC_ATOL = 1e-4  # README: zero-noise / seeded audio and predicted-f0 audio
SVC_F0_ATOL = 1e-2  # Hz, predicted f0


def _svc_fixture_dirs() -> list[Path]:
    """Fixture folders ``svc41_tiny*/`` (G_*.pth + config.json) that have a ``<name>_io.pt``."""
    root = _fixture_dir()
    return sorted(p for p in root.glob("svc41_tiny*") if p.is_dir() and (root / f"{p.name}_io.pt").is_file())


SVC_DIRS = _svc_fixture_dirs()


@pytest.fixture(scope="module", params=SVC_DIRS, ids=[p.name for p in SVC_DIRS])
def svc_case(request: pytest.FixtureRequest):
    folder: Path = request.param
    generator = sorted(folder.glob("G_*.pth"))
    assert generator, f"{folder}: no G_*.pth"
    checkpoint = load_svc(generator[0])
    io = torch.load(folder.parent / f"{folder.name}_io.pt", weights_only=True)
    return checkpoint.model, io


def test_svc_fixtures_are_present(upstream_fixtures: Path) -> None:
    assert SVC_DIRS, f"no svc41_tiny* fixture folders (with *_io.pt) under {upstream_fixtures}"


def _svc_run(model: SvcSynthesizer, io: dict, noise, predict_f0: bool) -> tuple[dict, object]:
    """Infer with the fixture inputs, collecting the intermediates upstream recorded via hooks."""
    seen: dict[str, torch.Tensor] = {}

    def keep(name: str):
        def hook(_module, _args, output) -> None:
            seen[name] = output

        return hook

    handles = [
        model.pre.register_forward_hook(keep("pre_out")),
        model.emb_uv.register_forward_hook(keep("emb_uv_out")),
        model.enc_p.f0_emb.register_forward_hook(keep("f0_emb_out")),
        model.enc_p.register_forward_hook(keep("prior")),
        model.flow.register_forward_hook(keep("z")),
        model.dec.m_source.register_forward_hook(keep("har_source")),
    ]
    try:
        inputs = io["inputs"]
        out = model.infer(
            inputs["c"],
            inputs["f0"],
            inputs["uv"],
            sid=inputs["sid"],
            noise_scale=float(io["meta"]["noice_scale"]),
            predict_f0=predict_f0,
            noise=noise,
        )
    finally:
        for handle in handles:
            handle.remove()
    seen["m_p"], seen["logs_p"] = seen.pop("prior")
    seen["har_source"] = seen["har_source"].transpose(1, 2)  # ours (B, 1, N), upstream's (B, N, 1)
    return seen, out


@pytest.fixture(scope="module")
def svc_runs(svc_case) -> dict[str, tuple[dict, object, ReplayNoise | None]]:
    """The three recorded cases, each inferred once: name -> (intermediates, output, replay)."""
    model, io = svc_case
    replay = ReplayNoise([(d["fn"], d["value"]) for d in io["infer_seeded"]["random_draws"]])
    return {
        "infer_zero_noise": (*_svc_run(model, io, ZeroNoise(), predict_f0=False), None),
        "infer_seeded": (*_svc_run(model, io, replay, predict_f0=False), replay),
        "infer_zero_noise_predict_f0": (*_svc_run(model, io, ZeroNoise(), predict_f0=True), None),
    }


def test_svc_f0_coarse_is_exact(svc_case) -> None:
    model, io = svc_case
    assert torch.equal(model.coarse(io["inputs"]["f0"]), io["f0_coarse"])


@pytest.mark.parametrize("case", ["infer_zero_noise", "infer_seeded"])
@pytest.mark.parametrize("name", ["pre_out", "emb_uv_out", "f0_emb_out", "m_p", "logs_p", "z", "har_source"])
def test_svc_intermediates(svc_case, svc_runs, case: str, name: str) -> None:
    _, io = svc_case
    seen, _, _ = svc_runs[case]
    torch.testing.assert_close(seen[name], io[case][name], atol=SVC_ATOL, rtol=0)


def test_svc_zero_noise_audio(svc_case, svc_runs) -> None:
    _, io = svc_case
    _, out, _ = svc_runs["infer_zero_noise"]
    ref = io["infer_zero_noise"]
    assert out.audio.shape == ref["audio"].shape
    torch.testing.assert_close(out.audio, ref["audio"], atol=SVC_ATOL, rtol=0)
    torch.testing.assert_close(out.f0, ref["f0_used"], atol=0, rtol=0)


def test_svc_seeded_with_recorded_draws(svc_case, svc_runs) -> None:
    _, io = svc_case
    _, out, replay = svc_runs["infer_seeded"]
    assert replay.remaining == 1  # upstream's last draw (its noise branch) is never used
    ref = io["infer_seeded"]
    torch.testing.assert_close(out.audio, ref["audio"], atol=SVC_ATOL, rtol=0)
    # the draws matter: the seeded audio is not the zero-noise audio
    assert (ref["audio"] - io["infer_zero_noise"]["audio"]).abs().max() > 10 * SVC_ATOL


def test_svc_seeded_default_noise_draws_what_upstream_drew(svc_case) -> None:
    """TorchNoise(seed) on the CPU reproduces upstream's torch.manual_seed(seed) draws."""
    _, io = svc_case
    noise = TorchNoise(int(io["meta"]["seed_arg"]))
    like = torch.zeros(1)
    for draw in io["infer_seeded"]["random_draws"]:
        kind = noise.normal if "randn" in draw["fn"] else noise.uniform
        assert torch.equal(kind(draw["value"].shape, like), draw["value"])


def test_svc_zero_noise_predict_f0(svc_case, svc_runs) -> None:
    _, io = svc_case
    ref = io["infer_zero_noise_predict_f0"]
    seen, out, _ = svc_runs["infer_zero_noise_predict_f0"]
    torch.testing.assert_close(out.f0, ref["f0_used"], atol=SVC_F0_ATOL, rtol=0)
    torch.testing.assert_close(seen["f0_emb_out"], ref["f0_emb_out"], atol=SVC_ATOL, rtol=0)
    torch.testing.assert_close(out.audio, ref["audio"], atol=SVC_ATOL, rtol=0)


def _config_from_manifest(manifest: dict) -> SvcConfig:
    structure = manifest["config_structure"]
    return SvcConfig.from_json({s: {k: v["value"] for k, v in d.items()} for s, d in structure.items()})


@pytest.mark.parametrize(
    ("manifest_name", "variant"),
    [("manifest_svc41.json", "sovits41"), ("manifest_svc_innnky32k.json", "legacy32k")],
)
def test_svc_full_size_keys_and_shapes_equal_the_manifest(
    upstream_fixtures: Path, manifest_name: str, variant: str
) -> None:
    manifest = json.loads((upstream_fixtures / manifest_name).read_text())
    config = _config_from_manifest(manifest)
    with torch.device("meta"):
        model = SvcSynthesizer(config.synthesizer(variant))
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: v["shape"] for k, v in manifest["keys"].items()}
    assert list(ours) == list(theirs)  # same names in the same order
    assert ours == theirs
    assert sum(v.numel() for v in model.state_dict().values()) == manifest["n_params"]


def test_svc_vol_embedding_adds_the_manifest_keys(upstream_fixtures: Path) -> None:
    manifest = json.loads((upstream_fixtures / "manifest_svc41.json").read_text())
    config = _config_from_manifest(manifest)
    config.model.vol_embedding = True
    with torch.device("meta"):
        model = SvcSynthesizer(config.synthesizer())
    added = {k: list(v.shape) for k, v in model.state_dict().items() if k not in manifest["keys"]}
    assert added == {k: v["shape"] for k, v in manifest["keys_added_when_vol_embedding_true"].items()}


# ====================================================================================== end SVC


# ========================================================================================== GPT
# GPT (GPT-SoVITS stage 1): gpt_<v>_tiny.ckpt + gpt_<v>_tiny_io.pt, manifest_gpt_<v>.json

from app.models.gpt import SamplingOptions, decode  # noqa: E402
from app.models.gpt.config import GPTConfig  # noqa: E402
from app.models.gpt.model import GPT  # noqa: E402
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


# ============================================================================ speaker verification
# ERes2NetV2 speaker model of v2Pro/v2ProPlus: sv_<name>_tiny.ckpt + sv_<name>_tiny_io.pt,
# manifest_sv_eres2netv2.json

from app.audio.fbank import kaldi_fbank  # noqa: E402
from app.audio.resample import prepare_sv_reference  # noqa: E402
from app.models.encoders.sv import ERes2NetV2, SpeakerEncoder, SVConfig  # noqa: E402

SV_STEMS = sorted(
    p.name.removesuffix(".ckpt")
    for p in _fixture_dir().glob("sv_*_tiny.ckpt")
    if (p.parent / f"{p.name.removesuffix('.ckpt')}_io.pt").is_file()
)
SV_WAVE_ATOL = 1e-6  # README: ref_wav_32k / ref_wav_16k
SV_FBANK_ATOL = 1e-3  # README: fbank
SV_NET_ATOL = 1e-4  # README: intermediates and sv_emb
SV_INTERMEDIATES = ("layer3", "layer4", "layer3_ds", "fuse34")


@pytest.fixture(scope="module", params=SV_STEMS or ["<no sv fixtures>"])
def sv_case(request: pytest.FixtureRequest, upstream_fixtures: Path):
    """(encoder, io dict) for one fixture, loaded once per module."""
    stem = request.param
    if stem not in SV_STEMS:
        pytest.fail(f"no sv_*_tiny.ckpt with its _io.pt in {upstream_fixtures}")
    encoder = SpeakerEncoder(upstream_fixtures / f"{stem}.ckpt")
    io = torch.load(upstream_fixtures / f"{stem}_io.pt", weights_only=True)
    return encoder, io


def _sv_trace(encoder: SpeakerEncoder, run) -> tuple[torch.Tensor, dict[str, torch.Tensor], tuple[int, int]]:
    """``run()``'s embedding, the modules' outputs the fixture records, and (clipped, total) block activations."""
    model = encoder.model
    seen: dict[str, torch.Tensor] = {}
    counts = [0, 0]

    def count(module, inputs, output) -> None:
        counts[0] += int((inputs[0] > 20).sum())  # Hardtanh(0, 20) clips exactly these
        counts[1] += output.numel()

    hooks = [model.bn1.register_forward_hook(lambda m, i, o: seen.__setitem__("stem_bn1_pre_relu", o))]
    hooks += [
        getattr(model, name).register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o))
        for name in SV_INTERMEDIATES
    ]
    hooks += [m.register_forward_hook(count) for m in model.modules() if isinstance(m, torch.nn.Hardtanh)]
    try:
        emb = run()
    finally:
        for hook in hooks:
            hook.remove()
    return emb, seen, (counts[0], counts[1])


def test_sv_config_read_from_the_file(sv_case) -> None:
    encoder, io = sv_case
    kwargs = io["meta"]["constructor_kwargs_tiny"]
    expected = SVConfig(
        m_channels=kwargs["m_channels"],
        base_width=kwargs["baseWidth"],
        scale=kwargs["scale"],
        expansion=kwargs["expansion"],
        num_blocks=tuple(kwargs["num_blocks"]),
        feat_dim=kwargs.get("feat_dim", 80),
        embedding_size=kwargs["embedding_size"],
    )
    assert encoder.config == expected
    assert encoder.dim == io["sv_emb"].shape[-1]


def test_sv_reference_waves(sv_case) -> None:
    _, io = sv_case
    wav32, wav16 = prepare_sv_reference(io["inputs"]["ref_wav_loaded"], io["inputs"]["ref_sr"])
    for name, ours in (("ref_wav_32k", wav32), ("ref_wav_16k", wav16)):
        assert ours.shape == io[name].shape, name
        torch.testing.assert_close(ours, io[name], rtol=0, atol=SV_WAVE_ATOL, msg=name)


def test_sv_fbank(sv_case) -> None:
    _, io = sv_case
    expected = io["fbank"]
    ours = torch.stack([kaldi_fbank(row, expected.shape[-1]) for row in io["ref_wav_16k"]])
    assert ours.shape == expected.shape
    torch.testing.assert_close(ours, expected, rtol=0, atol=SV_FBANK_ATOL)


def test_sv_network_from_the_recorded_fbank(sv_case) -> None:
    encoder, io = sv_case
    with torch.inference_mode():
        emb, seen, clipped = _sv_trace(encoder, lambda: encoder.model.forward3(io["fbank"]))
    inter = io["intermediates"]
    stem = inter["stem_bn1_pre_relu"]
    torch.testing.assert_close(
        seen["stem_bn1_pre_relu"][0, :, :, : stem.shape[-1]], stem, rtol=0, atol=SV_NET_ATOL
    )
    for name in SV_INTERMEDIATES:
        assert seen[name].shape == inter[name].shape, name
        torch.testing.assert_close(seen[name], inter[name], rtol=0, atol=SV_NET_ATOL, msg=name)
    torch.testing.assert_close(emb, io["sv_emb"], rtol=0, atol=SV_NET_ATOL)
    # The fixture's weights push some block activations past 20: an unclipped ReLU cannot pass.
    assert clipped == (int(io["hardtanh_clipped_count"]), int(io["hardtanh_output_count"]))


def test_sv_embedding_from_the_decoded_reference(sv_case) -> None:
    """The whole path the UI runs: decoded file -> 32 kHz -> 16 kHz -> fbank -> forward3."""
    encoder, io = sv_case
    wav32, _ = prepare_sv_reference(io["inputs"]["ref_wav_loaded"], io["inputs"]["ref_sr"])
    emb, seen, _ = _sv_trace(encoder, lambda: encoder.embed_32k(wav32))
    assert emb.shape == io["sv_emb"].shape and emb.dtype == torch.float32
    torch.testing.assert_close(emb, io["sv_emb"], rtol=0, atol=SV_NET_ATOL)
    for name in SV_INTERMEDIATES:
        torch.testing.assert_close(seen[name], io["intermediates"][name], rtol=0, atol=SV_NET_ATOL, msg=name)


def test_sv_manifest_keys_and_shapes(upstream_fixtures: Path) -> None:
    """Upstream's full-size model (baseWidth 24, scale 4, expansion 4, defaults otherwise)."""
    path = upstream_fixtures / "manifest_sv_eres2netv2.json"
    if not path.is_file():
        pytest.fail(f"no manifest_sv_eres2netv2.json in {upstream_fixtures}")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    ctor = manifest["constructor"]
    defaults = ctor["defaults_used"]
    assert (defaults["pooling_func"], defaults["two_emb_layer"]) == ("TSTP", False)  # no weights in the head
    config = SVConfig(
        m_channels=defaults["m_channels"],
        base_width=ctor["baseWidth"],
        scale=ctor["scale"],
        expansion=ctor["expansion"],
        num_blocks=tuple(defaults["num_blocks"]),
        feat_dim=defaults["feat_dim"],
        embedding_size=defaults["embedding_size"],
    )
    assert config == SVConfig()  # our defaults are upstream's pretrained model
    with torch.device("meta"):
        model = ERes2NetV2(config)
    ours = {
        k: {"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")}
        for k, t in model.state_dict().items()
    }
    assert list(ours) == list(manifest["keys"])
    assert ours == manifest["keys"]
    assert len(ours) == manifest["n_tensors"]
    # n_params counts every stored value (BatchNorm statistics included), as the file holds them.
    assert sum(t.numel() for t in model.state_dict().values()) == manifest["n_params"]
    assert config.emb_dim == 20480
    # The shapes alone give the config back (the real file holds no config).
    assert SVConfig.from_state_dict(model.state_dict()) == config


# ======================================================================== end speaker verification


# ================================================================ SoVITS v3/v4 (flow matching)
# Parity with upstream GPT-SoVITS v3/v4 (flow-matching SoVITS) on the fixtures in ``$UPSTREAM_FIXTURES``.
#
# Files: ``sovits_v{4,3}_tiny.pth`` + ``sovits_v{4,3}_tiny_io.pt`` (README section "SoVITS v4 and v3
# (CFM + vocoder)"), the LoRA exports ``sovits_v{4,3}_lora_tiny.pth`` + io merged onto their base
# (section "LoRA-trained v4/v3 files"; the merged weights themselves are checked in
# tests/models/upstream/test_sovits_lora.py) and ``manifest_sovits_v{3,4}.json``. Every size is
# read from the files; the tolerances are the README's. The vocoder stage (``audio``) belongs to
# the vocoder tests.
from app.audio.resample import sinc_resample  # noqa: E402
from app.models.sovits.cfm_model import CfmSoVITS  # noqa: E402
from app.models.sovits.reference import normalize_mel, reference_mel  # noqa: E402
from app.models.upstream.sovits import build_cfm_sovits, cfm_config, load_cfm_sovits, read_sovits  # noqa: E402
from app.models.upstream.sovits_lora import merge_lora, read_lora  # noqa: E402

# README "Determinism and tolerances", v3/v4 with the recorded noise injected.
SPEC_RTOL_OF_MAX = 1e-5  # refer_spec
MEL_RAW_ATOL = 1e-4  # ref_mel_raw
FEATURE_ATOL = 1e-5  # ge, fea_ref_full, fea_todo
CFM_ATOL = 1e-4  # velocity_per_step, cfm_out_full, mel_norm
MEL_ATOL = 1e-3  # mel (de-normalisation multiplies by 7)
WAVE_ATOL = 1e-6  # resampled reference (as the speaker-model fixtures' waves)


def _cfm_stems() -> list[str]:
    """v3/v4 tiny checkpoints (base and LoRA exports) that have their io file."""
    folder = _fixture_dir()
    files = sorted(folder.glob("sovits_v[34]_tiny.pth")) + sorted(folder.glob("sovits_v[34]_lora*.pth"))
    return [p.stem for p in files if (folder / f"{p.stem}_io.pt").is_file()]


CFM_STEMS = _cfm_stems()
CFM_MANIFESTS = sorted(p.name for p in _fixture_dir().glob("manifest_sovits_v[34].json"))


@pytest.fixture(scope="module", params=CFM_STEMS or [None], ids=CFM_STEMS or ["<no v3/v4 fixtures>"])
def cfm_case(request: pytest.FixtureRequest, upstream_fixtures: Path):
    """(model ready for inference, record of the (base) file, io dict, the file's leading bytes),
    loaded once per module; a LoRA export is merged onto the base its io file names."""
    if request.param is None:
        pytest.fail(f"no sovits_v3_tiny.pth / sovits_v4_tiny.pth with its _io.pt in {upstream_fixtures}")
    path = upstream_fixtures / f"{request.param}.pth"
    io = torch.load(upstream_fixtures / f"{request.param}_io.pt", weights_only=True)
    if "base_checkpoint" in io["meta"]:
        lora = read_lora(path)
        record = read_sovits(upstream_fixtures / io["meta"]["base_checkpoint"], expect_version=lora.version)
        merged = merge_lora(record.state_dict, lora, record.path)
        return build_cfm_sovits(merged, record.config, source=f"{path} on its base"), record, io, path
    model, record = load_cfm_sovits(path)
    return model, record, io, path


def _runs(io: dict) -> list[str]:
    return sorted(io["runs"])


def _injected(io: dict):
    """noise_fn giving upstream's recorded starting noise of each chunk."""
    chunks = io["shared"]["chunks"]
    return lambda index, shape: chunks[index]["noise"]


def _close(ours: torch.Tensor, expected: torch.Tensor, atol: float, what: str) -> None:
    assert ours.shape == expected.shape, f"{what}: shape {tuple(ours.shape)} != {tuple(expected.shape)}"
    torch.testing.assert_close(ours, expected, rtol=0, atol=atol, msg=lambda m: f"{what}: {m}")


def test_version_and_sizes_read_from_the_file(cfm_case) -> None:
    _, record, io, path = cfm_case
    assert record.version == io["version"] == io["meta"]["model_version"]
    assert path.read_bytes()[:2].decode("ascii") == io["meta"]["file_head_bytes"]
    c = record.config
    dit, wns1 = io["meta"]["fixture_dit"], io["meta"]["fixture_wns1"]
    assert (c.dit_dim, c.dit_depth, c.dit_heads, c.dit_dim_head, c.dit_ff_mult, c.dit_conv_layers) == (
        dit["dim"],
        dit["depth"],
        dit["heads"],
        dit["dim_head"],
        dit["ff_mult"],
        dit["conv_layers"],
    )
    assert (c.wns1_hidden, c.wns1_layers) == (wns1["hidden_channels"], wns1["n_layers"])
    assert c.n_symbols == 732 and io["meta"]["symbol_version"] == "v2"


def test_reference_chain_from_the_decoded_file(cfm_case) -> None:
    """refer_spec (32 kHz, level rule) and the resampled wave the reference mel reads."""
    model, _, io, _ = cfm_case
    wav, sr = io["inputs"]["ref_wav_loaded"], int(io["inputs"]["ref_sr"])
    shared = io["shared"]
    wav32, _ = prepare_sv_reference(wav, sr)
    spec = reference_spectrogram(wav32)
    assert spec.shape == shared["refer_spec"].shape
    assert (spec - shared["refer_spec"]).abs().max() <= SPEC_RTOL_OF_MAX * shared["refer_spec"].abs().max()
    mono = wav.mean(0, keepdim=True) if wav.shape[0] > 1 else wav
    tgt = sinc_resample(mono, sr, model.config.cfm_audio.sampling_rate)
    _close(tgt, shared["ref_wav_tgt_sr"], WAVE_ATOL, "ref_wav_tgt_sr")


def test_reference_mel(cfm_case) -> None:
    model, _, io, _ = cfm_case
    shared = io["shared"]
    raw = reference_mel(shared["ref_wav_tgt_sr"], model.config.cfm_audio)
    _close(raw, shared["ref_mel_raw"], MEL_RAW_ATOL, "ref_mel_raw")
    _close(model.reference_mel(shared["ref_wav_tgt_sr"]), normalize_mel(shared["ref_mel_raw"]), 1e-5, "norm")


def test_timbre_features_and_prompt(cfm_case) -> None:
    model, _, io, _ = cfm_case
    inputs, shared = io["inputs"], io["shared"]
    ge = model.timbre(shared["refer_spec"])
    _close(ge, shared["ge"], FEATURE_ATOL, "ge")
    prompt_codes = inputs["prompt_codes"][None]  # (1, 1, Tc_ref): upstream's prompt.unsqueeze(0)
    fea_ref = model.decode_encp(prompt_codes, inputs["phones_ref"], shared["ge"])
    _close(fea_ref, shared["fea_ref_full"], FEATURE_ATOL, "fea_ref_full")
    prompt = model.prompt(
        prompt_codes, inputs["phones_ref"], shared["ge"], normalize_mel(shared["ref_mel_raw"])
    )
    assert prompt.frames == shared["T_min"]
    assert model.chunk_frames(prompt) == shared["chunk_len"]
    _close(prompt.mel, shared["ref_mel_norm_cropped"], CFM_ATOL, "ref_mel_norm_cropped")
    fea_todo = model.decode_encp(inputs["pred_semantic"], inputs["phones"], shared["ge"])
    _close(fea_todo, shared["fea_todo"], FEATURE_ATOL, "fea_todo")


def _upstream_prompt(model: CfmSoVITS, io: dict):
    """The prompt built from upstream's recorded intermediates (isolates the CFM stage)."""
    inputs, shared = io["inputs"], io["shared"]
    return model.prompt(
        inputs["prompt_codes"][None], inputs["phones_ref"], shared["ge"], shared["ref_mel_norm_cropped"]
    )


def test_velocity_of_every_step(cfm_case) -> None:
    """The DiT at each Euler step, fed upstream's own trajectory (noise + recorded velocities)."""
    model, _, io, _ = cfm_case
    shared = io["shared"]
    runs = [r for r in _runs(io) if "velocity_per_step" in io["runs"][r]["chunks"][0]]
    assert runs, "no run records velocity_per_step"
    for name in runs:
        run = io["runs"][name]
        steps = int(run["sample_steps"])
        velocities = run["chunks"][0]["velocity_per_step"]  # (steps, 1, N, 100)
        assert velocities.shape[0] == steps
        fea = torch.cat([shared["fea_ref_full"][..., : shared["T_min"]], shared["fea_todo"]], dim=2)
        prompt_mel = shared["ref_mel_norm_cropped"]
        p = prompt_mel.shape[-1]
        x = shared["chunks"][0]["noise"].clone()
        x[..., :p] = 0
        prompt_x = torch.zeros_like(x)
        prompt_x[..., :p] = prompt_mel
        d = 1 / steps
        dd = torch.full((1,), d)
        t = 0.0
        for step in range(steps):
            with torch.inference_mode():
                v = model.cfm.estimator(
                    x.transpose(1, 2), prompt_x.transpose(1, 2), fea.transpose(1, 2), torch.full((1,), t), dd
                )
            _close(v, velocities[step], CFM_ATOL, f"{name} velocity step {step}")
            x = x + d * velocities[step].transpose(1, 2)  # continue on upstream's trajectory
            t = t + d
            x[..., :p] = 0


@pytest.mark.parametrize("run", ["steps_4", "steps_8"])
def test_cfm_output_and_mel(cfm_case, run: str) -> None:
    model, _, io, _ = cfm_case
    if run not in io["runs"]:
        pytest.fail(f"run {run} missing from this fixture (has {_runs(io)})")
    expected = io["runs"][run]
    inputs = io["inputs"]
    result = model.synthesize(
        inputs["pred_semantic"],
        inputs["phones"],
        _upstream_prompt(model, io),
        int(expected["sample_steps"]),
        noise_fn=_injected(io),
    )
    assert len(result.chunks) == len(expected["chunks"]) == len(io["shared"]["chunks"])
    for i, (ours, theirs) in enumerate(zip(result.chunks, expected["chunks"], strict=True)):
        _close(ours, theirs["cfm_out_full"], CFM_ATOL, f"{run} chunk {i} cfm_out_full")
    _close(result.mel_norm, expected["mel_norm"], CFM_ATOL, f"{run} mel_norm")
    _close(result.mel, expected["mel"], MEL_ATOL, f"{run} mel")


def test_whole_segment_from_the_reference_file(cfm_case) -> None:
    """From the decoded reference file to the mel, nothing recorded fed in but inputs and noise."""
    model, _, io, _ = cfm_case
    inputs = io["inputs"]
    wav, sr = inputs["ref_wav_loaded"], int(inputs["ref_sr"])
    wav32, _ = prepare_sv_reference(wav, sr)
    ge = model.timbre(reference_spectrogram(wav32))
    mono = wav.mean(0, keepdim=True) if wav.shape[0] > 1 else wav
    ref_mel = model.reference_mel(sinc_resample(mono, sr, model.config.cfm_audio.sampling_rate))
    prompt = model.prompt(inputs["prompt_codes"][None], inputs["phones_ref"], ge, ref_mel)
    run = io["runs"][_runs(io)[0]]
    mel = model.decode_mel(
        inputs["pred_semantic"], inputs["phones"], prompt, int(run["sample_steps"]), noise_fn=_injected(io)
    )
    _close(mel, run["mel"], MEL_ATOL, "mel")


def test_default_noise_draws_what_upstream_drew(cfm_case) -> None:
    """After torch.manual_seed(seed) the global generator gives upstream's noise (no injection)."""
    model, _, io, _ = cfm_case
    run = io["runs"][_runs(io)[0]]
    torch.manual_seed(int(io["shared"]["seed"]))
    mel = model.decode_mel(
        io["inputs"]["pred_semantic"],
        io["inputs"]["phones"],
        _upstream_prompt(model, io),
        int(run["sample_steps"]),
    )
    _close(mel, run["mel"], MEL_ATOL, "mel")


@pytest.mark.parametrize("manifest_name", CFM_MANIFESTS or ["<none>"])
def test_full_size_keys_and_shapes_equal_the_manifest(upstream_fixtures: Path, manifest_name: str) -> None:
    path = upstream_fixtures / manifest_name
    if not path.is_file():
        pytest.fail(f"no manifest_sovits_v3.json / manifest_sovits_v4.json in {upstream_fixtures}")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    version = manifest_name.removeprefix("manifest_sovits_").removesuffix(".json")
    config = preset(version)
    with torch.device("meta"):
        state = CfmSoVITS(config).state_dict()
    shapes = {k: list(v.shape) for k, v in state.items()}
    # Same keys, same order, same shapes as upstream's files; all stored as fp16.
    assert list(shapes) == list(manifest["keys"])
    assert shapes == {k: v["shape"] for k, v in manifest["keys"].items()}
    assert sum(math.prod(s) for s in shapes.values()) == manifest["n_params"]
    assert {v["dtype"] for v in manifest["keys"].values()} == {"float16"}
    assert manifest["config_structure"]["model"]["version"]["value"] == version
    literals = manifest["constructor_literals"]["DiT"]
    assert (config.dit_dim, config.dit_depth, config.dit_heads, config.dit_dim_head) == (
        literals["dim"],
        literals["depth"],
        literals["heads"],
        literals["dim_head"],
    )
    assert (config.dit_ff_mult, config.dit_conv_layers) == (literals["ff_mult"], literals["conv_layers"])
    # The sizes upstream hard-codes are recovered from the weights alone (no fixture_dit).
    meta_state = {k: torch.empty(v["shape"], device="meta") for k, v in manifest["keys"].items()}
    assert cfm_config(meta_state, None, version, manifest_name) == config


# ============================================================================== v3/v4 vocoders
# Parity of the v3/v4 vocoders with upstream GPT-SoVITS on the fixtures in ``$UPSTREAM_FIXTURES``.
#
# Fixtures (README section "SoVITS v4 and v3 (CFM + vocoder)"): every ``sovits_v3*_io.pt`` /
# ``sovits_v4*_io.pt`` holds, per run, the de-normalised mel upstream fed its vocoder and the audio
# it got; the vocoder is named in the io file's ``meta.vocoder`` (LoRA io files: in their base's),
# else it is the folder's ``vocoder_v4_tiny.pth`` / ``bigvgan_v3_tiny/``. Full-size layouts are in
# ``manifest_vocoder_v4.json`` and ``manifest_bigvgan_v3.json``. Sizes are read from the files.
from app.models.nn.alias_free import DownSample1d, UpSample1d  # noqa: E402
from app.models.upstream.vocoder import (  # noqa: E402
    bigvgan_expected_shapes,
    load_bigvgan,
    load_v4_vocoder,
    read_bigvgan,
    read_bigvgan_config,
    read_v4_vocoder,
    v4_expected_shapes,
)
from app.models.vocoders.bigvgan import BIGVGAN_CONFIG_FILE, BigVGAN, BigVGANConfig  # noqa: E402
from app.models.vocoders.hifigan import HiFiGANVocoder, HiFiGANVocoderConfig  # noqa: E402

AUDIO_ATOL = 1e-5  # README: v3/v4 `audio` atol 1e-5
# Where the vocoder is when an io file does not name it (README: this folder's files).
DEFAULT_VOCODERS = {"v4": "vocoder_v4_tiny.pth", "v3": "bigvgan_v3_tiny"}


IO_FILES = sorted(p.name for p in _fixture_dir().glob("sovits_v[34]*_io.pt"))
V4_FILES = sorted(p.name for p in _fixture_dir().glob("vocoder_v4*.pth"))
BIGVGAN_DIRS = sorted(
    p.name for p in _fixture_dir().glob("bigvgan_v3*") if (p / BIGVGAN_CONFIG_FILE).is_file()
)


def _load_io(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def _vocoder_path(folder: Path, io: dict) -> Path:
    """The vocoder file/folder an io file was computed with."""
    meta = io["meta"]
    named = meta.get("vocoder")
    if named is None and meta.get("base_checkpoint"):
        base_io = folder / f"{Path(meta['base_checkpoint']).stem}_io.pt"
        if base_io.is_file():
            named = _load_io(base_io)["meta"].get("vocoder")
    if named is None:
        return folder / DEFAULT_VOCODERS[io["version"]]
    return folder / (named.get("folder") or named["file"])


@pytest.fixture(scope="module", params=IO_FILES or [None], ids=IO_FILES or ["<no v3/v4 io files>"])
def vocoder_case(request: pytest.FixtureRequest, upstream_fixtures: Path):
    """(vocoder loaded as the app loads it, io dict) for one io file."""
    if request.param is None:
        pytest.skip(f"no sovits_v3*/v4*_io.pt under {upstream_fixtures}")
    io = _load_io(upstream_fixtures / request.param)
    path = _vocoder_path(upstream_fixtures, io)
    vocoder = load_bigvgan(path) if io["version"] == "v3" else load_v4_vocoder(path)
    return vocoder, io


def test_vocoder_fixtures_are_present() -> None:
    assert IO_FILES and V4_FILES and BIGVGAN_DIRS, f"v3/v4 vocoder fixtures missing under {_fixture_dir()}"


def test_vocoder_audio_equals_upstream(vocoder_case) -> None:
    vocoder, io = vocoder_case
    expected_type = BigVGAN if io["version"] == "v3" else HiFiGANVocoder
    assert isinstance(vocoder, expected_type)
    assert io["runs"], "io file without runs"
    for name, run in io["runs"].items():
        assert run["audio_sr"] == vocoder.sample_rate, name
        mel = run["mel"]
        with torch.inference_mode():
            out = vocoder(mel)
        assert out.shape == (1, 1, mel.shape[-1] * vocoder.hop_length), name
        raw = out[0, 0]
        # Upstream divides by the peak only when it exceeds 1 (inference_webui.py, "16-bit clipping").
        peak = raw.abs().max()
        audio = raw / peak if peak > 1 else raw
        assert bool(peak > 1) == bool(run["audio_was_peak_normalized"]), name
        if run["audio_was_peak_normalized"]:
            torch.testing.assert_close(raw, run["vocoder_out"].reshape(-1), atol=AUDIO_ATOL, rtol=0)
        torch.testing.assert_close(
            audio, run["audio"], atol=AUDIO_ATOL, rtol=0, msg=lambda m, n=name: f"{n}: {m}"
        )


@pytest.mark.parametrize("name", V4_FILES or ["<none>"])
def test_v4_vocoder_file_shape_is_read_from_its_tensors(upstream_fixtures: Path, name: str) -> None:
    if not V4_FILES:
        pytest.skip("no vocoder_v4*.pth")
    config, state = read_v4_vocoder(upstream_fixtures / name)
    assert config.hop_length == 480 and config.sample_rate == 48000
    # The io files that name this vocoder record upstream's constructor arguments.
    for io_name in IO_FILES:
        meta = _load_io(upstream_fixtures / io_name)["meta"].get("vocoder") or {}
        if meta.get("file") == name and "constructor" in meta:
            c = meta["constructor"]
            assert (config.num_mels, config.upsample_initial_channel) == (
                c["initial_channel"],
                c["upsample_initial_channel"],
            )
            assert list(config.upsample_rates) == c["upsample_rates"]
            assert list(config.upsample_kernel_sizes) == c["upsample_kernel_sizes"]
            assert [list(d) for d in config.resblock_dilation_sizes] == c["resblock_dilation_sizes"]
            assert c["gin_channels"] == 0 and c["is_bias"] is True and "conv_post.bias" in state


@pytest.mark.parametrize("name", BIGVGAN_DIRS or ["<none>"])
def test_bigvgan_file_filters_equal_the_kaiser_design(upstream_fixtures: Path, name: str) -> None:
    """The file stores the resampling filters; ours, designed from scratch, must be the same numbers."""
    if not BIGVGAN_DIRS:
        pytest.skip("no bigvgan_v3* folders")
    file = read_bigvgan(upstream_fixtures / name)
    assert file.weight_norm  # NVIDIA's release layout
    up, down = UpSample1d().filter, DownSample1d().lowpass.filter
    filters = {k: v for k, v in file.state_dict.items() if k.endswith(".filter")}
    assert filters
    for key, value in filters.items():
        torch.testing.assert_close(value, up if key.endswith("upsample.filter") else down, atol=1e-7, rtol=0)


def _manifest(upstream_fixtures: Path, name: str) -> dict:
    path = upstream_fixtures / name
    if not path.is_file():
        pytest.skip(f"{name} not in {upstream_fixtures}")
    return json.loads(path.read_text(encoding="utf-8"))


def _layout(factory_shapes: dict[str, torch.Size]) -> dict[str, list[int]]:
    return {k: list(v) for k, v in factory_shapes.items()}


def test_v4_vocoder_full_size_equals_the_manifest(upstream_fixtures: Path) -> None:
    manifest = _manifest(upstream_fixtures, "manifest_vocoder_v4.json")
    c = manifest["constructor"]
    config = HiFiGANVocoderConfig()  # upstream's hard-coded values are the defaults
    assert (config.num_mels, config.upsample_initial_channel, config.resblock) == (
        c["initial_channel"],
        c["upsample_initial_channel"],
        c["resblock"],
    )
    assert list(config.resblock_kernel_sizes) == c["resblock_kernel_sizes"]
    assert [list(d) for d in config.resblock_dilation_sizes] == c["resblock_dilation_sizes"]
    assert list(config.upsample_rates) == c["upsample_rates"]
    assert list(config.upsample_kernel_sizes) == c["upsample_kernel_sizes"]
    assert c["gin_channels"] == 0 and c["is_bias"] is True
    shapes = v4_expected_shapes(config)  # what read_v4_vocoder demands of a file
    assert _layout(shapes) == {k: v["shape"] for k, v in manifest["keys"].items()}
    assert len(shapes) == manifest["n_tensors"]
    assert sum(s.numel() for s in shapes.values()) == manifest["n_params"]
    assert {v["dtype"] for v in manifest["keys"].values()} == {"float32"}


def test_bigvgan_full_size_equals_the_manifest(upstream_fixtures: Path, tmp_path: Path) -> None:
    manifest = _manifest(upstream_fixtures, "manifest_bigvgan_v3.json")
    config_path = tmp_path / BIGVGAN_CONFIG_FILE
    config_path.write_text(json.dumps(manifest["config_json"]), encoding="utf-8")
    config = read_bigvgan_config(config_path)
    assert config == BigVGANConfig()  # the defaults are the released 24 kHz model
    assert (config.sampling_rate, config.hop_size) == (24000, 256)
    shapes = bigvgan_expected_shapes(config, True)  # the file keeps weight norm
    assert _layout(shapes) == {k: v["shape"] for k, v in manifest["keys"].items()}
    assert len(shapes) == manifest["n_tensors"]
    assert sum(s.numel() for s in shapes.values()) == manifest["n_params"]  # filters counted too
