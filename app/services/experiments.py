"""Fine-tuning experiments: what each one holds, run configs for it, and its jobs.

An experiment is a folder under ``output/experiments/<name>/`` with upstream's layout (the
formatted dataset, :mod:`app.data.experiment`) and one folder per run: ``format/`` for dataset
formatting, ``logs_s2_<version>/`` for SoVITS, ``logs_s1_<version>/`` for GPT training. Each run
folder holds the run's ``run.yaml`` and the status and metrics files its job writes. Exported
weights of every version go to ``SoVITS_weights/`` and ``GPT_weights/`` (upstream keeps one folder
per version; the files themselves say their version), v3/v4 LoRA exports included
(``<name>_e<N>_s<step>_l<rank>.pth``, merged onto the version's base when loaded).

Jobs are started through :class:`app.services.jobs.JobManager` (one device queue; ``torchrun``
for several GPUs); their state is found again from the jobs folder after a restart. This module
writes the configs the workflows read (:mod:`app.runconfig`) and never imports the workflows.
"""

from __future__ import annotations

import enum
import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from app import config_io
from app.data.experiment import ExperimentFiles
from app.messages import Message
from app.paths import Layout, resolve_inside, safe_name
from app.runconfig import (
    FORMAT_STEPS,
    MODULES,
    RUN_FILE,
    RUN_KINDS,
    TRAIN_VERSIONS,
    FormatRunConfig,
    GPTRunConfig,
    SoVITSRunConfig,
    format_steps,
    is_lora,
    is_pro,
    run_folder,
)
from app.runstatus import METRICS_FILE, STATUS_FILE, RunStatus, read_metrics, read_status
from app.services.jobs import JobError, JobManager, JobSpec, JobView

log = logging.getLogger(__name__)

# Base models per version, upstream's names under pretrained_models/.
_V2 = "gsv-v2final-pretrained"
PRETRAINED_FILES = {
    "v1": {
        "s2g": "s2G488k.pth",
        "s2d": "s2D488k.pth",
        "s1": "s1bert25hz-2kh-longer-epoch=68e-step=50232.ckpt",
    },
    "v2": {
        "s2g": f"{_V2}/s2G2333k.pth",
        "s2d": f"{_V2}/s2D2333k.pth",
        "s1": f"{_V2}/s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt",
    },
    # v2Pro*: the GPT is s1v3 (a v2-table model), the SoVITS files sit in v2Pro/ (upstream config.py).
    "v2Pro": {"s2g": "v2Pro/s2Gv2Pro.pth", "s2d": "v2Pro/s2Dv2Pro.pth", "s1": "s1v3.ckpt"},
    "v2ProPlus": {"s2g": "v2Pro/s2Gv2ProPlus.pth", "s2d": "v2Pro/s2Dv2ProPlus.pth", "s1": "s1v3.ckpt"},
    # v3/v4: LoRA on the flow-matching base, no discriminator; the GPT is s1v3 (upstream config.py).
    "v3": {"s2g": "s2Gv3.pth", "s2d": None, "s1": "s1v3.ckpt"},
    "v4": {"s2g": "gsv-v4-pretrained/s2Gv4.pth", "s2d": None, "s1": "s1v3.ckpt"},
}
# ERes2NetV2 speaker-verification model of v2Pro* (2-get-sv), as app.models.encoders.sv.SV_FILE names it
# (spelled out here so listing experiments does not import torch).
SV_FILE = "sv/pretrained_eres2netv2w24s4ep4.ckpt"
ACTIVE = ("queued", "running")
RunConfig = TypeVar("RunConfig", SoVITSRunConfig, GPTRunConfig)


class ExperimentError(ValueError):
    """A request about an experiment that cannot be carried out; the message says why."""


@dataclass(frozen=True)
class BaseModels:
    """Pretrained files a version's formatting and training start from."""

    bert: Path  # chinese-roberta-wwm-ext-large folder
    hubert: Path  # chinese-hubert-base folder
    s2g: Path  # SoVITS generator (v3/v4: the base the LoRA adapts)
    s2d: Path | None  # SoVITS discriminator; None for v3/v4 (LoRA training has none)
    s1: Path  # GPT
    sv: Path | None  # speaker-verification model (v2Pro*), None for v1/v2


