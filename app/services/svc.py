"""Singing voice conversion state the UI (and API) share: experiments, models, training jobs, the pipeline.

- experiments: ``output/svc/<name>/``, each a so-vits-svc 4.1 tree (:class:`app.paths.SvcExperiment`);
- models to convert with: every ``G_*.pth`` and ``release/*.pth`` of every experiment's ``logs/44k``
  and every uploaded model (``output/svc_models/<name>/`` holding the ``.pth`` and its config.json);
- training runs as jobs of the one :class:`~app.services.jobs.JobManager` of this process (the
  same one the TTS experiments use: one device queue), ``python -m app.train.svc --config
  logs/44k/run.yaml`` with a :class:`app.runconfig.SvcRunConfig` written here; found again after a restart;
- one :class:`~app.infer.svc.pipeline.SVCPipeline` per pretrained folder and device (models cached inside).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from app.infer.svc.pipeline import SVCPipeline
from app.models.upstream.svc.checkpoint import read_config, read_svc
from app.paths import Layout, SvcExperiment, safe_name
from app.runconfig import SVC_MODULE, SvcRunConfig, save_svc_run
from app.services.experiments import job_manager
from app.services.jobs import JobSpec, JobView

JOB_KIND = "svc"
UPLOADS = "svc_models"  # under output/
_STEP = re.compile(r"_(\d+)\.pth$")


@dataclass(frozen=True)
class SvcModelChoice:
    """A model the convert step can use."""

    label: str  # shown in the UI, e.g. "my_voice / G_800.pth"
    model: Path  # the .pth
    config: Path  # its config.json


@lru_cache(maxsize=2)
def pipeline(pretrained_root: Path, device: str = "auto") -> SVCPipeline:
    """The shared conversion pipeline (loaded models stay cached in it)."""
    return SVCPipeline(pretrained_root, device=device)


def list_experiments(layout: Layout) -> list[str]:
    """Names of the SVC experiments (folders under ``output/svc``), sorted."""
    root = layout.svc_experiments
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _step_of(path: Path) -> int:
    found = _STEP.search(path.name)
    return int(found.group(1)) if found else -1


def list_models(layout: Layout) -> list[SvcModelChoice]:
    """Models with a config.json, newest step first within each experiment, then uploads."""
    choices = []
    for name in list_experiments(layout):
        tree = SvcExperiment(layout.svc_experiments / name)
        for folder in (tree.models / "release", tree.models):
            config = folder / "config.json"
            if not config.is_file():
                config = tree.config
            if not config.is_file():
                continue
            models = [p for p in folder.glob("*.pth") if not p.name.startswith(("D_", "."))]
            for model in sorted(models, key=_step_of, reverse=True):
                rel = model.relative_to(tree.models).as_posix()
                choices.append(SvcModelChoice(f"{name} / {rel}", model, config))
    uploads = layout.output / UPLOADS
    if uploads.is_dir():
        for folder in sorted(p for p in uploads.iterdir() if p.is_dir()):
            config = folder / "config.json"
            for model in sorted(folder.glob("*.pth")):
                if config.is_file():
                    choices.append(SvcModelChoice(f"uploaded / {folder.name} / {model.name}", model, config))
    return choices


def add_uploaded_model(layout: Layout, model: Path, config: Path, name: str | None = None) -> SvcModelChoice:
    """Check an uploaded ``G_*.pth`` + ``config.json`` pair and keep it under ``output/svc_models/<name>/``.

    Raises the reader's error (naming the file) when either is not a so-vits-svc file.
    """
    read_config(config)
    read_svc(model)
    folder = layout.output / UPLOADS / safe_name(name or Path(model).stem)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / Path(model).name
    shutil.copyfile(model, target)
    shutil.copyfile(config, folder / "config.json")
    return SvcModelChoice(f"uploaded / {folder.name} / {target.name}", target, folder / "config.json")


def submit_training(layout: Layout, run: SvcRunConfig, gpus: tuple[int, ...] = ()) -> JobView:
    """Write ``run.yaml`` and start (or queue) ``python -m app.train.svc --config run.yaml`` as a job."""
    name = f"svc: {run.tree.root.name}"
    spec = JobSpec(module=SVC_MODULE, config=save_svc_run(run), name=name, kind=JOB_KIND, gpus=gpus)
    return job_manager(layout.jobs).submit(spec)


def training_jobs(layout: Layout, experiment: str | None = None) -> list[JobView]:
    """SVC training jobs, newest first; only those of ``experiment`` when given."""
    views = [v for v in job_manager(layout.jobs).list() if v.record.spec.kind == JOB_KIND]
    if experiment is None:
        return views
    models = (layout.svc_experiments / experiment / "logs" / "44k").resolve()
    return [v for v in views if Path(v.record.spec.config).resolve().parent == models]


def stop_job(layout: Layout, job_id: str) -> JobView:
    """Ask a training job to save and stop."""
    return job_manager(layout.jobs).stop(job_id)
