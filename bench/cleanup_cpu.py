"""CPU cost of the dataset clean-up and ASR plumbing that is ours: MDX-Net chunking, the denoiser, sherpa-onnx decoding.

    python -m bench.cleanup_cpu [--seconds 30] [--threads 1]

No model hub here, so the networks are the tests' tiny stand-ins in each engine's real file format
(a frequency mask for MDX-Net, band detectors for SenseVoice): the figures are the cost around the
network - STFT, chunking, overlap trimming and inverse STFT at each published model's n_fft/dim_f/
dim_t; fbank, low frame rate stacking and CTC decoding for sherpa-onnx - not the networks' own
(a real Kim_Vocal_2 or SenseVoice adds its forward pass). The denoiser has no network: its figure is
the whole cost. Real-time factor = processing seconds / audio seconds (lower is faster).

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

from app.audio.denoise import denoise
from app.data.preprocess.asr_base import TranscribeOptions
from app.data.preprocess.asr_sherpa import SENSEVOICE_FOLDER
from app.data.preprocess.mdx import MDX_MODELS, MDX_RATE, MdxModel, model_path
from app.data.preprocess.transcribe import ASR_RATE, open_engine
from tests.data.preprocess.tiny_models import tiny_mdx, tiny_sensevoice


def _timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=30.0, help="audio length per measurement")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        stereo = (0.1 * rng.standard_normal((int(MDX_RATE * args.seconds), 2))).astype(np.float32)
        for name, params in MDX_MODELS.items():
            tiny_mdx(model_path(name, root), params.dim_f, params.dim_t, params.dim_f)
            model = MdxModel(name, root)
            model.predict(stereo[:MDX_RATE])  # warm-up
            figures[f"mdx_plumbing_rtf[{name}]"] = _timed(lambda m=model: m.predict(stereo)) / args.seconds
        figures["denoise_rtf_44k_stereo"] = _timed(lambda: denoise(stereo, MDX_RATE)) / args.seconds
        tiny_sensevoice(root / SENSEVOICE_FOLDER)
        engine = open_engine(TranscribeOptions(engine="sensevoice"), root)
        clip = (0.1 * rng.standard_normal(ASR_RATE * 8)).astype(np.float32)  # an 8 s clip
        engine.transcribe(clip, None)  # warm-up (loads the recognizer)
        figures["sensevoice_plumbing_rtf"] = (
            min(_timed(lambda: engine.transcribe(clip, None)) for _ in range(3)) / 8
        )
    out = {k: round(v, 4) for k, v in figures.items()}
    print(json.dumps({"bench": "cleanup_cpu", "seconds": args.seconds, "threads": args.threads,
                      "cpu": platform.processor() or platform.machine(), **out}))  # fmt: skip


if __name__ == "__main__":
    main()
