"""Dataset formatting for GPT-SoVITS fine-tuning: a ``.list`` + its clips -> an experiment folder.

Library: :func:`run_format` runs the chosen steps (1a text + BERT, 1b HuBERT + 32 kHz audio,
2-get-sv speaker embeddings for v2Pro/v2ProPlus, 1c semantic tokens; see
:mod:`app.data.preprocess.tts_steps`) and returns a
:class:`~app.data.preprocess.tts_dataset.FormatReport`. The folder has upstream's layout and file
formats (:mod:`app.data.experiment`), so an experiment moves between the two tools. Every step
is resumable: a rerun skips what is done and redoes what changed. Lines of the ``.list`` that
cannot be used (malformed, unknown language, missing or unreadable audio) are reported with
their line numbers and the rest goes on.

CLI (also what a formatting job runs)::

    python -m app.data.preprocess.tts_features --config output/experiments/NAME/format/run.yaml
    python -m app.data.preprocess.tts_features --list data.list --audio-dir clips/ --exp NAME [--steps 1a 1b]
        [--version v2Pro]

For v2Pro/v2ProPlus, 1b brings 2-get-sv along (upstream's 1Ab runs both); v1/v2/v3/v4 never run
it (:func:`app.runconfig.format_steps`). v3/v4's 1c reads the quantizer of their flow-matching base.

With ``--config`` the run reports progress in ``status.json`` beside the config
(:mod:`app.runstatus`) and lists the problems in ``problems.txt``; SIGTERM stops it after the
current clip, keeping everything done so far.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch

from app import config_io
from app.data.experiment import ExperimentFiles, atomic_write_text
from app.data.filelist import group_issues
from app.data.preprocess.tts_dataset import (
    FormatError,
    FormatReport,
    Problem,
    Progress,
    ShouldStop,
    StepReport,
    read_items,
)
from app.data.preprocess.tts_steps import step_hubert, step_semantic, step_sv, step_text
from app.devices import pick_device
from app.messages import Message, said
from app.runconfig import (
    FORMAT_STEPS,
    PRO_VERSIONS,
    SV_STEP,
    TRAIN_VERSIONS,
    FormatRunConfig,
    format_steps,
    text_version,
)
from app.runstatus import RunStatus, write_status

log = logging.getLogger(__name__)

PROBLEMS_FILE = "problems.txt"
PROBLEM_KINDS_FILE = "problems-by-kind.txt"  # the list's problems once per kind (count, first lines)
# The CLI's pretrained SoVITS generator per version (1c), upstream's names under pretrained_models/.
S2G_FILES = {
    "v1": "s2G488k.pth",
    "v2": "gsv-v2final-pretrained/s2G2333k.pth",
    "v2Pro": "v2Pro/s2Gv2Pro.pth",
    "v2ProPlus": "v2Pro/s2Gv2ProPlus.pth",
    "v3": "s2Gv3.pth",
    "v4": "gsv-v4-pretrained/s2Gv4.pth",
}
STATUS_EVERY_S = 0.5  # status.json is rewritten at most this often (and at every step change)


def _noop_progress(step: str, done: int, total: int, name: str) -> None:
    return None


def _never() -> bool:
    return False


def run_format(
    config: FormatRunConfig,
    progress: Progress = _noop_progress,
    should_stop: ShouldStop = _never,
) -> FormatReport:
    """Run the steps :func:`app.runconfig.format_steps` plans for ``config`` on the clips of its list.

    Raises:
        FormatError: the list cannot be read, a step is unknown or does not apply to the version,
            or a base model a step needs is missing (the message names the download command).
    """
    unknown = [s for s in config.steps if s not in FORMAT_STEPS]
    if unknown:
        raise FormatError(f"unknown formatting steps {unknown}; choose from {list(FORMAT_STEPS)}")
    if config.version not in TRAIN_VERSIONS:
        raise FormatError(f"version {config.version!r}: choose one of {list(TRAIN_VERSIONS)}")
    steps = format_steps(config.version, config.steps)
    if not steps:
        raise FormatError(
            f"{SV_STEP} computes speaker embeddings for {' and '.join(sorted(PRO_VERSIONS))} only; "
            f"a {config.version} experiment does not need it"
        )
    if SV_STEP in steps and config.sv_path is None:
        raise FormatError(
            f"{config.version} formatting needs the speaker-verification model: set sv_path "
            "(pretrained_models/sv/pretrained_eres2netv2w24s4ep4.ckpt)"
        )
    symbols = text_version(config.version)  # v2Pro* read text with v2's phone table
    items, list_problems = read_items(config.list_path, config.audio_dir, symbols, config.data_root)
    for group in group_issues(list_problems):  # one line per kind, however long the list
        log.warning("%s: %s", config.list_path, group)
    if not items:
        shown = "\n".join(f"  {group}" for group in group_issues(list_problems))
        raise FormatError(
            f"{config.list_path}: no usable line ({len(list_problems)} problem(s)); "
            f"check the list and the audio folder:\n{shown}"
        )
    device = pick_device(config.device)
    dtype = torch.float16 if device.type == "cuda" and config.half else torch.float32
    files = ExperimentFiles(config.exp_dir)
    files.root.mkdir(parents=True, exist_ok=True)
    reports: list[StepReport] = []
    for step in steps:  # always upstream's order, whatever order was asked
        log.info("step %s: %d clips", step, len(items))
        if step == "1a":
            report = step_text(
                items, files, version=symbols, bert_dir=config.bert_dir, device=device,
                dtype=dtype, workers=config.workers, progress=progress, should_stop=should_stop,
            )  # fmt: skip
        elif step == "1b":
            report = step_hubert(
                items, files, hubert_dir=config.hubert_dir, device=device, dtype=dtype,
                workers=config.workers, progress=progress, should_stop=should_stop,
            )  # fmt: skip
        elif step == SV_STEP:
            assert config.sv_path is not None  # checked above
            report = step_sv(
                items, files, sv_path=Path(config.sv_path), device=device, dtype=dtype,
                progress=progress, should_stop=should_stop,
            )  # fmt: skip
        else:
            report = step_semantic(
                items, files, version=config.version, pretrained_s2g=config.pretrained_s2g,
                device=device, dtype=dtype, progress=progress, should_stop=should_stop,
            )  # fmt: skip
        for problem in report.problems:
            log.warning("%s", problem)
        log.info(
            "step %s: %d new, %d already done, %d left out",
            step,
            report.processed,
            report.skipped,
            len(report.problems),
        )
        reports.append(report)
        if report.stopped:
            break
    return FormatReport(len(items), tuple(list_problems), tuple(reports))


def write_problems(path: Path, problems: Sequence[Problem]) -> None:
    """``problems.txt``: one problem per line (empty file when there are none)."""
    atomic_write_text(path, "".join(f"{p}\n" for p in problems))


def write_problem_kinds(path: Path, report: FormatReport) -> None:
    """``problems-by-kind.txt``: one line per kind of list problem, then each step's problems."""
    atomic_write_text(path, "".join(f"{line}\n" for line in report.problem_lines()))


