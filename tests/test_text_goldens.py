"""Upstream parity of the whole text frontend on every ``text_goldens_*.jsonl`` file.

Each golden line is upstream GPT-SoVITS' ``get_phones_and_bert(text, lang, version)`` output,
recorded with the offline settings of the fixtures README (G2PW off, ...). Lines are grouped
by (version, language mode); every group must give exactly upstream's phones (and word2ph
where upstream has one) on at least 95 % of its lines. The per-group rates and every line that
differs are printed (``pytest -s`` shows them; a failure message repeats the differing lines).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.text import text_to_phones

MIN_RATE = 0.95


@dataclass(frozen=True)
class Outcome:
    where: str
    text: str
    ok: bool
    detail: str


def _golden_lines(folder: Path) -> list[tuple[str, dict]]:
    files = sorted(folder.glob("text_goldens_*.jsonl"))
    assert files, f"no text_goldens_*.jsonl in {folder}"
    out = []
    for path in files:
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                out.append((f"{path.name}:{lineno}", json.loads(line)))
    return out


def _check(where: str, rec: dict) -> Outcome:
    try:
        got = text_to_phones(rec["text"], rec["lang"], rec["version"])
    except Exception as exc:  # a crash counts as a miss, reported with its message
        return Outcome(where, rec["text"], False, f"raised {type(exc).__name__}: {exc}")
    problems = []
    if list(got.phones) != rec["phones"]:
        problems.append(f"phones\n      got  {' '.join(got.phones)}\n      want {' '.join(rec['phones'])}")
    elif list(got.phone_ids) != rec["phone_ids"]:
        problems.append(f"phone ids {list(got.phone_ids)} != {rec['phone_ids']}")
    if rec.get("word2ph") is not None and (got.word2ph is None or list(got.word2ph) != rec["word2ph"]):
        problems.append(f"word2ph {got.word2ph} != {rec['word2ph']}")
    if problems:
        segs = " | ".join(f"{s.lang}:{s.text}" for s in got.segments)
        want = " | ".join(f"{s['lang']}:{s['text']}" for s in rec["segments"])
        problems.append(f"segments\n      got  {segs}\n      want {want}")
    return Outcome(where, rec["text"], not problems, "\n    ".join(problems))


@pytest.mark.slow
def test_every_group_matches_upstream(upstream_fixtures: Path) -> None:
    groups: dict[tuple[str, str], list[Outcome]] = defaultdict(list)
    for where, rec in _golden_lines(upstream_fixtures):
        groups[(rec["version"], rec["lang"])].append(_check(where, rec))

    report, failing = [], []
    for (version, lang), outcomes in sorted(groups.items()):
        rate = sum(o.ok for o in outcomes) / len(outcomes)
        report.append(f"{version}/{lang}: {rate:.1%} of {len(outcomes)} lines")
        misses = [f"  {o.where} {o.text!r}\n    {o.detail}" for o in outcomes if not o.ok]
        if misses:
            report += misses
        if rate < MIN_RATE:
            failing.append(f"{version}/{lang} ({rate:.1%})")
    print("\n".join(["", "text goldens:", *report]))
    assert not failing, f"groups below {MIN_RATE:.0%}: {', '.join(failing)}\n" + "\n".join(report)
