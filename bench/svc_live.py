"""Realtime SVC on CPU: processing time per block of :class:`app.infer.svc.live.LiveConverter`.

Workload ``svc-live-cpu/1`` (defined here): the so-vits-svc 4.1 template model of
``bench.svc_cpu`` (44.1 kHz, hop 512, vec768l12, NSF-HiFiGAN 512 wide; random weights, seed 1234)
and a HuBERT-base-size content encoder (12 layers, 768 wide; random weights, seed 1234) saved
where the pipeline looks for ``content-vec-best``; both go through the real loading code. Input:
a sung-like melody (harmonic tones with vibrato, 220-330 Hz) at 44.1 kHz, fed block by block.
Per precision (fp32, fast) and block length: ``--warmup`` blocks, then the median and the worst of
``--blocks`` blocks' processing time (pitch with the default tracker, content encoder, synthesizer,
SOLA), the median CPU time of the process per block (all threads: what other load on the machine
disturbs least), the real-time factor (median wall time / block length), and the algorithmic
latency (block + cross-fade + search). ``smallest_realtime_block_s``: the shortest block whose median keeps up
(factor below 1) at ``--threads`` threads. Prints one JSON line.

    python -m bench.svc_live [--threads 2] [--blocks-s 0.25 0.5 0.75 1.0] [--context 1.0] [--blocks 6]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

WORKLOAD = "svc-live-cpu/1"
SEED = 1234


def build_encoder(pretrained: Path) -> None:
    """A HuBERT-base-size network with random weights as ``pretrained/content-vec-best``."""
    import torch
    from transformers import HubertConfig

    from app.models.encoders.content import _hubert_class

    folder = pretrained / "content-vec-best"
    if (folder / "pytorch_model.bin").is_file():
        return
    torch.manual_seed(SEED)
    _hubert_class()(HubertConfig(classifier_proj_size=256)).save_pretrained(folder, safe_serialization=False)


def song(sr: int, seconds: float) -> np.ndarray:
    """Notes of 0.5 s with vibrato and 8 harmonics, at ``sr``."""
    notes = [220.0, 247.0, 262.0, 294.0, 330.0, 294.0, 262.0, 247.0]
    t = np.arange(round(0.5 * sr)) / sr
    parts = []
    for i in range(int(np.ceil(seconds / 0.5))):
        freq = notes[i % len(notes)] * 2 ** (40 / 1200 * np.sin(2 * np.pi * 5.5 * t))
        phase = 2 * np.pi * np.cumsum(freq) / sr
        parts.append(sum(np.sin(k * phase) / k for k in range(1, 9)) * 0.3)
    return np.concatenate(parts).astype(np.float32)[: round(seconds * sr)]


def measure(pipeline, model: Path, precision: str, block_s: float, args) -> dict:
    from app.infer.svc.live import LiveConverter, LiveOptions

    options = LiveOptions(
        model=model, precision=precision, block_seconds=block_s, context_seconds=args.context
    )
    live = LiveConverter(pipeline, options)
    g = live.geometry
    wav = song(g.sample_rate, (args.warmup + args.blocks) * g.block / g.sample_rate)
    times, cpu = [], []
    for i in range(args.warmup + args.blocks):
        t0, c0 = time.perf_counter(), time.process_time()
        live.process_block(wav[i * g.block : (i + 1) * g.block])
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    block_seconds = g.block / g.sample_rate
    median = statistics.median(times)
    return {
        "precision": precision, "block_s": round(block_seconds, 3), "window_s": round(g.window / g.sample_rate, 3),
        "latency_s": round(live.latency_seconds, 3), "median_s": round(median, 3), "max_s": round(max(times), 3),
        "cpu_s": round(statistics.median(cpu), 3), "rtf": round(median / block_seconds, 2),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--blocks-s", type=float, nargs="+", default=[0.25, 0.5, 0.75, 1.0])
    parser.add_argument("--context", type=float, default=1.0, help="lookback seconds per block")
    parser.add_argument("--blocks", type=int, default=6, help="timed blocks per setting")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "fast"])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import torch

    from app.infer.precision import native_bf16
    from app.infer.svc.pipeline import SVCPipeline
    from bench.svc_cpu import build_model

    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory(prefix="svc-live-bench-") as tmp:
        model = build_model(Path(tmp))
        build_encoder(Path(tmp) / "pretrained")
        pipeline = SVCPipeline(Path(tmp) / "pretrained", device="cpu")
        for precision in args.precisions:
            for block_s in args.blocks_s:
                rows.append(measure(pipeline, model, precision, block_s, args))
    smallest = {
        p: min((r["block_s"] for r in rows if r["precision"] == p and r["rtf"] < 1.0), default=None)
        for p in args.precisions
    }
    print(json.dumps({
        "workload": WORKLOAD, "threads": args.threads, "context_s": args.context, "f0": "pm",
        "native_bf16": native_bf16(torch.device("cpu")), "results": rows, "smallest_realtime_block_s": smallest,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