def base_models(layout: Layout, version: str) -> BaseModels:
    if version not in PRETRAINED_FILES:
        template = "version {version!r}: choose one of {choices}"
        choices = ", ".join(sorted(PRETRAINED_FILES))
        raise ExperimentError(Message("exp.err.version", template, version=version, choices=choices))
    root = layout.pretrained
    files = PRETRAINED_FILES[version]
    s2d = files["s2d"]
    return BaseModels(
        bert=root / "chinese-roberta-wwm-ext-large",
        hubert=root / "chinese-hubert-base",
        s2g=root / files["s2g"],
        s2d=None if s2d is None else root / s2d,
        s1=root / files["s1"],
        sv=root / SV_FILE if is_pro(version) else None,
    )


@functools.lru_cache(maxsize=4)
def job_manager(root: Path) -> JobManager:
    """The one job manager of this process for a jobs folder."""
    return JobManager(Path(root))


def run_dir(layout: Layout, name: str, kind: str, version: str = "v2") -> Path:
    return layout.experiment(name) / run_folder(kind, version)


# -- what an experiment holds ---------------------------------------------------------------------
@dataclass(frozen=True)
class FormatState:
    """Counts of formatted items per step."""

    text_rows: int  # rows of 2-name2text.txt (1a)
    bert_files: int  # 3-bert/*.pt (1a, Chinese lines)
    hubert_files: int  # 4-cnhubert/*.pt (1b)
    wav_files: int  # 5-wav32k/* (1b)
    semantic_rows: int  # rows of 6-name2semantic.tsv (1c)
    sv_files: int = 0  # 7-sv_cn/*.pt (2-get-sv, v2Pro*)

    @property
    def sovits_ready(self) -> bool:
        """Enough for v1/v2 SoVITS training (see :meth:`ready` for v2Pro*)."""
        return self.text_rows > 0 and self.hubert_files > 0 and self.wav_files > 0

    @property
    def gpt_ready(self) -> bool:
        return self.text_rows > 0 and self.semantic_rows > 0

    def ready(self, kind: str, version: str) -> bool:
        """Whether a ``kind`` ("sovits" or "gpt") run of ``version`` has data to train on."""
        if kind == "gpt":
            return self.gpt_ready
        return self.sovits_ready and (self.sv_files > 0 or not is_pro(version))

    def missing_steps(self, kind: str, version: str) -> str:
        """The formatting steps a ``kind`` run of ``version`` needs, in words ("1a and 1b", ...)."""
        if kind == "gpt":
            return "1a, 1b and 1c"
        return "1a, 1b and 2-get-sv" if is_pro(version) else "1a and 1b"


@dataclass(frozen=True)
class RunState:
    """One run folder of an experiment and the newest job started for it."""

    kind: str  # "format", "sovits" or "gpt"
    folder: Path  # the run folder (run.yaml, status.json, metrics.jsonl)
    status: RunStatus | None  # what the run last reported
    job: JobView | None  # newest job of this folder, None when none was started from here

    @property
    def state(self) -> str:
        """queued, running, done, failed, stopped, lost, or "none" when it never ran."""
        if self.job is not None:
            return self.job.state
        return self.status.state if self.status is not None else "none"

    @property
    def active(self) -> bool:
        return self.state in ACTIVE


@dataclass(frozen=True)
class ExperimentState:
    name: str
    folder: Path
    version: str
    formatted: FormatState
    runs: dict[str, RunState]  # by kind
    sovits_weights: tuple[Path, ...]  # exported SoVITS files of this experiment, newest first
    gpt_weights: tuple[Path, ...]  # exported GPT files, newest first


def list_experiments(layout: Layout) -> list[str]:
    """Names of the experiment folders, sorted."""
    if not layout.experiments.is_dir():
        return []
    return sorted(p.name for p in layout.experiments.iterdir() if p.is_dir() and not p.name.startswith("."))


def _count_lines(path: Path, header: bool = False) -> int:
    try:
        lines = [x for x in path.read_text(encoding="utf-8").split("\n") if x.strip()]
    except (OSError, UnicodeDecodeError):
        return 0
    return max(0, len(lines) - (1 if header else 0))


