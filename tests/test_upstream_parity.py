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

SOVITS_STEMS = sorted(
    p.name.removesuffix(".pth")
    for p in _fixture_dir().glob("sovits_*_tiny.pth")
    if (p.parent / f"{p.name.removesuffix('.pth')}_io.pt").is_file()
)
SOVITS_MANIFESTS = sorted(p.name for p in _fixture_dir().glob("manifest_sovits_*.json"))
SOVITS_ATOL = 1e-5  # README: ge, m_p, logs_p, z and audio atol 1e-5
SOVITS_SPEC_RTOL_OF_MAX = 1e-5  # README: refer_spec rtol 1e-5 of its max


@pytest.fixture(scope="module", params=SOVITS_STEMS or ["<no sovits fixtures>"])
def sovits_case(request: pytest.FixtureRequest, upstream_fixtures: Path):
    """(model ready for inference, file record, io dict) for one fixture, loaded once per module."""
    stem = request.param
    if stem not in SOVITS_STEMS:
        pytest.fail(f"no sovits_*_tiny.pth with its _io.pt in {upstream_fixtures}")
    model, record = load_sovits(upstream_fixtures / f"{stem}.pth")
    io = torch.load(upstream_fixtures / f"{stem}_io.pt", weights_only=True)
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
    for stem in SOVITS_STEMS:
        io = torch.load(_fixture_dir() / f"{stem}_io.pt", weights_only=True)
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
