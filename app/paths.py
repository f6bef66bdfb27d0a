"""Folder layout of the data root, as upstream GPT-SoVITS names it where it has a name.

``Layout(settings.home)`` is passed around; nothing here reads the environment.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from app.messages import Message
from app.settings import REPO_ROOT

ROOT = REPO_ROOT
# Bytes in one file name on ext4, XFS, btrfs, ZFS and APFS (NAME_MAX); NTFS allows 255 UTF-16 units,
# which a name of at most 255 UTF-8 bytes never exceeds.
NAME_MAX = 255
# Hex digits of the SHA-256 of the full name that a shortened name ends with (48 bits: a collision
# between two sources in one folder is out of reach).
NAME_HASH_CHARS = 12
# Bytes of a user-chosen name (experiment, speaker, preset): what is appended to it in file names
# (resume.weights_name's "_e<epoch>_s<step>_l<rank>.pth", ".list") stays well inside the other 55.
USER_NAME_MAX = 200
_SHORTENED = re.compile(rf"~[0-9a-f]{{{NAME_HASH_CHARS}}}$")  # how a shortened stem ends


class PathOutsideRoot(ValueError):
    """A user-given path resolves outside the folder it must stay in."""


@dataclass(frozen=True)
class Layout:
    """The data folders under one root (``STUDIO_HOME``)."""

    home: Path
    pretrained_dir: Path | None = None

    @property
    def pretrained(self) -> Path:
        return self.pretrained_dir or self.home / "pretrained_models"

    @property
    def gpt_weights(self) -> Path:
        return self.home / "GPT_weights"

    @property
    def sovits_weights(self) -> Path:
        return self.home / "SoVITS_weights"

    @property
    def output(self) -> Path:
        return self.home / "output"

    @property
    def presets(self) -> Path:
        """Saved voices of the HTTP API: ``presets/<name>/preset.json`` + the reference clip."""
        return self.home / "presets"

    @property
    def experiments(self) -> Path:
        return self.output / "experiments"

    @property
    def jobs(self) -> Path:
        return self.output / "jobs"

    def experiment(self, name: str) -> Path:
        """Folder of one experiment (upstream: ``logs/<exp_name>``)."""
        return self.experiments / safe_name(name)

    @property
    def svc_experiments(self) -> Path:
        """Singing voice conversion experiments, one so-vits-svc 4.1 tree each."""
        return self.output / "svc"

    def svc_experiment(self, name: str) -> SvcExperiment:
        return SvcExperiment(self.svc_experiments / safe_name(name))

    def ensure(self) -> Layout:
        for folder in (self.pretrained, self.gpt_weights, self.sovits_weights, self.output):
            folder.mkdir(parents=True, exist_ok=True)
        return self


@dataclass(frozen=True)
class SvcExperiment:
    """One singing voice conversion experiment, laid out as a so-vits-svc 4.1 checkout.

    Copying ``dataset/``, ``filelists/``, ``configs/`` and ``logs/`` into a 4.1 checkout (or
    the other way round) moves a dataset or a training run between the tools. 4.1 names the
    dataset and log folders ``44k`` whatever the sampling rate in ``config.json``.
    """

    root: Path

    @property
    def raw(self) -> Path:
        """Source recordings, one folder per speaker (4.1's ``dataset_raw/<speaker>/``)."""
        return self.root / "dataset_raw"

    @property
    def dataset(self) -> Path:
        """Resampled clips and their features: ``dataset/44k/<speaker>/<clip>.wav``."""
        return self.root / "dataset" / "44k"

    @property
    def filelists(self) -> Path:
        return self.root / "filelists"

    @property
    def train_list(self) -> Path:
        return self.filelists / "train.txt"

    @property
    def val_list(self) -> Path:
        return self.filelists / "val.txt"

    @property
    def config(self) -> Path:
        return self.root / "configs" / "config.json"

    @property
    def models(self) -> Path:
        """Checkpoints ``G_<step>.pth`` / ``D_<step>.pth`` (and the base ``G_0``/``D_0``), TensorBoard, run.yaml."""
        return self.root / "logs" / "44k"

    def ensure(self) -> SvcExperiment:
        for folder in (self.raw, self.dataset, self.filelists, self.config.parent, self.models):
            folder.mkdir(parents=True, exist_ok=True)
        return self


def safe_name(name: str) -> str:
    """Validate a user-chosen name used as one path component (experiment, preset, speaker).

    At most :data:`USER_NAME_MAX` bytes: files named after it (``<exp>_e<epoch>_s<step>_l<rank>.pth``,
    ``<speaker>.list``) must still fit in a file name.
    """
    cleaned = name.strip()
    if not cleaned or cleaned in {".", ".."} or any(c in cleaned for c in "/\\:\0"):
        template = "invalid name {name!r}: use letters, digits, spaces, '-', '_' or '.', without slashes"
        raise ValueError(Message("path.bad_name", template, name=name))
    size = len(cleaned.encode("utf-8", "surrogatepass"))
    if size > USER_NAME_MAX:
        template = (
            "name of {size} bytes is too long: at most {most} bytes (UTF-8), so the files named "
            "after it fit in a file name"
        )
        raise ValueError(Message("path.long_name", template, size=size, most=USER_NAME_MAX))
    return cleaned


def resolve_inside(path: str | Path, root: Path) -> Path:
    """Resolve ``path`` (relative paths are taken from ``root``) and require it to stay under ``root``.

    Symlinks are resolved first, so a link pointing outside the root is refused too.
    """
    root = Path(root).resolve()
    candidate = Path(path).expanduser()
    if not candidate.is_absolute():
        candidate = root / candidate
    resolved = candidate.resolve()
    if resolved != root and root not in resolved.parents:
        raise PathOutsideRoot(
            Message(
                "path.outside",
                "{path} is outside the data folder {root}; only files under it can be used",
                path=str(path),
                root=str(root),
            )
        )
    return resolved


def _name_bytes(text: str) -> bytes | None:
    """The bytes ``text`` has as a file name (undecodable bytes kept), None when it has none."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that no file name on disk decodes to
        return None


def _usable_char(ch: str) -> bool:
    # "/" and NUL cannot be in a name; control characters (tab, newline, ...) break the tab-separated
    # experiment files and every log line, so a name holding one is rebuilt too.
    return ch != "/" and unicodedata.category(ch) != "Cc" and _name_bytes(ch) is not None


def fit_file_name(stem: str, suffix: str = "", limit: int = NAME_MAX) -> str:
    """A file name made of ``stem`` then ``suffix``, at most ``limit`` bytes, safe to create in any folder.

    ``stem + suffix`` is returned unchanged when it fits and is a usable name, so ordinary names stay
    what upstream calls them. Otherwise the readable start of ``stem`` is kept (cut at a character,
    never inside one), unusable characters become ``_``, and ``~`` plus a hash of the full ``stem``
    follows before ``suffix``: distinct stems keep distinct names. ``suffix`` (an extension, a
    sample range, a feature tag) is kept whole and must itself be a short usable name part.
    """
    suffix_bytes = _name_bytes(suffix)
    if suffix_bytes is None or not all(_usable_char(ch) for ch in suffix):
        raise ValueError(
            Message("path.bad_suffix", "suffix {suffix!r} must be plain file name characters", suffix=suffix)
        )
    room = limit - len(suffix_bytes) - 1 - NAME_HASH_CHARS  # bytes left for the readable prefix
    if room < 0:
        template = "suffix {suffix!r} leaves no room for a name within {limit} bytes"
        raise ValueError(Message("path.long_suffix", template, suffix=suffix, limit=limit))
    whole = stem + suffix
    full = _name_bytes(whole)
    if (
        full is not None
        and len(full) <= limit
        and whole not in {"", ".", ".."}
        and all(_usable_char(ch) for ch in stem)
        and not _SHORTENED.search(stem)  # never taken for another stem's shortened name
    ):
        return whole
    digest = hashlib.sha256(stem.encode("utf-8", "surrogatepass")).hexdigest()[:NAME_HASH_CHARS]
    prefix, used = [], 0
    for ch in stem:
        part = ch if _usable_char(ch) else "_"
        size = len(_name_bytes(part) or b"_")
        if used + size > room:
            break
        prefix.append(part)
        used += size
    return f"{''.join(prefix)}~{digest}{suffix}"
