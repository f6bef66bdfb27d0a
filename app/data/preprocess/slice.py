"""Slice long recordings into training clips: files or folders in, 32 kHz int16 WAV clips out.

Library: :func:`slice_files` (files in parallel, per-file errors collected, progress callback).
CLI: ``python -m app.data.preprocess.slice IN OUT [--threshold -34 ...]``.

Clip names follow upstream GPT-SoVITS (``tools/slice_audio.py``): ``{source file name}_{start:010d}_{end:010d}.wav``
where start/end are sample offsets at 32 kHz and the source name keeps its extension, so
``a.wav`` and ``a.mp3`` in one folder never overwrite each other's clips. A source name too long
for that (file names hold 255 bytes) is shortened with a hash (:func:`app.paths.fit_file_name`).
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import sys
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from app.audio.io import AUDIO_EXTENSIONS, AudioError, load_audio, save_audio
from app.audio.slicer import SlicerOptions, SlicerOptionsError, slice_audio
from app.messages import Message
from app.paths import fit_file_name

log = logging.getLogger(__name__)

SLICE_SR = 32_000  # upstream slices at 32 kHz, the SoVITS training rate

# progress(done_files, total_files, name_of_the_file_just_finished)
ProgressFn = Callable[[int, int, str], None]


@dataclass(frozen=True)
class FileResult:
    """Outcome for one source file."""

    # The source file.
    source: Path
    # Clips written, in time order.
    clips: tuple[Path, ...] = ()
    # Why the file failed ("" when it did not).
    error: str = ""


@dataclass(frozen=True)
class SliceReport:
    """Outcome of a slicing run."""

    # Folder the clips were written to.
    out_dir: Path
    # One entry per source file, in input order.
    files: tuple[FileResult, ...] = field(default_factory=tuple)

    @property
    def clips(self) -> tuple[Path, ...]:
        return tuple(c for f in self.files for c in f.clips)

    @property
    def errors(self) -> tuple[FileResult, ...]:
        return tuple(f for f in self.files if f.error)


def collect_inputs(path: str | Path) -> list[Path]:
    """The audio files to slice: ``path`` itself, or the audio files directly inside a folder (sorted)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(
            p
            for p in path.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in AUDIO_EXTENSIONS
        )
    raise FileNotFoundError(Message("slice.err.no_input", "{path}: no such file or folder", path=str(path)))


def clip_name(source: Path, start: int, end: int) -> str:
    """Upstream's clip name: source file name (with extension) and sample offsets, within 255 bytes."""
    return fit_file_name(source.name, f"_{start:010d}_{end:010d}.wav")


def slice_file(
    source: Path, out_dir: Path, options: SlicerOptions, sample_rate: int = SLICE_SR
) -> FileResult:
    """Slice one file; never raises for a bad file (the error is in the result)."""
    try:
        wav = load_audio(source, sample_rate)
        clips = []
        for seg, clip in slice_audio(wav, sample_rate, options):
            clips.append(save_audio(out_dir / clip_name(source, seg.start, seg.end), clip, sample_rate))
        return FileResult(source, tuple(clips))
    except AudioError as exc:
        return FileResult(source, error=str(exc))
    except OSError as exc:
        return FileResult(source, error=f"{source}: cannot write clips to {out_dir} ({exc.strerror or exc})")


def slice_files(
    inputs: Iterable[str | Path],
    out_dir: str | Path,
    options: SlicerOptions | None = None,
    *,
    workers: int = 1,
    progress: ProgressFn | None = None,
    sample_rate: int = SLICE_SR,
) -> SliceReport:
    """Slice every file of ``inputs`` (files or folders) into ``out_dir``.

    ``workers > 1`` slices files in that many processes. A file that fails is reported in the
    result and the others continue.
    """
    opts = options or SlicerOptions()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sources = [p for item in inputs for p in collect_inputs(item)]
    total = len(sources)
    results: dict[int, FileResult] = {}

    def finished(index: int, result: FileResult) -> None:
        results[index] = result
        if result.error:
            log.warning("slicing failed: %s", result.error)
        if progress is not None:
            progress(len(results), total, result.source.name)

    if workers <= 1 or total <= 1:
        for i, src in enumerate(sources):
            finished(i, slice_file(src, out, opts, sample_rate))
    else:
        # spawn: safe inside a threaded server (gradio); fork could copy held locks.
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(workers, total), mp_context=ctx) as pool:
            pending: dict[Future[FileResult], int] = {
                pool.submit(slice_file, src, out, opts, sample_rate): i for i, src in enumerate(sources)
            }
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    finished(pending.pop(fut), fut.result())
    return SliceReport(out, tuple(results[i] for i in range(total)))


def _parser() -> argparse.ArgumentParser:
    d = SlicerOptions()
    p = argparse.ArgumentParser(
        prog="python -m app.data.preprocess.slice",
        description="Cut long recordings into clips at silences (32 kHz 16-bit WAV).",
    )
    p.add_argument("input", type=Path, help="an audio file or a folder of audio files")
    p.add_argument("output", type=Path, help="folder for the clips")
    p.add_argument(
        "--threshold", type=float, default=d.threshold_db, help="silence level in dBFS (default %(default)s)"
    )
    p.add_argument(
        "--min-length",
        type=int,
        default=d.min_length_ms,
        help="minimum clip length, ms (default %(default)s)",
    )
    p.add_argument(
        "--min-interval",
        type=int,
        default=d.min_interval_ms,
        help="shortest silence to cut at, ms (default %(default)s)",
    )
    p.add_argument("--hop-size", type=int, default=d.hop_ms, help="RMS hop, ms (default %(default)s)")
    p.add_argument(
        "--max-sil-kept",
        type=int,
        default=d.max_sil_kept_ms,
        help="silence kept around cuts, ms (default %(default)s)",
    )
    p.add_argument(
        "--max", dest="peak", type=float, default=d.peak, help="normalisation peak (default %(default)s)"
    )
    p.add_argument(
        "--alpha", type=float, default=d.alpha, help="share of the normalised signal (default %(default)s)"
    )
    p.add_argument("--workers", type=int, default=1, help="parallel processes (default %(default)s)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        opts = SlicerOptions(
            threshold_db=args.threshold,
            min_length_ms=args.min_length,
            min_interval_ms=args.min_interval,
            hop_ms=args.hop_size,
            max_sil_kept_ms=args.max_sil_kept,
            peak=args.peak,
            alpha=args.alpha,
        )
        sources = collect_inputs(args.input)
    except (SlicerOptionsError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not sources:
        print(
            f"error: {args.input} contains no audio files ({', '.join(sorted(AUDIO_EXTENSIONS))})",
            file=sys.stderr,
        )
        return 2

    def show(done: int, total: int, name: str) -> None:
        print(f"[{done}/{total}] {name}", file=sys.stderr)

    report = slice_files(sources, args.output, opts, workers=args.workers, progress=show)
    print(f"{len(report.clips)} clips from {len(sources) - len(report.errors)} file(s) in {report.out_dir}")
    for failed in report.errors:
        print(f"failed: {failed.error}", file=sys.stderr)
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
