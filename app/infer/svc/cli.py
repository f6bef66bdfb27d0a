"""``python -m app.infer.svc INPUT -m G_800.pth [-c config.json] [-s speaker] [-t 12] [-o out.wav] ...``"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from app.audio.io import AudioError, save_audio
from app.audio.pitch import TRACKERS
from app.infer.request import PRECISIONS
from app.infer.svc.pipeline import SVCPipeline
from app.infer.svc.request import SvcInputError, SvcModelError, SvcRequest, default_output_name

if TYPE_CHECKING:
    from app.infer.svc.live import LiveOptions


def add_voice_arguments(
    p: argparse.ArgumentParser, d: SvcRequest | LiveOptions, model_required: bool
) -> None:
    """The voice options of the file and the live command: model, config, speaker or mix, transpose,
    f0 tracker, auto f0, noise and seed (defaults from ``d``, the command's request or options)."""
    p.add_argument("-m", "--model", type=Path, required=model_required, help="G_*.pth or compressed model")
    p.add_argument("-c", "--config", type=Path, help="config.json (default: beside the model)")
    p.add_argument("-s", "--speaker", help="speaker name (default: the first)")
    p.add_argument("--mix", nargs="+", metavar="NAME=WEIGHT", help="speaker mix instead of one speaker")
    p.add_argument("-t", "--transpose", type=float, default=0.0, help="semitones (12 = octave up)")
    p.add_argument(
        "-f0p", "--f0", default=d.f0_method, choices=sorted(TRACKERS), help="f0 tracker (default %(default)s)"
    )
    p.add_argument("-a", "--auto-f0", action="store_true", help="predict f0 (speech only)")
    p.add_argument("-ns", "--noise-scale", type=float, default=d.noise_scale)
    p.add_argument("--seed", type=int, default=d.seed)


def _parser() -> argparse.ArgumentParser:
    d = SvcRequest(audio=b"", model=Path())
    p = argparse.ArgumentParser(
        prog="python -m app.infer.svc", description="Convert a song to a trained so-vits-svc voice."
    )
    p.add_argument("input", type=Path, help="song or speech (any readable audio)")
    add_voice_arguments(p, d, model_required=True)
    p.add_argument("-sd", "--slice-db", type=float, default=d.slice_db)
    p.add_argument("-p", "--pad-seconds", type=float, default=d.pad_seconds)
    p.add_argument("--max-slice", type=float, default=d.max_slice_seconds, help="longest piece in seconds")
    p.add_argument(
        "--crossfade", type=float, default=d.crossfade_seconds, help="cross-fade between pieces, seconds"
    )
    p.add_argument("-cr", "--cluster-ratio", type=float, default=0.0)
    p.add_argument("-cm", "--cluster-model", type=Path)
    p.add_argument("-lea", "--loudness-mix", type=float, default=1.0)
    p.add_argument(
        "--no-range-check", action="store_true", help="convert even far outside the trained pitch range"
    )
    p.add_argument("--separate", action="store_true", help="separate the vocals first (demucs)")
    p.add_argument(
        "--mix-accompaniment", action="store_true", help="with --separate: mix the accompaniment back"
    )
    p.add_argument(
        "-o", "--output", type=Path, help="output file (default: results/<input>_<t>key_<speaker>.wav)"
    )
    p.add_argument("--pretrained", type=Path, help="pretrained_models folder (default from STUDIO_HOME)")
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--precision", default=d.precision, choices=PRECISIONS,
        help="fp32 (so-vits-svc's numbers) or fast (bf16 encoder and decoder where native; default %(default)s)",
    )  # fmt: skip
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from app.settings import load_settings

    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = load_settings()
    try:
        mix = tuple(
            (name, float(weight)) for name, _, weight in (item.partition("=") for item in args.mix or ())
        )
        request = SvcRequest(
            audio=args.input, model=args.model, config=args.config, speaker=args.speaker, mix=mix,
            transpose=args.transpose, f0_method=args.f0, auto_f0=args.auto_f0, noise_scale=args.noise_scale,
            seed=args.seed, slice_db=args.slice_db, pad_seconds=args.pad_seconds, max_slice_seconds=args.max_slice,
            crossfade_seconds=args.crossfade, cluster_ratio=args.cluster_ratio, cluster_model=args.cluster_model,
            loudness_mix=args.loudness_mix, check_range=not args.no_range_check, separate=args.separate,
            mix_accompaniment=args.mix_accompaniment, precision=args.precision,
        )  # fmt: skip
        pipeline = SVCPipeline(
            args.pretrained or settings.pretrained,
            device=args.device if args.device != "auto" else settings.device,
        )
        result = pipeline.convert(request)
    except (SvcInputError, SvcModelError, AudioError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    output = args.output or settings.home / "output" / "svc_results" / default_output_name(
        os.fspath(args.input), args.transpose, result.speaker
    )
    save_audio(output, result.audio, result.sample_rate)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(output)
    return 0
