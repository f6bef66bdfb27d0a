"""CPU cost of UVR's VR-architecture models at their published widths (random weights).

    python -m bench.vr_cpu [--seconds 10] [--threads 2]

No model hub here, so each network is built at the published width (HP5: v5 ASPP net, 31.7 M
weights; VR-DeEchoNormal: 48 channels, 31.7 M; VR-DeEchoDeReverb: 64 channels, 55.8 M), filled with
random weights, saved as the published bare state dict and loaded through app.data.preprocess.vr:
the figures are the real networks' cost (the weights' values do not change it) plus the multi-band
spectrogram both ways. Real-time factor = processing seconds / audio seconds (lower is faster).

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from app.data.preprocess.vr import VR_RATE, VrModel, model_path
from app.data.preprocess.vr_spec import analyse, load_bands, mirror_high_end, synthesise
from app.models.uvr.nets import AsppNet, AsppNetConfig, CascadedNet, CascadedNetConfig

# (file, network at its published width, dtype it is published in)
MODELS = (
    ("HP5_only_main_vocal.pth", lambda: AsppNet(AsppNetConfig()), torch.float16),
    ("VR-DeEchoNormal.pth", lambda: CascadedNet(CascadedNetConfig(nout=48)), torch.float32),
    ("VR-DeEchoDeReverb.pth", lambda: CascadedNet(CascadedNetConfig(nout=64)), torch.float32),
)


def _timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0, help="length of the stereo test signal")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    mix = (0.1 * rng.standard_normal((int(VR_RATE * args.seconds), 2))).astype(np.float32)
    bands = load_bands("4band_v2")
    spec, high = analyse(mix.T, bands)
    figures = {
        "bench": "vr_cpu",
        "audio_s": args.seconds,
        "threads": args.threads,
        "cpu": platform.processor() or platform.machine(),
        "bands_rtf": round(
            _timed(lambda: synthesise(analyse(mix.T, bands)[0], bands, mirror_high_end(spec, high, bands)))
            / args.seconds,
            4,
        ),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, build, dtype in MODELS:
            torch.manual_seed(0)
            state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in build().state_dict().items()}
            path = model_path(name, Path(tmp))
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(state, path)
            model = VrModel(name, Path(tmp))
            key = name.removesuffix(".pth")
            figures[f"{key}_file_mb"] = round(path.stat().st_size / 1e6, 1)
            figures[f"{key}_rtf"] = round(_timed(lambda m=model: m.split(mix)) / args.seconds, 3)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
