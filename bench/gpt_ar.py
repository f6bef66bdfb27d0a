"""CPU benchmark of stage 2 (``ar_decode``) of workload ``gsv-v2-cpu-anchor/1`` (shared/bench/WORKLOAD.md).

Full-size v2 GPT (24 layers, d 512, 16 heads, FFN 2048), random weights (seed 1234), CPU, no
torch.compile. Phones = the workload's 60 reference + 80 target phones, BERT features zeros,
prompt = 139 semantic ids (in the full workload they come from stage 1; here drawn with seed 1234),
so the prefill covers 279 positions. Then 250 tokens are generated (upstream counts the prefill as
step 0: one prefill + 249 KV-cached steps), EOS forced off, sampling as the workload says:
repetition penalty 1.35 over prompt + output, top_k 15, top_p 1, temperature 1 (seeded).

Per precision (``reference`` = plain ``F.linear`` fp32, ``fp32`` = packed oneDNN fp32 (default),
``bf16``, ``int8`` weight-only, ``int8_dynamic``; see app/models/gpt/packed.py) the decode wall time (prefill included) is taken ``--runs`` times after one
warm-up; tokens/s = 250 / time. Each thread count runs in a fresh process with OMP/MKL threads set.
The 2-thread process also measures how far each precision is from ``reference``: the free-running
sampled tokens (same seed) and the logits along the reference's tokens. Prints one JSON line.

    python -m bench.gpt_ar [--threads 2 1] [--runs 3] [--precisions reference fp32 bf16 int8 int8_dynamic]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

WORKLOAD = "gsv-v2-cpu-anchor/1"
SEED = 1234
PROMPT_TOKENS = 139
NEW_TOKENS = 250
REPO_ROOT = Path(__file__).resolve().parent.parent


def _inputs():
    import torch

    rng = np.random.default_rng(SEED)  # WORKLOAD.md draw order: ref phones, then target phones
    phones = np.concatenate([rng.integers(1, 732, 60), rng.integers(1, 732, 80)])
    prompt = torch.randint(0, 1024, (1, PROMPT_TOKENS), generator=torch.Generator().manual_seed(SEED))
    return torch.from_numpy(phones).long()[None], torch.zeros(1, 1024, len(phones)), prompt


def _options():
    from app.models.gpt.sampling import SamplingOptions

    return SamplingOptions(
        top_k=15,
        top_p=1.0,
        temperature=1.0,
        repetition_penalty=1.35,
        max_new_tokens=NEW_TOKENS,
        suppress_eos=True,
        seed=SEED,
    )


def _teacher_forced_logits(model, cache, phones, bert, prompt, tokens):
    import torch

    with torch.inference_mode():
        rows = [model.prefill(cache, phones, bert, prompt)]
        rows += [model.step(cache, t.view(1)) for t in tokens[:-1]]
    return torch.cat(rows)


def worker(threads: int, runs: int, precisions: list[str], deviation: bool) -> dict:
    """One thread count, in this (fresh) process."""
    import torch

    from app.models.gpt.config import GPTConfig
    from app.models.gpt.engine import decode
    from app.models.gpt.model import GPT

    torch.set_num_threads(threads)
    torch.manual_seed(SEED)
    model = GPT(GPTConfig()).eval()
    phones, bert, prompt = _inputs()
    width = phones.shape[1] + PROMPT_TOKENS + NEW_TOKENS
    options = _options()
    timings: dict[str, dict] = {}
    tokens: dict[str, torch.Tensor] = {}
    for precision in precisions:
        model.set_precision(precision)
        cache = model.new_cache(1, width)  # per precision: the native attention keeps bf16 keys
        times, cpu_times = [], []
        for i in range(runs + 1):
            start, cpu_start = time.perf_counter(), time.process_time()
            result = decode(model, phones, bert, prompt, options, cache=cache)
            if i:  # the first run is the warm-up (packing, allocator)
                times.append(time.perf_counter() - start)
                cpu_times.append(time.process_time() - cpu_start)
        tokens[precision] = result.tokens[0]
        assert result.tokens[0].numel() == NEW_TOKENS
        with torch.inference_mode():
            start = time.perf_counter()
            model.prefill(cache, phones, bert, prompt)
            prefill_s = time.perf_counter() - start
        timings[precision] = {
            "tokens_per_s_median": round(NEW_TOKENS / statistics.median(times), 1),
            "tokens_per_s_best": round(NEW_TOKENS / min(times), 1),
            "decode_s_runs": [round(t, 3) for t in times],
            # CPU seconds of this process per decode: with 1 thread, what the wall time would be
            # on an idle machine (robust to other processes sharing the cores); with 2 threads it
            # also counts OpenMP spin-waiting
            "decode_cpu_s_runs": [round(t, 3) for t in cpu_times],
            "prefill_s": round(prefill_s, 3),
        }
    out = {
        "threads": threads,
        "precisions": timings,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if deviation and "reference" in tokens:
        out["deviation_from_reference"] = _deviation(model, width, phones, bert, prompt, tokens, precisions)
    return out


def _deviation(model, width, phones, bert, prompt, tokens, precisions) -> dict:
    ref_tokens = tokens["reference"]
    model.set_precision("reference")
    ref = _teacher_forced_logits(model, model.new_cache(1, width), phones, bert, prompt, ref_tokens)
    scale = ref.std().item()
    report = {}
    for precision in precisions:
        if precision == "reference":
            continue
        model.set_precision(precision)
        got = _teacher_forced_logits(model, model.new_cache(1, width), phones, bert, prompt, ref_tokens)
        same = tokens[precision] == ref_tokens
        diverged = (~same).nonzero()
        err = (got - ref).abs()
        report[precision] = {
            # free-running sampled tokens (same seed) equal to the reference path
            "sampled_token_agreement": round(same.float().mean().item(), 4),
            "first_divergent_token": int(diverged[0]) if len(diverged) else None,
            # along the reference's tokens: logit error and how often the argmax agrees
            "logits_max_abs_err": float(f"{err.max().item():.3g}"),
            "logits_mean_abs_err": float(f"{err.mean().item():.3g}"),
            "logits_max_err_over_std": float(f"{err.max().item() / scale:.3g}"),
            "argmax_agreement": round((got.argmax(-1) == ref.argmax(-1)).float().mean().item(), 4),
            "top15_set_agreement": round(_topk_overlap(got, ref, 15), 4),
        }
    return report


def _topk_overlap(a, b, k: int) -> float:
    ia = a.topk(k, dim=-1).indices.sort(dim=-1).values
    ib = b.topk(k, dim=-1).indices.sort(dim=-1).values
    return (ia[:, :, None] == ib[:, None, :]).any(-1).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--precisions", nargs="+", default=["reference", "fp32", "bf16", "int8", "int8_dynamic"]
    )
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--deviation", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(worker(args.worker, args.runs, args.precisions, args.deviation)))
        return
    results = []
    for i, n in enumerate(args.threads):
        env = {**os.environ, "OMP_NUM_THREADS": str(n), "MKL_NUM_THREADS": str(n)}
        cmd = [sys.executable, "-m", "bench.gpt_ar", "--worker", str(n), "--runs", str(args.runs)]
        cmd += ["--precisions", *args.precisions] + (["--deviation"] if i == 0 else [])
        out = subprocess.run(cmd, env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    load = os.getloadavg()[0]  # other processes on the machine distort wall times
    print(
        json.dumps(
            {
                "workload": WORKLOAD,
                "stage": "ar_decode",
                "model": "gpt v2 full-size, random weights, CPU",
                "tokens": NEW_TOKENS,
                "prefill_positions": 279,
                "load_average_1min_at_end": round(load, 2),
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
