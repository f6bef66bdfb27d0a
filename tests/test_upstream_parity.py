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
from app.models.upstream.svc import load_svc  # noqa: E402

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
