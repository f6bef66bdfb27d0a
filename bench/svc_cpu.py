"""The so-vits-svc 4.1 synthesizer on CPU, ours (fp32, fast) against so-vits-svc itself, interleaved.

Workload ``svc-4.1-cpu/1`` (defined here): the 4.1 template model (``configs_template/
config_template.json``: 44.1 kHz, hop 512, vec768l12 features of 768 channels, 6 prior layers,
NSF-HiFiGAN 512 channels upsampling 8-8-2-2-2, automatic f0 prediction built but off), random
weights (seed 1234) written once as a ``G_0.pth`` + ``config.json`` that both sides load through
their own loaders (ours: the SVC pipeline's ``load_model``, so-vits-svc: ``utils.load_checkpoint``
as ``inference/infer_tool.py`` does). Inputs (numpy ``default_rng(1234)``): 10 s = 861 frames of
content features N(0, 1), f0 a 220 Hz tone with a 0.5 Hz, +-1 semitone vibrato, every frame voiced,
speaker 0, noise scale 0.4, seed 52468 (4.1's defaults). Timed: one ``infer`` call (prior encoder,
flow, NSF-HiFiGAN decoder: what the 4.1 synthesizer does per slice), median of ``--runs`` after a
warm-up, each variant in a fresh process per thread count, the variants interleaved in ``--rounds``
so a slow phase of the machine hits all of them. Ratios are so-vits-svc's median over ours (above 1:
ours is faster), by wall time and by the call's CPU time. Also: our fp32 audio against so-vits-svc's (same weights, same seed), and fast's
SNR against our fp32. The content encoder and f0 tracker are not timed: so-vits-svc's need fairseq
and its pretrained files, which do not install here. Prints one JSON line.

    python -m bench.svc_cpu [--upstream <so-vits-svc clone>] [--threads 2 1] [--rounds 2] [--runs 3]

so-vits-svc is imported unmodified from ``--upstream`` (its imports need ``faiss-cpu``, ``librosa``,
``scikit-learn``, ``matplotlib``: ``make bench-deps``); without it only ours is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WORKLOAD = "svc-4.1-cpu/1"
SEED = 1234
SVC_SEED = 52468  # 4.1's fixed inference seed
NOISE_SCALE = 0.4  # 4.1's default noice_scale
SECONDS = 10.0
REPO_ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("upstream", "fp32", "fast")


def build_model(folder: Path) -> Path:
    """``G_0.pth`` + ``config.json`` of the 4.1 template with random weights (kept if there)."""
    import torch

    from app.models.svc.config import SvcConfig
    from app.models.svc.synthesizer import SvcSynthesizer
    from app.models.upstream.svc.checkpoint import write_svc

    path = folder / "G_0.pth"
    if not path.is_file():
        config = SvcConfig()
        torch.manual_seed(SEED)
        write_svc(path, SvcSynthesizer(config.synthesizer()).eval(), config)
    return path


def inputs(hop: int, sr: int) -> dict[str, np.ndarray]:
    """The workload's content features (1, 768, T), f0 (1, T) Hz and uv (1, T)."""
    frames = round(SECONDS * sr / hop)
    rng = np.random.default_rng(SEED)
    c = rng.standard_normal((1, 768, frames)).astype(np.float32)
    t = np.arange(frames) * hop / sr
    f0 = (220.0 * 2 ** (np.sin(2 * np.pi * 0.5 * t) / 12)).astype(np.float32)[None]
    return {"c": c, "f0": f0, "uv": np.ones_like(f0)}


def _median_runs(fn, runs: int) -> tuple[float, list[tuple[float, float]], object]:
    """Median wall time, and [(wall, process CPU time)] per run: CPU time is what other load on the
    machine disturbs least (at 1 thread it is the work itself)."""
    out = fn()  # warm-up
    times = []
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        times.append((round(time.perf_counter() - t0, 3), round(time.process_time() - c0, 3)))
    return statistics.median(t for t, _ in times), times, out


def _ours(model_path: Path, precision: str, runs: int) -> tuple[float, list[float], np.ndarray, dict]:
    import torch

    from app.infer.precision import plan_for
    from app.infer.svc.pipeline import load_model

    plan = plan_for(precision, torch.device("cpu"))
    ckpt = load_model(model_path, None, "cpu", plan.decoder, plan.decoder_int8)
    x = {
        k: torch.from_numpy(v)
        for k, v in inputs(ckpt.model.hop_length, ckpt.config.data.sampling_rate).items()
    }

    def infer():
        with torch.inference_mode():
            out = ckpt.model.infer(x["c"], x["f0"], x["uv"], sid=0, noise_scale=NOISE_SCALE, seed=SVC_SEED)
        return out.audio[0, 0].numpy()

    median, times, audio = _median_runs(infer, runs)
    return median, times, audio, {"decoder": plan.decoder_label}


