"""Asset records and the pure questions asked of them: where does a file go, is it there.

Nothing here touches the network; :mod:`app.assets.download` does, and only when called.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from app.messages import Message

# Where an asset comes from:
#   hf      - a Hugging Face model repository, fetched with huggingface_hub at a pinned revision
#   url     - plain HTTPS URLs (GitHub releases, dl.fbaipublicfiles.com, ...)
#   bundled - shipped inside a Python package listed in requirements.txt; nothing to download
SourceKind = Literal["hf", "url", "bundled"]
# A file origin starting with this prefix is copied from an installed package ("package:demucs/remote/x.yaml").
PACKAGE_PREFIX = "package:"
HF_ENDPOINT = "https://huggingface.co"
DOWNLOAD_COMMAND = "python tools/download_models.py"


class UnknownAsset(KeyError):
    """An asset id that is not in the registry."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown asset"


@dataclass(frozen=True)
class AssetFile:
    """One file of an asset."""

    # Where the file lands, relative to the asset's folder (may contain subfolders).
    path: str
    # hf: path inside the repository; url: full URL; "package:<pkg>/<resource>": copied from a package.
    # Empty for files that come out of the asset's archive.
    origin: str = ""
    # Expected sha256 (hex). Some publishers name files by a digest prefix only (torch.hub, demucs):
    # then this is that prefix and the check compares the start of the digest.
    sha256: str | None = None
    # Expected size in bytes, where known (a cheap completeness check that needs no hashing).
    size: int | None = None


@dataclass(frozen=True)
class Archive:
    """A zip the publisher distributes instead of loose files; the asset's files come out of it."""

    # Path in the hf repository, or a full URL.
    origin: str
    # sha256 of the zip itself, where known.
    sha256: str | None = None
    # Size of the zip in bytes, where known.
    size: int | None = None
    # Leading folder inside the zip to drop ("G2PWModel/"), so files land directly in the asset folder.
    strip: str = ""


@dataclass(frozen=True)
class Asset:
    """A downloadable (or package-bundled) model the product uses."""

    # Stable id used on the command line and in code ("chinese-hubert-base").
    id: str
    # One line a user understands.
    description: str
    # Where it comes from (see SourceKind).
    source: SourceKind
    # hf: "owner/name"; bundled: the Python package that ships it; url: None.
    repo_id: str | None
    # hf: the commit pinned for downloads ("main" where no commit could be verified); else None.
    revision: str | None
    # Folder under pretrained_models/ (upstream's name); "" puts files directly in pretrained_models/.
    folder: str
    # The files that make the asset complete.
    files: tuple[AssetFile, ...]
    # True when a default workflow cannot run without it (`--check` fails while it is missing).
    required: bool
    # Which feature loads it, for messages (a Message of app.assets.uses: the web UI words it in
    # the reader's language, the API and CLIs say its English).
    used_by: str
    # Set when the files are published inside a zip.
    archive: Archive | None = None

    def file_url(self, file: AssetFile) -> str | None:
        """Where a user can fetch ``file`` by hand (None for bundled or archived files)."""
        return self._url(file.origin) if file.origin else None

    def archive_url(self) -> str | None:
        return self._url(self.archive.origin) if self.archive else None

    def _url(self, origin: str) -> str | None:
        if origin.startswith(PACKAGE_PREFIX):
            return None
        if self.source == "hf":
            return f"{HF_ENDPOINT}/{self.repo_id}/resolve/{self.revision or 'main'}/{origin}"
        return origin


FileState = Literal["present", "missing", "wrong_size", "wrong_hash"]


@dataclass(frozen=True)
class FileStatus:
    """What is on disk for one file of an asset."""

    file: AssetFile
    # Absolute path where the file belongs.
    path: Path
    # present, missing, wrong_size (incomplete download?) or wrong_hash (only when verified).
    state: FileState


@dataclass(frozen=True)
class AssetStatus:
    """What is on disk for one asset."""

    asset: Asset
    # Absolute folder the asset's files belong in.
    folder: Path
    # One entry per file; empty for bundled assets.
    files: tuple[FileStatus, ...]
    # For bundled assets: whether the shipping package is installed.
    package_installed: bool | None = None

    @property
    def ok(self) -> bool:
        if self.asset.source == "bundled":
            return bool(self.package_installed)
        return all(f.state == "present" for f in self.files)

    @property
    def problems(self) -> tuple[FileStatus, ...]:
        return tuple(f for f in self.files if f.state != "present")


def local_path(asset: Asset, pretrained_root: Path) -> Path:
    """The folder ``asset``'s files belong in."""
    return Path(pretrained_root) / asset.folder if asset.folder else Path(pretrained_root)


