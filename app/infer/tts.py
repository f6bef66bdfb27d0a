"""Command-line text to speech with a cloned voice.

    python -m app.infer.tts --gpt GPT_weights/voice-e15.ckpt --sovits SoVITS_weights/voice_e8_s200.pth \\
        --ref ref.wav --ref-text "What the reference says." --text "Text to speak." --out out.wav

Builds the same :class:`~app.infer.request.TTSRequest` as the web UI and the HTTP API. Exit codes:
0 done, 2 bad input (text, reference, parameters), 3 models that cannot be loaded. What the
pipeline notes (a trimmed, clipped or over-range reference, skipped letters) goes to stderr as
``note: ...`` lines, with a result or before an error.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import soundfile as sf

from app.infer.request import PRECISIONS, ModelLoadError, PipelineSpec, TTSInputError, TTSRequest, TTSResult
from app.text import LanguageMode, SplitMethod

EXIT_INPUT = 2
EXIT_MODEL = 3
HUBERT_FOLDER, BERT_FOLDER = "chinese-hubert-base", "chinese-roberta-wwm-ext-large"


def _parser() -> argparse.ArgumentParser:
    defaults = TTSRequest(text=".", reference=b"")
    p = argparse.ArgumentParser(prog="python -m app.infer.tts", description=__doc__.splitlines()[0])
    m = p.add_argument_group("models")
    m.add_argument("--gpt", required=True, type=Path, help="GPT .ckpt (text -> semantic tokens)")
    m.add_argument("--sovits", required=True, type=Path, help="SoVITS .pth generator (tokens -> audio)")
    m.add_argument(
        "--pretrained", type=Path, help="folder with chinese-hubert-base/ and chinese-roberta-wwm-ext-large/ "
        "(default: STUDIO_PRETRAINED or <data root>/pretrained_models)"
    )  # fmt: skip
    m.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (default)")
    m.add_argument("--precision", choices=PRECISIONS, default="fp32", help="fp32 (default) or fast")
    m.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    r = p.add_argument_group("reference")
    r.add_argument("--ref", required=True, type=Path, help="reference clip (3-10 s; longer is trimmed)")
    r.add_argument("--ref-text", default="", help="what the reference says (omit for reference-free mode)")
    r.add_argument("--ref-text-file", type=Path, help="read the reference text from this UTF-8 file")
    r.add_argument("--ref-lang", default=defaults.prompt_language, help="language mode of the reference text")
    r.add_argument("--ref-free", action="store_true", help="clone the timbre only, ignore the reference text")
    r.add_argument("--extra-ref", type=Path, action="append", default=[], help="more clips for the timbre")
    t = p.add_argument_group("text")
    t.add_argument("--text", help="text to speak")
    t.add_argument("--text-file", type=Path, help="read the text from this UTF-8 file")
    modes = ", ".join(m.value for m in LanguageMode)
    t.add_argument("--lang", default=defaults.text_language, help=f"language mode: {modes}")
    splits = ", ".join(s.value for s in SplitMethod)
    t.add_argument("--split", default=defaults.split_method, help=f"split method: {splits}")
    s = p.add_argument_group("sampling and output")
    s.add_argument("--top-k", type=int, default=defaults.top_k)
    s.add_argument("--top-p", type=float, default=defaults.top_p)
    s.add_argument("--temperature", type=float, default=defaults.temperature)
    s.add_argument("--repetition-penalty", type=float, default=defaults.repetition_penalty)
    s.add_argument("--speed", type=float, default=defaults.speed)
    s.add_argument("--pause", type=float, default=defaults.pause_seconds, help="seconds after each segment")
    s.add_argument("--seed", type=int, default=-1, help="-1 (default) draws one and prints it")
    s.add_argument("--batch-size", type=int, default=defaults.batch_size, help="segments decoded together")
    s.add_argument(
        "--sample-steps",
        type=int,
        default=None,
        help="flow-matching steps of v3/v4 models (4-128; default: v3 32, v4 8)",
    )
    s.add_argument("--stream", action="store_true", help="write audio to --out as it is decoded")
    s.add_argument(
        "--out", required=True, type=Path, help="output .wav (16-bit; 32 kHz, v3 24 kHz, v4 48 kHz)"
    )
    s.add_argument("-v", "--verbose", action="store_true", help="log progress")
    return p


def _read_text(value: str | None, path: Path | None, what: str) -> str:
    if path is None:
        return value or ""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TTSInputError(f"{path}: cannot read the {what} file ({exc})") from None


def build_request(args: argparse.Namespace) -> TTSRequest:
    """The :class:`TTSRequest` the arguments describe (errors are :class:`TTSInputError`)."""
    if args.text is not None and args.text_file is not None:
        raise TTSInputError("give either --text or --text-file, not both")
    text = _read_text(args.text, args.text_file, "text")
    prompt = _read_text(args.ref_text, args.ref_text_file, "reference text")
    return TTSRequest(
        text=text,
        reference=str(args.ref),
        text_language=args.lang,
        prompt_text=prompt,
        prompt_language=args.ref_lang,
        reference_free=args.ref_free,
        extra_references=tuple(str(p) for p in args.extra_ref),
        split_method=args.split,
        top_k=args.top_k,
        top_p=args.top_p,
        temperature=args.temperature,
        repetition_penalty=args.repetition_penalty,
        speed=args.speed,
        pause_seconds=args.pause,
        seed=args.seed,
        batch_size=args.batch_size,
        sample_steps=args.sample_steps,
    )


def _spec(args: argparse.Namespace) -> PipelineSpec:
    from app.devices import pick_device
    from app.settings import load_settings

    pretrained = args.pretrained or load_settings().pretrained
    try:
        device = str(pick_device(args.device))
    except (RuntimeError, ValueError) as exc:
        raise ModelLoadError(str(exc)) from None
    return PipelineSpec(
        gpt_path=args.gpt,
        sovits_path=args.sovits,
        hubert_dir=pretrained / HUBERT_FOLDER,
        bert_dir=pretrained / BERT_FOLDER,
        device=device,
        precision=args.precision,
    )


def _run(pipeline, request: TTSRequest, out: Path, stream: bool) -> TTSResult:
    out.parent.mkdir(parents=True, exist_ok=True)
    if not stream:
        result = pipeline.synthesize(request)
        sf.write(out, result.audio, result.sample_rate, subtype="PCM_16", format="WAV")
        return result
    result = None
    with sf.SoundFile(
        out, "w", samplerate=pipeline.sample_rate, channels=1, subtype="PCM_16", format="WAV"
    ) as f:
        for chunk in pipeline.stream(request):
            if len(chunk.audio):
                f.write(chunk.audio)
                f.flush()
            result = chunk.result or result
    assert result is not None
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not args.verbose:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights" bars of the encoders
    if args.threads is not None:
        import torch

        torch.set_num_threads(max(1, args.threads))
    try:
        request = build_request(args)
    except TTSInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    from app.infer.pipeline import TTSPipeline  # heavy imports only once the arguments are valid

    start = time.perf_counter()
    try:
        pipeline = TTSPipeline.load(_spec(args))
    except ModelLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_MODEL
    loaded = time.perf_counter() - start
    try:
        result = _run(pipeline, request, args.out, args.stream)
    except (TTSInputError, ModelLoadError) as exc:
        if args.stream:
            args.out.unlink(missing_ok=True)  # a half-written stream is no result
        _print_notes(getattr(exc, "notes", ()))
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT if isinstance(exc, TTSInputError) else EXIT_MODEL
    t = result.timings
    print(
        f"wrote {args.out}: {result.duration:.2f} s, {len(result.segments)} segment(s), seed {result.seed}; "
        f"load {loaded:.1f} s, synthesis {t.total:.2f} s (first audio {t.first_audio:.2f} s, "
        f"RTF {t.total / max(result.duration, 1e-9):.2f})"
    )
    _print_notes(result.notes)
    return 0


def _print_notes(notes: Sequence[str]) -> None:
    """What the pipeline noted (trimmed or clipped reference, skipped letters): stderr, like warnings."""
    for note in notes:
        print(f"note: {note}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