def _upstream(model_path: Path, runs: int) -> tuple[float, list[float], np.ndarray, dict]:
    """so-vits-svc's own loading and ``SynthesizerTrn.infer`` (importable through PYTHONPATH)."""
    import torch
    import utils  # so-vits-svc's
    from models import SynthesizerTrn

    hps = utils.get_hparams_from_file(str(model_path.parent / "config.json"))
    net = SynthesizerTrn(
        hps.data.filter_length // 2 + 1, hps.train.segment_size // hps.data.hop_length, **hps.model
    )
    utils.load_checkpoint(str(model_path), net, None)
    net.eval()
    x = {k: torch.from_numpy(v) for k, v in inputs(hps.data.hop_length, hps.data.sampling_rate).items()}
    sid = torch.LongTensor([0]).unsqueeze(0)

    def infer():
        with torch.no_grad():  # as infer_tool.Svc.infer
            audio, _ = net.infer(
                x["c"], f0=x["f0"], g=sid, uv=x["uv"], predict_f0=False, noice_scale=NOISE_SCALE
            )
        return audio[0, 0].float().numpy()

    median, times, audio = _median_runs(infer, runs)
    return median, times, audio, {}


def worker(model_path: Path, variant: str, threads: int, runs: int, audio_out: Path) -> dict:
    import torch

    torch.set_num_threads(threads)
    cpu0 = time.process_time()
    if variant == "upstream":
        median, times, audio, extra = _upstream(model_path, runs)
    else:
        median, times, audio, extra = _ours(model_path, variant, runs)
    np.save(audio_out, audio)
    return {"variant": variant, "threads": threads, "infer_s": round(median, 3), "runs_s": times,
            "cpu_s": round(time.process_time() - cpu0, 2), "samples": len(audio), **extra}  # fmt: skip


def _snr(ref: np.ndarray, other: np.ndarray) -> float:
    err = float(np.sum((ref.astype(np.float64) - other) ** 2))
    return (
        float("inf")
        if err == 0
        else round(10 * np.log10(float(np.sum(ref.astype(np.float64) ** 2)) / err), 2)
    )


def _child(args, model: Path, variant: str, threads: int, audio: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    if variant == "upstream":
        env["PYTHONPATH"] = os.pathsep.join([str(args.upstream), str(REPO_ROOT)])
    cmd = [sys.executable, "-m", "bench.svc_cpu", "--worker", variant, str(threads), "--model", str(model),
           "--runs", str(args.runs), "--audio-out", str(audio)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, cwd=REPO_ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{variant} at {threads} threads failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", type=Path, help="so-vits-svc checkout (left out: ours only)")
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--worker", nargs=2, metavar=("VARIANT", "THREADS"), help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--audio-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        variant, threads = args.worker[0], int(args.worker[1])
        print(json.dumps(worker(args.model, variant, threads, args.runs, args.audio_out)))
        return
    if args.upstream is not None and not (args.upstream / "models.py").is_file():
        raise SystemExit(f"--upstream {args.upstream}: no models.py there; give a so-vits-svc checkout")
    variants = VARIANTS if args.upstream is not None else VARIANTS[1:]
    with tempfile.TemporaryDirectory(prefix="svc-bench-") as tmp:
        model = build_model(Path(tmp))
        runs: dict[tuple[int, str], list[dict]] = {}
        audio: dict[str, np.ndarray] = {}
        for _ in range(args.rounds):
            for threads in args.threads:
                for variant in variants:
                    out = Path(tmp) / f"{variant}-{threads}.npy"
                    runs.setdefault((threads, variant), []).append(_child(args, model, variant, threads, out))
                    audio[variant] = np.load(out)
    results = []
    for threads in args.threads:
        row: dict = {"threads": threads}
        for variant in variants:
            pairs = [pair for r in runs[(threads, variant)] for pair in r["runs_s"]]
            row[variant] = {
                "infer_s": round(statistics.median(t for t, _ in pairs), 3),
                "infer_cpu_s": round(statistics.median(c for _, c in pairs), 3),
                "runs_wall_cpu_s": pairs,
            }
            if "decoder" in runs[(threads, variant)][-1]:  # ours: what the decoder computed in
                row[variant]["decoder"] = runs[(threads, variant)][-1]["decoder"]
        for variant in ("fp32", "fast"):
            if "upstream" in row:
                up, ours = row["upstream"], row[variant]
                ours["ratio_vs_upstream"] = round(up["infer_s"] / ours["infer_s"], 2)
                ours["cpu_ratio_vs_upstream"] = round(up["infer_cpu_s"] / ours["infer_cpu_s"], 2)
        results.append(row)
    quality = {"fast_snr_db_vs_fp32": _snr(audio["fp32"], audio["fast"])}
    if "upstream" in audio:
        quality["fp32_max_abs_err_vs_upstream"] = float(
            f"{np.abs(audio['fp32'] - audio['upstream']).max():.3g}"
        )
    print(json.dumps({"bench": "svc_cpu", "workload": WORKLOAD, "seconds_of_audio": SECONDS, "rounds": args.rounds,
                      "runs": args.runs, "results": results, "quality": quality,
                      "load_average_1min_at_end": round(os.getloadavg()[0], 2)}))  # fmt: skip


if __name__ == "__main__":
    main()
