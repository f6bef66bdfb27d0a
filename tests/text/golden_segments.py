"""Read per-language segments out of every upstream text-golden file (shared by tests/text/*)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GoldenSegment:
    """One segment of one golden line, with the line's group for per-group rates."""

    # "v1" or "v2".
    version: str
    # "<version>/<line lang>", e.g. "v2/auto".
    group: str
    # Segment language as upstream's segmenter labelled it ("en", "ja", "ko", "zh", ...).
    lang: str
    text: str
    norm_text: str
    phones: tuple[str, ...]
    # "<file>:<line>" for failure messages.
    where: str


def golden_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob("text_goldens_*.jsonl"))
    assert files, f"no text_goldens_*.jsonl in {folder}"
    return files


def golden_lines(folder: Path) -> Iterator[tuple[str, dict]]:
    for path in golden_files(folder):
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                yield f"{path.name}:{lineno}", json.loads(line)


def golden_segments(folder: Path, lang: str) -> list[GoldenSegment]:
    out = []
    for where, rec in golden_lines(folder):
        for seg in rec["segments"]:
            if seg["lang"] == lang:
                out.append(
                    GoldenSegment(
                        version=rec["version"],
                        group=f"{rec['version']}/{rec['lang']}",
                        lang=seg["lang"],
                        text=seg["text"],
                        norm_text=seg["norm_text"],
                        phones=tuple(seg["phones"]),
                        where=where,
                    )
                )
    return out


def symbol_set(folder: Path, version: str) -> frozenset[str]:
    data = json.loads((folder / f"symbols_{version}.json").read_text(encoding="utf-8"))
    return frozenset(data["symbols"])


def to_table(phones: tuple[str, ...], symbols: frozenset[str]) -> tuple[str, ...]:
    """Upstream's cleaner: phones missing from the version's table become UNK."""
    return tuple(p if p in symbols else "UNK" for p in phones)


def report(results: dict[str, list[tuple[bool, str]]], min_rate: float) -> list[str]:
    """Print per-group rates and differing segments; return the groups below ``min_rate``."""
    failing = []
    for group, rows in sorted(results.items()):
        ok = sum(good for good, _ in rows)
        rate = ok / len(rows)
        print(f"{group}: {ok}/{len(rows)} = {rate:.1%}")
        for good, msg in rows:
            if not good:
                print("  " + msg)
        if rate < min_rate:
            failing.append(f"{group} {rate:.1%}")
    return failing