class _StatusWriter:
    """Turns progress callbacks into ``status.json`` snapshots (throttled)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / "status.json"
        self.status = RunStatus(state="running", stage="format", started=time.time(), pid=os.getpid())
        self._last = 0.0
        self._stage = ""

    def __call__(self, step: str, done: int, total: int, name: str) -> None:
        now = time.monotonic()
        stage = f"format:{step}"
        self.status = replace(self.status, stage=stage, step=done, total_steps=total, message=name)
        if stage != self._stage or done >= total or now - self._last >= STATUS_EVERY_S:
            self._stage, self._last = stage, now
            write_status(self.path, self.status)

    def finish(self, state: str, message: str, error: str | None = None) -> None:
        self.status = replace(self.status, state=state, message=message, last_error=error, eta_s=None)
        write_status(self.path, self.status)


FAILED = Message("format.note.failed", "formatting failed")  # the status line of a failed run


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m app.data.preprocess.tts_features",
        description="Format a .list dataset into a GPT-SoVITS experiment folder (steps 1a, 1b, 2-get-sv, 1c).",
    )
    p.add_argument("--config", type=Path, help="run.yaml of a formatting job (FormatRunConfig)")
    p.add_argument("--list", type=Path, help=".list file (wav_path|speaker|language|text)")
    p.add_argument("--audio-dir", type=Path, help="folder with the clips (default: paths as listed)")
    p.add_argument("--exp", help="experiment name (folder under output/experiments/)")
    p.add_argument("--exp-dir", type=Path, help="experiment folder (instead of --exp)")
    p.add_argument("--steps", nargs="+", choices=FORMAT_STEPS, default=list(FORMAT_STEPS))
    p.add_argument("--version", choices=TRAIN_VERSIONS, default="v2")
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=2)
    return p


def _config_from_args(args: argparse.Namespace) -> FormatRunConfig:
    from app.models.encoders.sv import SV_FILE
    from app.paths import Layout
    from app.settings import load_settings

    if args.list is None or (args.exp is None and args.exp_dir is None):
        raise SystemExit("give --config, or --list with --exp (or --exp-dir)")
    settings = load_settings()
    layout = Layout(settings.home, settings.pretrained_dir)
    pretrained = layout.pretrained
    return FormatRunConfig(
        list_path=args.list,
        audio_dir=args.audio_dir,
        exp_dir=args.exp_dir or layout.experiment(args.exp),
        bert_dir=pretrained / "chinese-roberta-wwm-ext-large",
        hubert_dir=pretrained / "chinese-hubert-base",
        pretrained_s2g=pretrained / S2G_FILES[args.version],
        version=args.version,
        steps=tuple(args.steps),
        device=args.device,
        workers=args.workers,
        sv_path=pretrained / SV_FILE if args.version in PRO_VERSIONS else None,
        data_root=settings.home,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.config is None:
        config = _config_from_args(args)
        try:
            report = run_format(config, progress=_print_progress)
        except FormatError as exc:
            log.error("%s", exc)
            return 2
        log.info("%s", report.summary())
        return 0
    run_dir = args.config.parent
    status = _StatusWriter(run_dir)
    stop = {"requested": False}

    def on_sigterm(signum: int, frame: object) -> None:
        log.info("stop requested: finishing the current clip")
        stop["requested"] = True

    signal.signal(signal.SIGTERM, on_sigterm)
    write_status(status.path, status.status)  # replaces the status a previous run left
    try:
        config = config_io.load(FormatRunConfig, args.config)
        report = run_format(config, progress=status, should_stop=lambda: stop["requested"])
    except (FormatError, config_io.ConfigError) as exc:
        log.error("%s", exc)
        status.finish("failed", FAILED, said(exc))
        return 2
    except Exception as exc:
        log.exception("formatting failed")
        status.finish("failed", FAILED, f"{type(exc).__name__}: {exc}")
        return 1
    write_problems(run_dir / PROBLEMS_FILE, report.problems)
    write_problem_kinds(run_dir / PROBLEM_KINDS_FILE, report)
    if report.stopped:
        status.finish(
            "stopped", Message("format.note.stopped", "stopped; run again to continue where it stopped")
        )
    else:
        template = "{clips} clips formatted, {problems} problem(s)"
        status.finish(
            "done", Message("format.note.done", template, clips=report.items, problems=len(report.problems))
        )
    log.info("%s", report.summary())
    return 0


def _print_progress(step: str, done: int, total: int, name: str) -> None:
    if total and (done == total or done % 25 == 0):
        log.info("%s: %d/%d %s", step, done, total, name)


if __name__ == "__main__":
    sys.exit(main())
