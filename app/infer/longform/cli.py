"""Command-line long-form synthesis: a book, a subtitle file or a voice script in; audio, subtitles out.

    python -m app.infer.longform book.txt --job output/longform/book \\
        --gpt GPT_weights/voice-e15.ckpt --sovits SoVITS_weights/voice_e8_s200.pth \\
        --ref ref.wav --ref-text "What the reference says." --takes 2

    python -m app.infer.longform --resume output/longform/book      # after a kill or a stop

A script names its voices (``voice|text`` lines); ``--voices voices.json`` maps each name to
``{"ref": ..., "ref_text": ..., "ref_lang": ..., "lang": ..., "gpt": ..., "sovits": ...}``
(models default to ``--gpt``/``--sovits``; the default voice is ``--ref``). Subtitle sources are
dubbed (each cue fitted to its time) unless ``--no-dub``. Exit codes: 0 done, 2 bad input,
3 models that cannot be loaded.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from app.infer.longform.assemble import Assembly
from app.infer.longform.fit import FitOptions
from app.infer.longform.job import LongformJob
from app.infer.longform.lease import Heartbeat, held_by_other, new_owner_id
from app.infer.longform.sources import KINDS, SourceError, read_source
from app.infer.longform.state import JobOptions, JobState, JobStateError, LineState, Voice
from app.infer.request import PRECISIONS, AudioChunk, ModelLoadError, PipelineSpec, TTSInputError, TTSRequest

EXIT_INPUT = 2
EXIT_MODEL = 3
HUBERT_FOLDER, BERT_FOLDER = "chinese-hubert-base", "chinese-roberta-wwm-ext-large"
log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m app.infer.longform", description=__doc__.splitlines()[0])
    p.add_argument("source", nargs="?", type=Path, help="txt, md, epub, srt, vtt, or a voice script (.list)")
    p.add_argument("--kind", choices=KINDS, help="source type (default: from the file's suffix)")
    p.add_argument("--job", type=Path, help="job folder to create (takes, job.json, out/)")
    p.add_argument("--resume", type=Path, help="job folder to continue with its own voices and options")
    m = p.add_argument_group("models")
    m.add_argument("--gpt", type=Path, help="GPT .ckpt")
    m.add_argument("--sovits", type=Path, help="SoVITS .pth")
    m.add_argument(
        "--pretrained", type=Path, help="folder with chinese-hubert-base/ and chinese-roberta-wwm-ext-large/"
    )
    m.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (default)")
    m.add_argument("--precision", choices=PRECISIONS, default="fp32")
    m.add_argument("--threads", type=int, help="CPU threads for torch")
    v = p.add_argument_group("voices")
    v.add_argument("--ref", type=Path, help="reference clip of the default voice")
    v.add_argument("--ref-text", default="", help="what the reference says")
    v.add_argument("--ref-lang", default="auto", help="language mode of the reference text")
    v.add_argument("--lang", default="auto", help="language mode of the text")
    v.add_argument("--voices", type=Path, help="JSON file of named voices (scripts with several voices)")
    o = p.add_argument_group("job")
    o.add_argument("--title", default="longform", help="name of the output files")
    o.add_argument("--takes", type=int, default=1, help="takes per line (1-8)")
    o.add_argument("--seed", type=int, default=0, help="base seed (takes derive theirs from it)")
    o.add_argument("--line-pause", type=float, default=0.5, help="seconds between lines")
    o.add_argument("--chapter-pause", type=float, default=1.5, help="seconds before a new chapter")
    o.add_argument("--split", default="cut1", help="sentence split method inside a line (cut0-cut5)")
    o.add_argument("--speed", type=float, default=1.0)
    o.add_argument("--dub", action=argparse.BooleanOptionalAction, help="fit subtitle cues to their times")
    o.add_argument("--max-speed", type=float, default=1.5, help="fastest speed when dubbing")
    o.add_argument(
        "--word-timestamps",
        action="store_true",
        help="time every word (Chinese: character) from the GPT's alignment: in the timestamps JSON "
        "and <title>.words.srt/.words.vtt",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log progress")
    return p


def _voice(name: str, entry: dict, args: argparse.Namespace) -> Voice:
    pretrained = args.pretrained
    if pretrained is None:
        from app.settings import load_settings

        pretrained = load_settings().pretrained
    gpt, sovits, ref = entry.get("gpt") or args.gpt, entry.get("sovits") or args.sovits, entry.get("ref")
    if not gpt or not sovits:
        raise JobStateError(
            f"voice {name or '(default)'}: give --gpt and --sovits (or gpt/sovits in --voices)"
        )
    if not ref:
        raise JobStateError(
            f"voice {name or '(default)'}: no reference clip: give --ref (or ref in --voices)"
        )
    from app.devices import pick_device

    try:
        device = str(pick_device(args.device))
    except (RuntimeError, ValueError) as exc:
        raise ModelLoadError(str(exc)) from None
    spec = PipelineSpec(
        Path(gpt), Path(sovits), pretrained / HUBERT_FOLDER, pretrained / BERT_FOLDER, device, args.precision
    )
    request = TTSRequest(
        text=".",
        reference=str(Path(ref).resolve()),
        text_language=entry.get("lang", args.lang),
        prompt_text=entry.get("ref_text", ""),
        prompt_language=entry.get("ref_lang", args.ref_lang),
        split_method=args.split,
        speed=args.speed,
    )
    return Voice(name, spec, request)


def _voices(args: argparse.Namespace, names: tuple[str, ...]) -> tuple[Voice, ...]:
    table: dict[str, dict] = {}
    if args.voices is not None:
        try:
            table = json.loads(args.voices.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise JobStateError(f"{args.voices}: cannot read the voices file ({exc})") from None
        if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
            raise JobStateError(f"{args.voices}: write an object of voice name -> {{ref, ref_text, ...}}")
    voices = []
    if args.ref is not None:
        voices.append(_voice("", {"ref": args.ref, "ref_text": args.ref_text}, args))
    for name in names:
        if name and name not in table:
            raise JobStateError(f"the script names voice {name!r}: define it in the --voices file")
        if name:
            voices.append(_voice(name, table[name], args))
    if not voices:
        raise JobStateError("no voice: give --ref (and --ref-text), or --voices for a script")
    return tuple(voices)


def new_job(args: argparse.Namespace) -> LongformJob:
    """The job the arguments describe, created in ``--job``."""
    if args.source is None or args.job is None:
        raise JobStateError("give a source file and --job FOLDER (or --resume FOLDER)")
    script = read_source(args.source, args.kind)
    dub = script.timed if args.dub is None else args.dub
    if dub and not script.timed:
        raise JobStateError("--dub needs a subtitle source (.srt or .vtt)")
    options = JobOptions(
        title=args.title,
        takes=args.takes,
        seed=args.seed,
        line_pause=args.line_pause,
        chapter_pause=args.chapter_pause,
        dub=dub,
        fit=FitOptions(max_speed=args.max_speed),
        word_timestamps=args.word_timestamps,
    )
    voices = _voices(args, script.voices)
    lines = tuple(LineState(line) for line in script.lines)
    return LongformJob.create(args.job, JobState(script.kind, options, voices, lines))


class PipelineSpeaker:
    """A :data:`~app.infer.longform.job.Speak` over pipelines loaded here, one at a time."""

    def __init__(self) -> None:
        self._spec: PipelineSpec | None = None
        self._pipeline = None

    def __call__(self, spec: PipelineSpec, request: TTSRequest) -> Iterator[AudioChunk]:
        from app.infer.pipeline import TTSPipeline

        if spec != self._spec:
            self._pipeline = None  # free the previous voice's models first
            self._pipeline = TTSPipeline.load(spec)
            self._spec = spec
        assert self._pipeline is not None
        return self._pipeline.stream(request, token_chunks=False)


def _run_held(job: LongformJob, progress: Callable[[int, int], None]) -> Assembly:
    """Run ``job`` holding its folder's lease (a studio sharing the folder leaves it alone)."""
    leases = Heartbeat(new_owner_id())
    other = held_by_other(job.folder, leases.owner)
    if other is not None:
        raise JobStateError(
            f"{job.folder} is being run by another process ({other.host}, pid {other.pid}): let it finish"
        )
    leases.hold(job.folder)
    try:
        return job.run(PipelineSpeaker(), progress=progress)
    finally:
        leases.release(job.folder)
        leases.stop()


