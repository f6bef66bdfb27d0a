"""One click from raw recordings to a dataset to proofread: separate -> clean up -> slice -> transcribe.

Upstream chains four tools by pasting output folders into the next one's textbox. Here one call
runs the stages in order into one dataset folder::

    output/datasets/<name>/separated/vocals/*.wav      (when separation is on)
    output/datasets/<name>/separated/accompaniment/*.wav
    output/datasets/<name>/separated/report.json         stems per recording (a rerun keeps finished ones)
    output/datasets/<name>/cleaned/<step>/*.wav          karaoke -> dereverb -> denoise, those chosen
    output/datasets/<name>/cleaned/report.json           per clip and step: model, dB removed, seconds
    output/datasets/<name>/clips/*.wav                   32 kHz clips, upstream's names
    output/datasets/<name>/<name>.list                   abs_wav_path|<name>|LANG|text

and reports progress per stage. Files a stage cannot use are reported with the reason and the
run goes on with the rest; a stage that produces nothing stops the run with a clear error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from app.audio.slicer import SlicerOptions
from app.data.preprocess.cleanup import CleanupOptions, CleanupResult, clean_files
from app.data.preprocess.separate import SeparateOptions, SeparateResult, list_audio_files, separate_files
from app.data.preprocess.slice import SliceReport, collect_inputs, slice_files
from app.data.preprocess.transcribe import TranscribeOptions, TranscribeResult, transcribe_folder
from app.messages import Message
from app.paths import safe_name

logger = logging.getLogger(__name__)

DATASETS_FOLDER = "datasets"  # under output/
CLIPS_FOLDER = "clips"
SEPARATED_FOLDER = "separated"
CLEANED_FOLDER = "cleaned"
# Share of the whole run each stage stands for in the overall progress (separation is the slowest).
STAGE_WEIGHTS = {"separate": 0.5, "clean": 0.3, "slice": 0.1, "transcribe": 0.4}


class PipelineError(RuntimeError):
    """A stage produced nothing to continue with; the message says which and why."""


@dataclass(frozen=True)
class PipelineOptions:
    """The whole run; each stage keeps its own options object."""

    separate: bool = False  # run vocal separation first (songs, music or noisy recordings)
    separation: SeparateOptions = field(default_factory=SeparateOptions)  # demucs or MDX-Net settings
    cleanup: CleanupOptions = field(
        default_factory=CleanupOptions
    )  # karaoke/de-reverb/denoise (none by default)
    slicer: SlicerOptions = field(default_factory=SlicerOptions)  # cut at pauses (upstream defaults)
    transcription: TranscribeOptions = field(default_factory=TranscribeOptions)  # ASR settings
    slice_workers: int = 1  # processes slicing files in parallel


@dataclass(frozen=True)
class StageProgress:
    """Where a run is."""

    stage: str  # "separate", "clean", "slice" or "transcribe"
    fraction: float  # done within this stage, 0..1
    overall: float  # done of the whole run, 0..1
    message: str  # what is happening, e.g. the file being worked on


@dataclass(frozen=True)
class PipelineResult:
    """Everything a run wrote; ``list_path`` is what the proofreading editor opens."""

    list_path: Path  # the .list of the new dataset
    dataset_dir: Path  # output/datasets/<name>
    separated: SeparateResult | None  # None when separation was off
    cleaned: CleanupResult | None  # None when no clean-up step was chosen
    sliced: SliceReport  # clips and per-file slicing errors
    transcribed: TranscribeResult  # rows, skipped clips, model used

    @property
    def problems(self) -> tuple[str, ...]:
        """Every file a stage could not use, with the reason."""
        out: list[str] = []
        if self.separated is not None:
            out += [f"separate: {path.name}: {why}" for path, why in self.separated.failed]
        if self.cleaned is not None:
            out += [f"clean: {path.name}: {why}" for path, why in self.cleaned.failed]
        out += [f"slice: {f.error}" for f in self.sliced.errors]
        out += [f"transcribe: {path.name}: {why}" for path, why in self.transcribed.skipped]
        return tuple(out)


def dataset_dir(output_root: Path, name: str) -> Path:
    """``output/datasets/<name>`` for a dataset name (one safe path component)."""
    return Path(output_root) / DATASETS_FOLDER / safe_name(name)


Report = Callable[[str, float, str], None]  # (stage, fraction of it done, message)


def _separate(
    sources: list[Path], root: Path, pretrained_root: Path, options: PipelineOptions, report: Report
) -> tuple[SeparateResult | None, list[Path]]:
    """Stage 1 (when chosen): the vocals of each recording, and the files the next stage reads."""
    if not options.separate:
        return None, sources
    report("separate", 0.0, Message("pipe.step.loading_separation", "loading the separation model"))
    separated = separate_files(
        sources,
        root / SEPARATED_FOLDER,
        pretrained_root,
        options.separation,
        progress=lambda f, msg: report("separate", f, msg),
    )
    if not separated.files:
        reasons = "; ".join(f"{p.name}: {why}" for p, why in separated.failed)
        raise PipelineError(
            Message("pipe.err.no_vocals", "separation produced no vocals ({reasons})", reasons=reasons)
        )
    return separated, [f.vocals for f in separated.files]


def _clean(
    sources: list[Path], root: Path, pretrained_root: Path, options: PipelineOptions, report: Report
) -> tuple[CleanupResult | None, list[Path]]:
    """Stage 2 (when any step is chosen): karaoke -> de-reverb -> denoise, and the files to slice."""
    if not options.cleanup.steps:
        return None, sources
    steps = " -> ".join(options.cleanup.steps)
    report(
        "clean",
        0.0,
        Message("pipe.step.cleaning", "cleaning {files} file(s): {steps}", files=len(sources), steps=steps),
    )
    cleaned = clean_files(
        sources,
        root / CLEANED_FOLDER,
        pretrained_root,
        options.cleanup,
        progress=lambda f, msg: report("clean", f, msg),
    )
    if not cleaned.outputs:
        reasons = "; ".join(f"{p.name}: {why}" for p, why in cleaned.failed)
        raise PipelineError(
            Message("pipe.err.no_cleaned", "clean-up left no audio ({reasons})", reasons=reasons)
        )
    return cleaned, list(cleaned.outputs)


def build_dataset(
    inputs: Path | Sequence[Path],
    name: str,
    output_root: Path,
    pretrained_root: Path,
    options: PipelineOptions = PipelineOptions(),
    progress: Callable[[StageProgress], None] | None = None,
) -> PipelineResult:
    """Turn raw recordings (a file, a folder, or a list of files) into ``output/datasets/<name>/<name>.list``.

    The speaker written in the list is ``name``. Raises :class:`PipelineError` when a stage leaves
    nothing for the next one, and the stages' own errors (missing model, bad options) unchanged.
    """
    root = dataset_dir(output_root, name)
    skipped = {"separate": not options.separate, "clean": not options.cleanup.steps}
    stages = [s for s in STAGE_WEIGHTS if not skipped.get(s, False)]
    total = sum(STAGE_WEIGHTS[s] for s in stages)
    starts = {s: sum(STAGE_WEIGHTS[t] for t in stages[: stages.index(s)]) / total for s in stages}

    def report(stage: str, fraction: float, message: str) -> None:
        if progress is not None:
            overall = starts[stage] + fraction * STAGE_WEIGHTS[stage] / total
            progress(StageProgress(stage, fraction, min(1.0, overall), message))

    sources = list_audio_files(inputs) if isinstance(inputs, (str, Path)) else [Path(p) for p in inputs]
    if not sources:
        template = "{inputs}: no audio files to build a dataset from"
        raise PipelineError(Message("pipe.err.no_audio", template, inputs=str(inputs)))

    separated, sources = _separate(sources, root, pretrained_root, options, report)
    cleaned, sources = _clean(sources, root, pretrained_root, options, report)

    clips_dir = root / CLIPS_FOLDER
    report("slice", 0.0, Message("pipe.step.slicing", "slicing {files} file(s)", files=len(sources)))
    sliced = slice_files(
        [p for s in sources for p in collect_inputs(s)],
        clips_dir,
        options.slicer,
        workers=options.slice_workers,
        progress=lambda done, n, file: report(
            "slice", done / max(1, n), Message("pipe.step.sliced", "sliced {file}", file=str(file))
        ),
    )
    if not sliced.clips:
        if not sliced.errors:
            template = "slicing produced no clips (every file was shorter than a clip or silent)"
            raise PipelineError(Message("pipe.err.no_clips_short", template))
        reasons = "; ".join(f.error for f in sliced.errors)
        raise PipelineError(
            Message("pipe.err.no_clips", "slicing produced no clips ({reasons})", reasons=reasons)
        )

    report(
        "transcribe",
        0.0,
        Message("pipe.step.transcribing", "transcribing {clips} clips", clips=len(sliced.clips)),
    )
    transcribed = transcribe_folder(
        clips_dir,
        root,
        pretrained_root,
        replace(options.transcription, speaker=safe_name(name)),
        progress=lambda f, msg: report("transcribe", f, msg),
        files=sliced.clips,
    )
    logger.info("dataset %s: %d rows in %s", name, len(transcribed.rows), transcribed.list_path)
    return PipelineResult(transcribed.list_path, root, separated, cleaned, sliced, transcribed)
