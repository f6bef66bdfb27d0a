"""Parity with the upstream projects on the fixtures in ``$UPSTREAM_FIXTURES`` (README there).

One section per upstream model family; each section reads every size from the fixture files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

# ==== SVC (so-vits-svc 4.1 / innnky 32k) =============================================================
from app.models.svc.config import SvcConfig
from app.models.svc.noise import ReplayNoise, TorchNoise, ZeroNoise
from app.models.svc.synthesizer import SvcSynthesizer
from app.models.upstream.svc import load_svc
from tests.conftest import REPO_ROOT

SVC_ATOL = 1e-4  # README: zero-noise / seeded audio and predicted-f0 audio
SVC_F0_ATOL = 1e-2  # Hz, predicted f0


def _svc_fixture_dirs() -> list[Path]:
    """Fixture folders ``svc41_tiny*/`` (G_*.pth + config.json) that have a ``<name>_io.pt``."""
    import os

    root = Path(os.environ.get("UPSTREAM_FIXTURES") or REPO_ROOT.parent / "shared" / "fixtures" / "upstream")
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


# ==== end SVC ========================================================================================
