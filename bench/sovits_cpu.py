"""CPU benchmark of the SoVITS side of workload ``gsv-v2-cpu-anchor/1`` (shared/bench/WORKLOAD.md).

Stage 1 ``hubert_vq``: HuBERT-base (default ``HubertConfig``) on 5 s of 16 kHz reference + 9,600
zeros -> SSL projection -> codebook -> 139 prompt tokens. Stage 3 ``sovits_decode``: reference
spectrogram of the 5 s 32 kHz clip, then the full-size v2 decode of 250 tokens with the 80 target
phones, noise 0.5 -> 320,000 samples. Random weights (seed 1234), float32, no torch.compile.

Each thread count runs in a fresh process with OMP/MKL threads set; each stage reports the median
of 3 runs after 1 warm-up. Prints one JSON line.

    python bench/sovits_cpu.py [--threads 2 1] [--runs 3]
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
REF_SECONDS = 5.0
DECODE_TOKENS = 250
SEED = 1234
REPO_ROOT = Path(__file__).resolve().parent.parent


def workload_inputs() -> dict[str, np.ndarray]:
    """The deterministic inputs of WORKLOAD.md, drawn in its order."""
    rng = np.random.default_rng(SEED)
    ref_phones = rng.integers(1, 732, 60)
    target_phones = rng.integers(1, 732, 80)
    noise16 = rng.standard_normal(int(16000 * REF_SECONDS))
    noise32 = rng.standard_normal(int(32000 * REF_SECONDS))

    def signal(sr: int, noise: np.ndarray) -> np.ndarray:
        t = np.arange(int(sr * REF_SECONDS)) / sr
        phi = 2 * np.pi * (120 * t - 30 / (2 * np.pi * 0.7) * np.cos(2 * np.pi * 0.7 * t))
        env = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)
        harmonics = sum(np.sin(k * phi) / k for k in range(1, 9))
        return (env * 0.1 * harmonics + 0.01 * noise).astype(np.float32)

    return {
        "ref_phones": ref_phones,
        "target_phones": target_phones,
        "wav16": signal(16000, noise16),
        "wav32": signal(32000, noise32),
    }


def _median_time(fn, runs: int) -> tuple[float, object]:
    out = fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def worker(threads: int, runs: int) -> dict:
    """One thread count, in this (fresh) process."""
    import torch
    from transformers import HubertConfig, HubertModel

    from app.models.sovits.config import preset
    from app.models.sovits.model import SoVITS
    from app.models.sovits.reference import reference_spectrogram

    torch.set_num_threads(threads)
    inputs = workload_inputs()
    torch.manual_seed(SEED)
    hubert = HubertModel(HubertConfig()).eval()
    model = SoVITS(preset("v2"))
    with torch.no_grad():
        # The codebook is zero until trained; give it values so codes are meaningful.
        model.quantizer.vq.layers[0]._codebook.embed.normal_()
    model.prepare_for_inference()

    wav16 = torch.from_numpy(np.concatenate([inputs["wav16"], np.zeros(9600, np.float32)])).unsqueeze(0)

    def stage1() -> torch.Tensor:
        with torch.inference_mode():
            ssl = hubert(wav16).last_hidden_state.transpose(1, 2)
        return model.extract_codes(ssl)

    codes_time, prompt = _median_time(stage1, runs)
    assert isinstance(prompt, torch.Tensor) and prompt.shape[-1] == 139, prompt.shape

    codes = torch.randint(0, 1024, (1, 1, DECODE_TOKENS), generator=torch.Generator().manual_seed(SEED))
    phones = torch.from_numpy(inputs["target_phones"]).long().unsqueeze(0)
    wav32 = torch.from_numpy(inputs["wav32"])

    def stage3() -> torch.Tensor:
        spec = reference_spectrogram(wav32)
        return model.decode(
            codes, phones, spec, noise_scale=0.5, generator=torch.Generator().manual_seed(SEED)
        )

    decode_time, audio = _median_time(stage3, runs)
    assert isinstance(audio, torch.Tensor) and audio.shape[-1] == 320_000, audio.shape
    return {
        "threads": threads,
        "stage1_hubert_vq_s": round(codes_time, 3),
        "stage3_sovits_decode_s": round(decode_time, 3),
        "prompt_tokens": int(prompt.shape[-1]),
        "audio_samples": int(audio.shape[-1]),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(worker(args.worker, args.runs)))
        return
    results = []
    for n in args.threads:
        env = {**os.environ, "OMP_NUM_THREADS": str(n), "MKL_NUM_THREADS": str(n)}
        cmd = [sys.executable, "-m", "bench.sovits_cpu", "--worker", str(n), "--runs", str(args.runs)]
        out = subprocess.run(cmd, env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(
        json.dumps(
            {
                "workload": WORKLOAD,
                "model": "sovits v2 full-size, random weights, fp32 CPU",
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
