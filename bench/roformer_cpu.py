"""CPU cost of the published BS-RoFormer's architecture (viperx, 12 layers, dim 512, 62 bands) per second of audio.

    python -m bench.roformer_cpu [--seconds 1] [--threads 1]

No model hub here: the network is built with random weights from the published config's values
(model_bs_roformer_ep_317_sdr_12.9755.yaml), which costs what the trained one costs. One forward
pass over ``--seconds`` of 44.1 kHz stereo; the separator runs each sample through
``num_overlap`` = 2 chunks, so its real-time factor is twice the network's.

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from app.models.roformer import Roformer, RoformerConfig

# The published config's model section (ZFTurbo's configs/viperx/model_bs_roformer_ep_317_sdr_12.9755.yaml).
VIPERX = RoformerConfig(
    kind="bs_roformer",
    dim=512,
    depth=12,
    stereo=True,
    time_transformer_depth=1,
    freq_transformer_depth=1,
    freqs_per_bands=(2,) * 24 + (4,) * 12 + (12,) * 8 + (24,) * 8 + (48,) * 8 + (128, 129),
    stft_n_fft=2048,
    stft_hop_length=441,
    stft_win_length=2048,
    mask_estimator_depth=2,
)
NUM_OVERLAP = 2  # the published config's inference.num_overlap


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=1.0, help="audio per forward pass")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = Roformer(VIPERX).eval()
    params = sum(p.numel() for p in model.parameters())
    mix = 0.1 * torch.randn(1, 2, int(44100 * args.seconds))
    with torch.inference_mode():
        start = time.perf_counter()
        model(mix)
        seconds = time.perf_counter() - start
    network_rtf = seconds / args.seconds
    print(json.dumps({"bench": "roformer_cpu", "seconds": args.seconds, "threads": args.threads,
                      "cpu": platform.processor() or platform.machine(), "parameters_m": round(params / 1e6, 1),
                      "network_rtf": round(network_rtf, 2), "separator_rtf": round(NUM_OVERLAP * network_rtf, 2)}))  # fmt: skip


if __name__ == "__main__":
    main()