def file_path(asset: Asset, file: AssetFile, pretrained_root: Path) -> Path:
    """Absolute path of one file of ``asset``."""
    return local_path(asset, pretrained_root) / file.path


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def digest_matches(actual: str, expected: str | None) -> bool:
    """True when ``expected`` is unknown, equal, or a published prefix of ``actual``."""
    return expected is None or actual.lower().startswith(expected.lower())


def _file_state(path: Path, file: AssetFile, verify: bool) -> FileState:
    if not path.is_file():
        return "missing"
    if file.size is not None and path.stat().st_size != file.size:
        return "wrong_size"
    if verify and file.sha256 and not digest_matches(sha256_of(path), file.sha256):
        return "wrong_hash"
    return "present"


def asset_status(asset: Asset, pretrained_root: Path, *, verify: bool = False) -> AssetStatus:
    """Check one asset on disk; ``verify`` also hashes files whose sha256 is known (slow for GBs)."""
    folder = local_path(asset, pretrained_root)
    if asset.source == "bundled":
        installed = importlib.util.find_spec(asset.repo_id or "") is not None
        return AssetStatus(asset, folder, (), package_installed=installed)
    states = tuple(
        FileStatus(f, file_path(asset, f, pretrained_root), _file_state(folder / f.path, f, verify))
        for f in asset.files
    )
    return AssetStatus(asset, folder, states)


def _where_from(asset: Asset, file: AssetFile) -> str:
    if file.origin.startswith(PACKAGE_PREFIX):
        package, _, resource = file.origin[len(PACKAGE_PREFIX) :].partition("/")
        template = "  <- copy {resource} from the installed {package} package"
        return Message("assets.from_package", template, resource=resource, package=package)
    url = asset.file_url(file)
    return f"  <- {url}" if url else ""


def _joined(parts: Sequence[str], sep: str) -> str:
    """``sep.join(parts)`` as nested Messages, so that each part is translated where it is one."""
    out = parts[-1]
    for part in reversed(parts[:-1]):
        if sep == "\n":
            out = Message("assets.lines", "{first}\n{rest}", first=part, rest=out)
        else:
            out = Message("assets.blocks", "{first}\n\n{rest}", first=part, rest=out)
    return out


def _by_hand(asset: Asset, folder: str) -> Message:
    """The line saying how to fetch ``asset``'s files without the download tool."""
    if asset.archive is not None:
        strip = Message("assets.zip_folder", " (its {folder} folder)", folder=asset.archive.strip)
        template = "  by hand: unzip {url}{strip} into {folder}/"
        url = asset.archive_url()
        return Message(
            "assets.by_hand_zip", template, url=url, strip=strip if asset.archive.strip else "", folder=folder
        )
    if asset.source == "hf":
        template = "  by hand: get the files above from {url} (revision {revision}) and put them in {folder}/"
        url = f"{HF_ENDPOINT}/{asset.repo_id}"
        return Message("assets.by_hand_hf", template, url=url, revision=str(asset.revision), folder=folder)
    return Message("assets.by_hand_url", "  by hand: download the URLs above into {folder}/", folder=folder)


def _problem(asset: Asset, fs: FileStatus) -> Message:
    source = _where_from(asset, fs.file)
    if fs.state == "wrong_size":
        return Message(
            "assets.wrong_size", "  incomplete (wrong size): {path}{source}", path=str(fs.path), source=source
        )
    if fs.state == "wrong_hash":
        return Message(
            "assets.wrong_hash",
            "  corrupt (sha256 differs): {path}{source}",
            path=str(fs.path),
            source=source,
        )
    return Message("assets.missing", "  missing: {path}{source}", path=str(fs.path), source=source)


def missing_message(
    statuses: Iterable[AssetStatus],
    *,
    command: str = DOWNLOAD_COMMAND,
) -> str:
    """Text naming every missing file, the folder it belongs in, and how to get it (a Message whose
    parts the web UI words in the reader's language; file names, URLs and commands stay as they are).

    Returns "" when nothing is missing.
    """
    blocks = []
    for st in statuses:
        if st.ok:
            continue
        asset = st.asset
        template = "{id} ({description}; used by {used_by})"
        head = Message(
            "assets.head", template, id=asset.id, description=asset.description, used_by=asset.used_by
        )
        if asset.source == "bundled":
            template = "{head}: the Python package {package} is not installed; run `make run` or `pip install -r requirements.txt`."
            blocks.append(Message("assets.package", template, head=head, package=repr(asset.repo_id)))
            continue
        folder = str(st.folder)
        lines = [
            Message(
                "assets.incomplete", "{head} is incomplete. It belongs in {folder}/", head=head, folder=folder
            )
        ]
        lines += [_problem(asset, fs) for fs in st.problems]
        lines.append(Message("assets.download", "  download: {command} {id}", command=command, id=asset.id))
        lines.append(_by_hand(asset, folder))
        blocks.append(_joined(lines, "\n"))
    return _joined(blocks, "\n\n") if blocks else ""