def format_state(folder: Path) -> FormatState:
    files = ExperimentFiles(folder)

    def count(directory: Path, pattern: str) -> int:
        return sum(1 for _ in directory.glob(pattern)) if directory.is_dir() else 0

    return FormatState(
        text_rows=_count_lines(files.name2text),
        bert_files=count(files.bert_dir, "*.pt"),
        hubert_files=count(files.hubert_dir, "*.pt"),
        wav_files=count(files.wav32k_dir, "[!.]*"),
        semantic_rows=_count_lines(files.semantic, header=True),
        sv_files=count(files.sv_dir, "*.pt"),
    )


def _newest_job(views: list[JobView], folder: Path) -> JobView | None:
    for view in views:  # newest first
        if Path(view.record.spec.config).parent == folder:
            return view
    return None


def experiment_state(layout: Layout, jobs: JobManager, name: str, version: str = "v2") -> ExperimentState:
    folder = layout.experiment(name)
    views = jobs.list()
    runs = {}
    for kind in RUN_KINDS:
        run = folder / run_folder(kind, version)
        runs[kind] = RunState(kind, run, read_status(run / STATUS_FILE), _newest_job(views, run))

    def exported(directory: Path, suffix: str) -> tuple[Path, ...]:
        found = directory.glob(f"{safe_name(name)}_e*_s*{suffix}") if directory.is_dir() else []
        return tuple(sorted(found, key=lambda p: p.stat().st_mtime, reverse=True))

    return ExperimentState(
        name=safe_name(name),
        folder=folder,
        version=version,
        formatted=format_state(folder),
        runs=runs,
        sovits_weights=exported(layout.sovits_weights, ".pth"),
        gpt_weights=exported(layout.gpt_weights, ".ckpt"),
    )