# What a resumed job may still be given: how this process runs, not what the job makes.
_RESUME_OPTIONS = {"resume", "source", "job", "threads", "verbose"}


def _options_given(args: argparse.Namespace) -> list[str]:
    """The job's own options given on the command line (differing from their defaults), as flags."""
    defaults = vars(_parser().parse_args([]))
    given = [k for k, v in vars(args).items() if k not in _RESUME_OPTIONS and v != defaults.get(k)]
    return ["--" + k.replace("_", "-") for k in given]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if args.threads is not None:
        import torch

        torch.set_num_threads(max(1, args.threads))
    try:
        if args.resume is not None and (args.source is not None or args.job is not None):
            raise JobStateError("give a source and --job for a new job, or --resume FOLDER alone")
        if args.resume is not None and (ignored := _options_given(args)):
            raise JobStateError(
                f"a resumed job keeps the voices and options it was started with; leave out {', '.join(ignored)} "
                "(or start a new job with them)"
            )
        job = LongformJob.open(args.resume) if args.resume is not None else new_job(args)
        done = len(job.state.lines) - job.state.done_lines

        def progress(lines_done: int, total: int) -> None:
            log.info("%d/%d lines", lines_done, total)

        result = _run_held(job, progress)
    except (SourceError, JobStateError, TTSInputError, ValueError) as exc:
        if isinstance(exc, ModelLoadError):
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_MODEL
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    print(
        f"wrote {result.audio}: {result.duration:.2f} s, {len(job.state.lines)} line(s) "
        f"({done} synthesised now), {len(result.cues)} subtitle cue(s)"
    )
    if result.words_srt is not None:
        words = sum(len(p.words) for p in result.placed)
        print(f"wrote {result.words_srt} and {result.words_vtt.name}: {words} timed word(s)")
    for report in result.unfit:
        print(
            f"note: cue {report.line} does not fit: {report.duration:.2f} s of speech for a "
            f"{report.slot:.2f} s slot at speed {report.speed:.2f}",
            file=sys.stderr,
        )
    return 0
