"""Folder layout of the data root, as upstream GPT-SoVITS names it where it has a name.

``Layout(settings.home)`` is passed around; nothing here reads the environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.settings import REPO_ROOT

ROOT = REPO_ROOT


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
    """Validate a user-chosen name used as one path component (experiment, preset, speaker)."""
    cleaned = name.strip()
    if not cleaned or cleaned in {".", ".."} or any(c in cleaned for c in "/\\:\0"):
        raise ValueError(
            f"invalid name {name!r}: use letters, digits, spaces, '-', '_' or '.', without slashes"
        )
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
        raise PathOutsideRoot(f"{path} is outside the data folder {root}; only files under it can be used")
    return resolved
