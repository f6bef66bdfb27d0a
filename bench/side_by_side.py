"""Upstream GPT-SoVITS and this project on workload ``gsv-v2-cpu-anchor/1``, interleaved, as ratios.

Runs the shared harness ``shared/bench/upstream_gsv_bench.py`` (upstream imported unmodified from
``--upstream``, a GPT-SoVITS checkout) in rounds: each round times upstream, then this project at
each precision (``bench.gsv_backend:StudioBackend``), every one in fresh child processes per thread
count, so slow phases of the machine hit all of them alike. The harness marks a run clean when no
other process took CPU during it; only clean runs are pooled (median per stage over all rounds),
and the ratios are upstream's median over ours (above 1: we are faster). Prints a table and, last,
one JSON line with every pooled figure, the ratios and the per-round files.

    python -m bench.side_by_side --upstream <GPT-SoVITS clone> [--threads 2,1] [--rounds 3]
        [--runs 2] [--precisions fp32 fast] [--out-dir DIR] [--wait-idle 120]

Upstream needs its own imports in this interpreter (``torchmetrics``, ``x_transformers`` and the
like: ``make bench-deps``); its model weights are random, as ours (no download).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HARNESS = REPO.parent / "shared" / "bench" / "upstream_gsv_bench.py"
OURS = "bench.gsv_backend:StudioBackend"
STAGES = ("hubert_vq_s", "ar_decode_s", "sovits_decode_s", "total_s")


def _harness(path: Path):
    spec = importlib.util.spec_from_file_location("upstream_gsv_bench", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"{path}: not the side-by-side harness (shared/bench/upstream_gsv_bench.py)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


def _run(args: argparse.Namespace, variant: str, out: Path) -> None:
    """One harness invocation: upstream, or ours at ``variant`` precision; its JSON to ``out``."""
    cmd = [sys.executable, str(args.harness), "--threads", args.threads, "--runs", str(args.runs),
           "--max-runs", str(args.runs + 2), "--warmup", "1", "--wait-idle", str(args.wait_idle),
           "--json-out", str(out)]  # fmt: skip
    if variant != "upstream":
        backend_args = {"precision": variant, "models": str(args.models)}
        cmd += ["--backend", OURS, "--backend-args", json.dumps(backend_args)]
    env = dict(os.environ, UPSTREAM_GSV=str(args.upstream), PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1")
    print(f"[side-by-side] {variant} -> {out.name}", file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, env=env, cwd=REPO, stdout=sys.stderr)


def ratios(pooled: dict[str, dict], variants: list[str]) -> dict[str, dict]:
    """{threads: {variant: {stage: upstream median / variant median, "n_clean": (upstream, ours)}}}."""
    out: dict[str, dict] = {}
    for tkey, up in pooled.get("upstream", {}).items():
        for variant in variants:
            ours = pooled.get(variant, {}).get(tkey)
            if ours is None:
                continue
            row = {s: round(up[s]["median"] / ours[s]["median"], 3) for s in STAGES}
            row["n_clean"] = (up["n_clean_runs"], ours["n_clean_runs"])
            out.setdefault(tkey, {})[variant] = row
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--upstream", type=Path, default=Path(os.environ.get("UPSTREAM_GSV", "")), required=False)
    ap.add_argument("--harness", type=Path, default=HARNESS)
    ap.add_argument("--threads", default="2,1", help="thread counts, comma-separated (default %(default)s)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default %(default)s)")
    ap.add_argument(
        "--runs", type=int, default=2, help="timed runs per backend and round (default %(default)s)"
    )
    ap.add_argument("--precisions", nargs="+", default=["fp32", "fast"], choices=["fp32", "fast"])
    ap.add_argument("--models", type=Path, default=Path(tempfile.gettempdir()) / "studio-gsv-models")
    ap.add_argument("--out-dir", type=Path, help="where the per-round JSON files go (default: a temp dir)")
    ap.add_argument("--wait-idle", type=float, default=120, help="seconds to wait for an idle machine")
    args = ap.parse_args()
    if not (args.upstream / "GPT_SoVITS").is_dir():
        ap.error("--upstream (or UPSTREAM_GSV) must name a GPT-SoVITS checkout (a folder with GPT_SoVITS/)")
    if not args.harness.is_file():
        ap.error(f"the harness {args.harness} is missing: pass --harness shared/bench/upstream_gsv_bench.py")
    out_dir = args.out_dir or Path(tempfile.mkdtemp(prefix="side-by-side-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    variants = list(args.precisions)
    files: dict[str, list[Path]] = {"upstream": [], **{v: [] for v in variants}}
    for round_ in range(1, args.rounds + 1):
        for variant in files:
            path = out_dir / f"{variant}_{round_}.json"
            _run(args, variant, path)
            files[variant].append(path)
    harness = _harness(args.harness)
    pooled = {
        variant: {e["threads"]: e for e in harness.pool_files([str(p) for p in paths]).values()}
        for variant, paths in files.items()
    }
    table = ratios(pooled, variants)
    for tkey, rows in sorted(table.items()):
        for variant, row in rows.items():
            up, ours = pooled["upstream"][tkey], pooled[variant][tkey]
            cells = "  ".join(
                f"{s[:-2]} {up[s]['median']:.2f}/{ours[s]['median']:.2f}s = {row[s]:.2f}x" for s in STAGES
            )
            print(f"{tkey} {variant:5} {cells}  clean runs {row['n_clean'][0]}/{row['n_clean'][1]}")
    print(json.dumps({
        "bench": "side_by_side", "workload": "gsv-v2-cpu-anchor/1", "ratios_upstream_over_ours": table,
        "pooled": pooled, "files": {k: [str(p) for p in v] for k, v in files.items()},
    }, separators=(",", ":")))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