def loss_rows(folder: Path, keys: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """Metrics in long form for a plot: ``{"step", "loss", "value"}`` per logged loss."""
    rows = []
    for row in read_metrics(folder / METRICS_FILE):
        for key, value in row.items():
            if key in ("step", "epoch", "time") or (keys is not None and key not in keys):
                continue
            rows.append({"step": int(row["step"]), "loss": key, "value": float(value)})
    return rows


# -- run configs ----------------------------------------------------------------------------------------
def format_config(
    layout: Layout,
    name: str,
    list_path: str | Path,
    audio_dir: str | Path | None,
    *,
    steps: tuple[str, ...] = FORMAT_STEPS,
    version: str = "v2",
    device: str = "auto",
    workers: int = 2,
) -> FormatRunConfig:
    """A formatting config; the list and audio folder must be inside the data folder.

    For v2Pro/v2ProPlus, 1b brings 2-get-sv along (:func:`app.runconfig.format_steps`); a v1/v2
    run asked for 2-get-sv alone is refused.
    """
    if not str(list_path).strip():
        raise ExperimentError(Message("exp.err.no_list", "give the .list file of the dataset"))
    listed = resolve_inside(str(list_path).strip(), layout.home)
    if not listed.is_file():
        template = "{file} does not exist; give the .list file written by the Label tab or ASR"
        raise ExperimentError(Message("exp.err.list_missing", template, file=str(listed)))
    audio = None
    if audio_dir is not None and str(audio_dir).strip():
        audio = resolve_inside(str(audio_dir).strip(), layout.home)
        if not audio.is_dir():
            raise ExperimentError(
                Message("exp.err.not_folder", "{folder} is not a folder", folder=str(audio))
            )
    bad = [s for s in steps if s not in FORMAT_STEPS]
    if bad or not steps:
        template = "formatting steps must be among {choices}, got {steps}"
        fields = {"choices": ", ".join(FORMAT_STEPS), "steps": ", ".join(steps)}
        raise ExperimentError(Message("exp.err.steps", template, **fields))
    models = base_models(layout, version)
    planned = format_steps(version, steps)
    if not planned:
        template = "{version} experiments have no speaker embeddings to compute (v2Pro* only)"
        raise ExperimentError(Message("exp.err.no_sv", template, version=version))
    return FormatRunConfig(
        list_path=listed, audio_dir=audio, exp_dir=layout.experiment(name), bert_dir=models.bert,
        hubert_dir=models.hubert, pretrained_s2g=models.s2g, version=version, steps=planned,
        device=device, workers=workers, sv_path=models.sv, data_root=layout.home,
    )  # fmt: skip


def _check_version(version: str) -> None:
    if version not in TRAIN_VERSIONS:
        template = "version {version!r} cannot be trained here; choose one of {choices}"
        choices = ", ".join(TRAIN_VERSIONS)
        raise ExperimentError(Message("exp.err.train_version", template, version=version, choices=choices))


class _Base(enum.Enum):
    """The one value of :data:`VERSION_BASE` (None already means "no file": random weights)."""

    MODEL = "the version's base model"


VERSION_BASE = _Base.MODEL  # a pretrained_* default: the version's file under pretrained_models/


def _chosen(values: dict[str, object]) -> dict[str, object]:
    """The settings a caller gave; None leaves the run config's default (or the version's schedule)."""
    return {key: value for key, value in values.items() if value is not None}


def _build(cls: type[RunConfig], values: dict[str, object]) -> RunConfig:
    # Through config_io so a wrong type is refused as it would be when read back from run.yaml.
    try:
        return config_io.from_dict(cls, config_io.to_dict(values))
    except config_io.ConfigError as exc:
        raise ExperimentError(exc.args[0] if exc.args else str(exc)) from None


def sovits_config(
    layout: Layout,
    name: str,
    *,
    version: str = "v2",
    pretrained_d: Path | _Base | None = VERSION_BASE,
    batch_size: int | None = None,
    epochs: int | None = None,
    save_every_epoch: int | None = None,
    text_low_lr_rate: float | None = None,
    lora_rank: int | None = None,
    grad_checkpoint: bool | None = None,
    learning_rate: float | None = None,
    precision: str | None = None,
    device: str | None = None,
    export_weights: bool | None = None,
    keep_checkpoints: int | None = None,
    log_interval: int | None = None,
    min_items_per_epoch: int | None = None,
    num_workers: int | None = None,
    discriminator_width_divisor: int | None = None,
) -> SoVITSRunConfig:
    """A SoVITS run config starting from the version's pretrained G/D (v3/v4: the base the LoRA
    adapts, no D) with upstream's schedule for the version.

    Each setting is the :class:`SoVITSRunConfig` field of that name; None keeps its default.
    ``pretrained_d=None`` trains a discriminator from random weights (tests' narrow ones).
    """
    _check_version(version)
    models = base_models(layout, version)
    schedule = sovits_defaults(version)
    values: dict[str, object] = {
        "exp_name": safe_name(name), "exp_dir": layout.experiment(name), "weights_dir": layout.sovits_weights,
        "pretrained_g": models.s2g, "pretrained_d": models.s2d if pretrained_d is VERSION_BASE else pretrained_d,
        "version": version, "epochs": schedule.epochs, "save_every_epoch": schedule.save_every_epoch,
    }  # fmt: skip
    values.update(
        _chosen({
            "batch_size": batch_size, "epochs": epochs, "save_every_epoch": save_every_epoch,
            "text_low_lr_rate": text_low_lr_rate, "lora_rank": lora_rank, "grad_checkpoint": grad_checkpoint,
            "learning_rate": learning_rate, "precision": precision, "device": device,
            "export_weights": export_weights, "keep_checkpoints": keep_checkpoints, "log_interval": log_interval,
            "min_items_per_epoch": min_items_per_epoch, "num_workers": num_workers,
            "discriminator_width_divisor": discriminator_width_divisor,
        })
    )  # fmt: skip
    return _build(SoVITSRunConfig, values)


def gpt_config(
    layout: Layout,
    name: str,
    *,
    version: str = "v2",
    batch_size: int | None = None,
    epochs: int | None = None,
    save_every_epoch: int | None = None,
    learning_rate: float | None = None,
    precision: str | None = None,
    device: str | None = None,
    export_weights: bool | None = None,
    keep_checkpoints: int | None = None,
    log_interval: int | None = None,
    min_items_per_epoch: int | None = None,
    num_workers: int | None = None,
) -> GPTRunConfig:
    """A GPT run config starting from the version's pretrained s1.

    Each setting is the :class:`GPTRunConfig` field of that name; None keeps its default.
    """
    _check_version(version)
    models = base_models(layout, version)
    values: dict[str, object] = {
        "exp_name": safe_name(name), "exp_dir": layout.experiment(name), "weights_dir": layout.gpt_weights,
        "pretrained_s1": models.s1, "version": version,
    }  # fmt: skip
    values.update(
        _chosen({
            "batch_size": batch_size, "epochs": epochs, "save_every_epoch": save_every_epoch,
            "learning_rate": learning_rate, "precision": precision, "device": device,
            "export_weights": export_weights, "keep_checkpoints": keep_checkpoints, "log_interval": log_interval,
            "min_items_per_epoch": min_items_per_epoch, "num_workers": num_workers,
        })
    )  # fmt: skip
    return _build(GPTRunConfig, values)


# -- jobs --------------------------------------------------------------------------------------------
def start(
    layout: Layout,
    jobs: JobManager,
    name: str,
    kind: str,
    config: FormatRunConfig | SoVITSRunConfig | GPTRunConfig,
    gpus: tuple[int, ...] = (),
) -> JobView:
    """Write ``config`` to the run's ``run.yaml`` and submit its job (it may wait in the device queue).

    Refused while a job of the same run is queued or running. Formatting uses one GPU at most.
    """
    version = getattr(config, "version", "v2")
    folder = run_dir(layout, name, kind, version)
    current = _newest_job(jobs.list(), folder)
    if current is not None and current.state in ACTIVE:
        template = "{kind} of {name!r} is already {state} (job {job}); stop it first"
        fields = {"kind": kind, "name": name, "state": str(current.state), "job": current.id}
        raise ExperimentError(Message("exp.err.busy", template, **fields))
    if kind == "format":
        gpus = gpus[:1]
    path = config_io.save(config, folder / RUN_FILE)
    spec = JobSpec(
        module=MODULES[kind],
        config=path,
        name=f"{kind}: {safe_name(name)}",
        kind=kind,
        uses_device=True,
        gpus=tuple(gpus),
    )
    try:
        view = jobs.submit(spec)
    except JobError as exc:
        raise ExperimentError(exc.args[0] if exc.args else str(exc)) from None
    log.info("%s job %s for %s: %s", kind, view.id, name, view.state)
    return view


def stop(layout: Layout, jobs: JobManager, name: str, kind: str, version: str = "v2") -> JobView:
    """Stop the run's job (the trainer saves a checkpoint first); an error when nothing runs."""
    folder = run_dir(layout, name, kind, version)
    current = _newest_job(jobs.list(), folder)
    if current is None or current.state not in ACTIVE:
        template = "no {kind} job of {name!r} is queued or running"
        raise ExperimentError(Message("exp.err.not_running", template, kind=kind, name=name))
    return jobs.stop(current.id)


# -- defaults as upstream's web UI computes them --------------------------------------------------------
def gpu_choices() -> list[tuple[str, int]]:
    """(label, index) of each CUDA GPU; empty without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return []
    out = []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        out.append((f"{i}: {props.name} ({props.total_memory / 2**30:.0f} GB)", i))
    return out


def default_batch_size(version: str = "v2") -> int:
    """Upstream's default per-GPU SoVITS batch size: half the smallest GPU's memory in GB (v3/v4
    LoRA: an eighth); on CPU a quarter of the RAM in GB, halved because CPU trains in fp32."""
    import psutil
    import torch

    if torch.cuda.is_available() and torch.cuda.device_count():
        memory = min(
            torch.cuda.get_device_properties(i).total_memory for i in range(torch.cuda.device_count())
        )
        return max(1, int(memory / 2**30 // (8 if is_lora(version) else 2)))
    return max(1, int(psutil.virtual_memory().total / 2**30 / 4) // 2)


@dataclass(frozen=True)
class SoVITSDefaults:
    """What upstream's web UI proposes for a version's SoVITS run (webui.py set_default)."""

    epochs: int  # total epochs
    save_every_epoch: int  # checkpoint + export period


def sovits_defaults(version: str) -> SoVITSDefaults:
    """v1-v2ProPlus: 8 epochs, saved every 4; v3/v4 LoRA: 2 epochs, saved every epoch (upstream
    warns that longer LoRA training ruins the voice)."""
    return SoVITSDefaults(2, 1) if is_lora(version) else SoVITSDefaults(8, 4)
