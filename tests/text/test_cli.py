"""``python -m app.text``: the real entry point, run as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.text", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        input=stdin,
        timeout=120,
    )


def test_prints_normalised_text_phones_and_ids() -> None:
    out = run("今天是2005年12月24日。", "--lang", "all_zh", "--version", "v1")
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(":", 1) for line in out.stdout.splitlines() if ":" in line)
    assert lines["norm"].strip() == "今天是二零零五年十二月二十四日."
    assert lines["phones"].split()[:4] == ["j", "in1", "t", "ian1"]
    assert lines["ids"].split()[:4] == ["221", "196", "252", "176"]
    assert len(lines["word2ph"].split()) == len(lines["norm"].strip())


def test_json_split_and_stdin() -> None:
    out = run("-", "--lang", "zh", "--split", "cut5", "--json", stdin="你好，世界。再见，朋友。")
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["text"] for r in records] == ["你好，世界。", "再见，朋友。"]
    assert all(len(r["phones"]) == len(r["phone_ids"]) for r in records)


def test_bad_input_exits_2_with_a_message() -> None:
    out = run("bonjour", "--lang", "fr")
    assert out.returncode == 2
    assert "unknown language mode 'fr'" in out.stderr
    assert run("  ").returncode == 2
