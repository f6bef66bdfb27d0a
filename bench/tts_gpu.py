"""GPU benchmark of the whole TTS pipeline: the workloads of ``bench.tts_cpu`` on a CUDA device.

The same full-size random models (seed 1234) and inputs as ``bench.tts_cpu`` (workloads
``gsv-v2-cpu-anchor/1``, ``gsv-v2proplus-cpu/1``, ``gsv-v4-cpu/1`` of shared/bench/WORKLOAD.md),
loaded through ``TTSPipeline.load`` on ``--device`` at each precision (``fp32``; ``fast`` = bf16
GPT, HuBERT and decoder on CUDA). Every stage is timed between ``torch.cuda.synchronize()`` calls
(median of ``--runs`` after one warm-up):

- ``hubert_vq``, ``ar_decode`` (exactly 250 tokens: tokens/s), ``sovits_decode`` (10 s of audio), the
  speaker embedding for v2ProPlus; their sum and the real-time factor (RTF = total / 10 s);
- ``first_audio_s``: the same request streamed (reference encoding included, token chunks for VITS
  versions) until its first audio chunk is on the host;
- the 10-segment long text, one by one and batched (all rows in one GPT loop: where a GPU pays);
- memory: ``torch.cuda.max_memory_allocated`` / ``max_memory_reserved`` over the workload (peak RSS
  on CPU), and the device's name, capability, torch and CUDA versions.

Each (workload, precision) runs in a fresh process so the memory peaks are its own. ``--device cpu``
runs the same code on the CPU (a check that the script works where no GPU is; use
``bench.tts_cpu`` for CPU figures). Prints one JSON line.

    python -m bench.tts_gpu [--device cuda] [--workloads v2 v2ProPlus v4] [--precisions fp32 fast]
        [--runs 5] [--long-runs 1] [--models DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.tts_cpu import (
    AUDIO_SECONDS,
    CFM_VERSIONS,
    NEW_TOKENS,
    REPO_ROOT,
    SEED,
    WORKLOADS,
    _cfm_prompt,
    _long_text,
    build_models,
    sovits_file,
)


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, runs: int, device) -> tuple[float, list[float], object]:
    """Median wall time of ``fn`` over ``runs`` after a warm-up, the device drained before and after."""
    out = fn()
    times = []
    for _ in range(runs):
        _sync(device)
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), [round(t, 4) for t in times], out


def _device_info(device) -> dict:
    import torch

    info = {"device": str(device), "torch": torch.__version__}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info |= {
            "name": props.name,
            "capability": f"{props.major}.{props.minor}",
            "memory_gib": round(props.total_memory / (1 << 30), 1),
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
        }
    else:
        info["threads"] = torch.get_num_threads()
    return info


def _memory(device) -> dict:
    import torch

    if device.type == "cuda":
        return {
            "max_allocated_mb": round(torch.cuda.max_memory_allocated(device) / (1 << 20), 1),
            "max_reserved_mb": round(torch.cuda.max_memory_reserved(device) / (1 << 20), 1),
        }
    return {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def worker(folder: Path, device_name: str, precision: str, runs: int, long_runs: int, version: str) -> dict:
    """One (workload, precision) in this fresh process."""
    import torch

    from app.infer import PipelineSpec, TTSPipeline
    from app.infer.inputs import SynthesisPlan, TextInput
    from app.infer.pipeline import DEFAULT_CFM_STEPS
    from app.models.gpt.sampling import SamplingOptions
    from bench.sovits_cpu import workload_inputs
    from bench.tts_cpu import sv_file

    device = torch.device(device_name)
    cfm = version in CFM_VERSIONS
    inputs = workload_inputs()
    spec = PipelineSpec(
        folder / "gpt.ckpt", sovits_file(folder, version), folder / "chinese-hubert-base", folder / "none",
        device_name, precision, sv_path=sv_file(folder),
    )  # fmt: skip
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    p = TTSPipeline.load(spec)
    _sync(device)
    load_s = time.perf_counter() - t0
    ref_phones = tuple(int(x) for x in inputs["ref_phones"])
    target = tuple(int(x) for x in inputs["target_phones"])
    zeros = torch.zeros(1024, len(ref_phones) + len(target))
    options = SamplingOptions(
        top_k=15, top_p=1.0, temperature=1.0, repetition_penalty=1.35, max_new_tokens=NEW_TOKENS,
        suppress_eos=True, seed=SEED,
    )  # fmt: skip
    steps = DEFAULT_CFM_STEPS[version] if cfm else 32
    prompt_in = TextInput("reference", ref_phones, torch.zeros(1024, len(ref_phones)))

    s1, s1_runs, prompt = _timed(lambda: p.prompt_tokens(inputs["wav16"]), runs, device)

    def ar():
        (chunk,) = list(p.generate_tokens([ref_phones + target], [zeros], prompt, options))
        return chunk.tokens[0]

    s2, s2_runs, tokens = _timed(ar, runs, device)
    assert tokens.numel() == NEW_TOKENS, tokens.shape
    pro = p.speaker is not None
    s_sv, embedding = 0.0, None
    if pro:
        wav32 = torch.from_numpy(inputs["wav32"])[None]
        s_sv, _, embedding = _timed(lambda: p.speaker.embed_32k(wav32), runs, device)

    def timbre_of():
        if cfm:
            return _cfm_prompt(p, inputs["wav32"], prompt, prompt_in)
        return p.timbre([p.spectrogram(inputs["wav32"])], [embedding] if pro else None)

    def sovits():
        gen = torch.Generator(device=device).manual_seed(SEED)
        return p.decode_tokens(
            tokens, target, timbre_of(), noise_scale=0.5, generator=gen, sample_steps=steps
        )

    s3, s3_runs, audio = _timed(sovits, runs, device)
    assert audio.shape == (round(AUDIO_SECONDS * p.sample_rate),), audio.shape
    total = s1 + s2 + s3 + s_sv
    segment = TextInput("target", target, torch.zeros(1024, len(target)))

    def plan_of(prompt_tokens, timbre, noise=0.5, segments=(segment,), batch=1, sampling=options):
        return SynthesisPlan(
            segments=segments, prompt=prompt_in, prompt_tokens=prompt_tokens, timbre=timbre,
            sampling=sampling, seed=SEED, pause_seconds=0.0, batch_size=batch, noise_scale=noise,
            sample_steps=steps,
        )  # fmt: skip

    def first_audio() -> float:
        """Request (reference not cached) to its first audio chunk on the host."""
        _sync(device)
        start = time.perf_counter()
        pt = p.prompt_tokens(inputs["wav16"])
        if cfm:
            timbre = _cfm_prompt(p, inputs["wav32"], pt, prompt_in)
        else:
            spec_, sv = p.timbre_inputs(inputs["wav32"])
            timbre = p.timbre([spec_], [sv])
        for chunk in p.run(plan_of(pt, timbre), token_chunks=not cfm):
            if len(chunk.audio):
                return time.perf_counter() - start
        raise AssertionError("the stream gave no audio")

    first_audio()  # warm-up
    firsts = [first_audio() for _ in range(runs)]
    out = {
        "workload": WORKLOADS[version],
        "precision": precision,
        "plan": {"gpt": p.precision.gpt, "decoder": str(p.precision.decoder).removeprefix("torch.")},
        "load_s": round(load_s, 2),
        "stage1_hubert_vq_s": round(s1, 4),
        "stage2_ar_decode_s": round(s2, 4),
        "stage3_sovits_decode_s": round(s3, 4),
        "total_s": round(total, 4),
        "runs_s": {"hubert_vq": s1_runs, "ar_decode": s2_runs, "sovits_decode": s3_runs},
        "ar_tokens_per_s": round(NEW_TOKENS / s2, 1),
        "rtf": round(total / AUDIO_SECONDS, 4),
        "first_audio_s": round(statistics.median(firsts), 4),
        "first_audio_runs_s": [round(t, 4) for t in firsts],
        "memory": _memory(device),
    }
    if pro:
        out["stage_sv_embedding_s"] = round(s_sv, 4)
    out["long_text"] = _long_text(p, plan_of, timbre_of(), prompt, long_runs)
    out["memory_with_long_text"] = _memory(device)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="torch device (cpu checks the script)")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "fast"], choices=["fp32", "fast"])
    parser.add_argument("--workloads", nargs="+", default=["v2", "v2ProPlus", "v4"], choices=list(WORKLOADS))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--long-runs", type=int, default=1, help="runs of the 10-segment case (0 leaves it out)"
    )
    parser.add_argument("--models", type=Path, help="folder of models built before (default: a temp dir)")
    parser.add_argument("--worker", nargs=2, metavar=("WORKLOAD", "PRECISION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        import torch

        version, precision = args.worker
        result = worker(args.models, args.device, precision, args.runs, args.long_runs, version)
        print(json.dumps({**result, "device_info": _device_info(torch.device(args.device))}))
        return
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise SystemExit(
                f"--device {args.device}: this torch sees no CUDA device (use --device cpu to check)"
            )
    with tempfile.TemporaryDirectory(prefix="tts-gpu-bench-") as tmp:
        folder = args.models or Path(tmp)
        for version in args.workloads:
            build_models(folder, version)
        results = []
        for version in args.workloads:
            for precision in args.precisions:
                cmd = [sys.executable, "-m", "bench.tts_gpu", "--worker", version, precision,
                       "--device", args.device, "--models", str(folder), "--runs", str(args.runs),
                       "--long-runs", str(args.long_runs)]  # fmt: skip
                proc = subprocess.run(
                    cmd, cwd=REPO_ROOT, env=dict(os.environ), capture_output=True, text=True
                )
                if proc.returncode != 0:
                    raise SystemExit(f"worker {version} {precision} failed:\n{proc.stderr[-3000:]}")
                results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(
        json.dumps(
            {"bench": "tts_gpu", "workloads": [WORKLOADS[v] for v in args.workloads], "results": results}
        )
    )


if __name__ == "__main__":
    main()
