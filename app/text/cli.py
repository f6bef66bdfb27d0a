"""``python -m app.text "text" --lang auto --version v2``: show how the frontend reads a text."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from app.text.cleaner import UnsupportedLanguage
from app.text.frontend import EmptyText, LanguageMode, text_to_phones
from app.text.overrides import OverrideError
from app.text.split import SplitMethod, split_text
from app.text.symbols import VERSIONS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m app.text",
        description="Print the normalised text, phones and phone ids GPT-SoVITS models would get.",
    )
    p.add_argument("text", help='text to read; "-" reads standard input')
    p.add_argument(
        "--lang",
        default="auto",
        help=f"language mode: {', '.join(m.value for m in LanguageMode)} (or all_en); default auto",
    )
    p.add_argument("--version", default="v2", choices=VERSIONS, help="symbol table version (default v2)")
    p.add_argument(
        "--split",
        default=None,
        help="cut into sentences first with cut0..cut5 (as synthesis does); default: read as one piece",
    )
    p.add_argument("--g2pw", type=Path, default=None, help="G2PW model folder for Mandarin polyphones")
    p.add_argument("--json", action="store_true", help="print one JSON object per sentence")
    p.add_argument("-v", "--verbose", action="store_true", help="log which readers are used")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    text = sys.stdin.read() if args.text == "-" else args.text
    try:
        mode = LanguageMode.parse(args.lang)
        pieces = split_text(text, SplitMethod.parse(args.split), mode.value) if args.split else [text]
        results = [text_to_phones(piece, mode, args.version, g2pw_dir=args.g2pw) for piece in pieces]
    except (EmptyText, UnsupportedLanguage, OverrideError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for r in results:
        if args.json:
            print(json.dumps(asdict(r), ensure_ascii=False))
            continue
        print(f"text:     {r.text}")
        print(f"norm:     {r.norm_text}")
        print(f"segments: {' | '.join(f'{s.lang}:{s.text}' for s in r.segments)}")
        print(f"phones:   {' '.join(r.phones)}")
        print(f"ids:      {' '.join(map(str, r.phone_ids))}")
        if r.word2ph is not None:
            print(f"word2ph:  {' '.join(map(str, r.word2ph))}")
        if r.retried_with_leading_dot:
            print("note:     fewer than 6 phones, read again with a leading '.'")
        if len(results) > 1:
            print()
    return 0
