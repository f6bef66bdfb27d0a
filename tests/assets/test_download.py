"""app.assets.download with a local transport: verification, atomic placement, archives, offline."""

from __future__ import annotations

import hashlib
import shutil
import time
import zipfile
from pathlib import Path

from app.assets.download import download_asset
from app.assets.registry import Archive, Asset, AssetFile


class LocalTransport:
    """Serves files from a folder as if it were the hub / the web."""

    def __init__(self, remote: Path):
        self.remote = remote
        self.calls: list[str] = []

    def hf(self, repo_id, filename, revision, dest_dir):
        self.calls.append(f"hf:{repo_id}@{revision}:{filename}")
        out = Path(dest_dir) / filename
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.remote / filename, out)
        return out

    def url(self, url, dest):
        self.calls.append(f"url:{url}")
        shutil.copyfile(self.remote / url.rsplit("/", 1)[-1], dest)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hf_asset(files) -> Asset:
    return Asset(id="t", description="test", source="hf", repo_id="o/r", revision="a" * 40, folder="m",
                 files=tuple(files), required=True, used_by="tests")  # fmt: skip


def test_downloads_verify_and_land_atomically(tmp_path):
    remote = tmp_path / "remote"
    (remote / "sub").mkdir(parents=True)
    (remote / "sub" / "good.bin").write_bytes(b"good")
    (remote / "bad.bin").write_bytes(b"tampered")
    asset = _hf_asset(
        [
            AssetFile("good.bin", origin="sub/good.bin", sha256=_sha(b"good"), size=4),
            AssetFile("bad.bin", origin="bad.bin", sha256=_sha(b"original")),
        ]
    )
    root = tmp_path / "pretrained"
    transport = LocalTransport(remote)
    report = download_asset(asset, root, transport=transport, check_host=lambda h: None)
    results = {f.path.name: f for f in report.files}
    assert results["good.bin"].result == "downloaded"
    assert (root / "m" / "good.bin").read_bytes() == b"good"
    assert results["bad.bin"].result == "failed" and "sha256" in results["bad.bin"].reason
    assert not (root / "m" / "bad.bin").exists(), "a file failing verification must not be placed"
    assert not [p for p in (root / "m").iterdir() if p.name.startswith(".download-")], "temp dirs left behind"
    assert f"hf:o/r@{'a' * 40}:sub/good.bin" in transport.calls
    # Second run: the valid file is kept, not fetched again.
    transport.calls.clear()
    again = download_asset(asset, root, transport=transport, check_host=lambda h: None)
    assert {f.path.name: f.result for f in again.files}["good.bin"] == "present"
    assert transport.calls == ["hf:o/r@" + "a" * 40 + ":bad.bin"]


def test_archive_is_extracted_without_its_top_folder(tmp_path):
    remote = tmp_path / "remote"
    remote.mkdir()
    with zipfile.ZipFile(remote / "bundle.zip", "w") as zf:
        zf.writestr("Model/a.onnx", b"onnx")
        zf.writestr("Model/b.txt", b"text")
        zf.writestr("Model/unused.md", b"-")
    asset = Asset(
        id="z", description="zip", source="url", repo_id=None, revision=None, folder="Model",
        files=(AssetFile("a.onnx"), AssetFile("b.txt")), required=False, used_by="tests",
        archive=Archive("https://example.org/dl/bundle.zip", sha256=_sha((remote / "bundle.zip").read_bytes()), strip="Model/"),
    )  # fmt: skip
    report = download_asset(
        asset, tmp_path / "pm", transport=LocalTransport(remote), check_host=lambda h: None
    )
    assert report.ok, report
    assert (tmp_path / "pm" / "Model" / "a.onnx").read_bytes() == b"onnx"
    assert not (tmp_path / "pm" / "Model" / "unused.md").exists()


def test_unsafe_archive_entries_are_refused(tmp_path):
    remote = tmp_path / "remote"
    remote.mkdir()
    with zipfile.ZipFile(remote / "evil.zip", "w") as zf:
        zf.writestr("../escape.txt", b"x")
        zf.writestr("a.txt", b"a")
    asset = Asset(
        id="e", description="evil", source="url", repo_id=None, revision=None, folder="E",
        files=(AssetFile("a.txt"),), required=False, used_by="tests", archive=Archive("https://example.org/evil.zip"),
    )  # fmt: skip
    report = download_asset(
        asset, tmp_path / "pm", transport=LocalTransport(remote), check_host=lambda h: None
    )
    assert not report.ok and "unsafe path" in report.files[0].reason
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "pm" / "E" / "a.txt").exists()


def test_offline_fails_at_once_but_package_files_still_copy(tmp_path):
    from app import assets

    start = time.monotonic()
    report = download_asset(assets.get("demucs-htdemucs"), tmp_path, offline=True)
    assert time.monotonic() - start < 5
    results = {f.path.name: f for f in report.files}
    assert results["htdemucs.yaml"].result == "downloaded"  # shipped inside the demucs package
    assert "models: ['955717e8']" in (tmp_path / "demucs" / "htdemucs.yaml").read_text()
    th = results["955717e8-8726e21a.th"]
    assert th.result == "failed" and "offline" in th.reason


def test_unreachable_host_fails_fast_without_offline_flag(tmp_path):
    from app import assets

    start = time.monotonic()
    # Not offline: the real reachability probe runs and is refused by the suite's socket guard / DNS.
    report = download_asset(assets.get("rmvpe"), tmp_path)
    assert time.monotonic() - start < 10
    assert not report.ok and "cannot reach huggingface.co" in report.files[0].reason


def _url_asset(files) -> Asset:
    return Asset(id="u", description="test", source="url", repo_id=None, revision=None, folder="m",
                 files=tuple(files), required=False, used_by="tests")  # fmt: skip


def test_file_urls_through_the_real_transport_verify_keep_aside_and_report_digests(tmp_path):
    """NetworkTransport over file:// URLs: the catalog's sha256 is enforced, a refused download and
    a corrupt file it replaces are kept aside, and files without a catalog digest get theirs reported."""
    remote = tmp_path / "remote"
    remote.mkdir()
    for name, data in {
        "ok.bin": b"ok",
        "swapped.bin": b"changed by the publisher",
        "new.bin": b"new",
    }.items():
        (remote / name).write_bytes(data)
    asset = _url_asset(
        [
            AssetFile("ok.bin", origin=(remote / "ok.bin").as_uri(), sha256=_sha(b"ok")),
            AssetFile("swapped.bin", origin=(remote / "swapped.bin").as_uri(), sha256=_sha(b"original")),
            AssetFile("new.bin", origin=(remote / "new.bin").as_uri()),
        ]
    )
    root = tmp_path / "pretrained"
    (root / "m").mkdir(parents=True)
    (root / "m" / "ok.bin").write_bytes(b"corrupt")  # there already, fails verification
    report = download_asset(asset, root, check_host=lambda h: None)
    got = {f.path.name: f for f in report.files}
    assert got["ok.bin"].result == "downloaded" and (root / "m" / "ok.bin").read_bytes() == b"ok"
    assert (root / "m" / "ok.bin.sha256-mismatch").read_bytes() == b"corrupt"
    assert "kept as" in got["ok.bin"].reason and got["ok.bin"].sha256 == ""
    assert got["swapped.bin"].result == "failed"
    assert f"expected {_sha(b'original')}" in got["swapped.bin"].reason
    assert "swapped.bin.sha256-mismatch" in got["swapped.bin"].reason
    assert not (root / "m" / "swapped.bin").exists()
    assert (root / "m" / "swapped.bin.sha256-mismatch").read_bytes() == b"changed by the publisher"
    assert got["new.bin"].result == "downloaded" and got["new.bin"].sha256 == _sha(b"new")
    assert not [p for p in (root / "m").iterdir() if p.name.startswith(".download-")]


def test_cli_prints_the_digest_of_a_file_the_catalog_has_none_for(tmp_path, monkeypatch, capsys):
    from app.assets import cli

    (tmp_path / "new.bin").write_bytes(b"new")
    asset = _url_asset([AssetFile("new.bin", origin=(tmp_path / "new.bin").as_uri())])
    monkeypatch.setattr(cli.assets, "get", lambda name: asset)
    assert cli.main(["u", "--root", str(tmp_path / "pretrained")]) == 0
    assert f"sha256 {_sha(b'new')} (not in the catalog" in capsys.readouterr().out
