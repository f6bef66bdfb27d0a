"""GTCRN, a learned speech denoiser, through sherpa-onnx's offline speech denoiser.

Upstream GPT-SoVITS denoises with ModelScope's FRCRN (16 kHz), which needs modelscope; GTCRN
(Rong et al., ICASSP 2024: a grouped temporal convolutional recurrent network, 48 k parameters,
a complex ratio mask over a 16 kHz STFT) does the same job and sherpa-onnx, already our ASR
runtime, runs the streaming ONNX export the sherpa-onnx project publishes:

    pretrained_models/denoise-model/gtcrn_simple.onnx     (upstream's folder is tools/denoise-model/)

The export takes one STFT frame ``(1, n_fft/2+1, 1, 2)`` (real, imaginary) and three recurrent
caches, and returns the enhanced frame and the next caches; sherpa-onnx does the STFT, the
frame loop and the inverse STFT from the model's metadata. It ends the whole process on a file
without that metadata, so :func:`check_model` reads it first with onnxruntime.

The network hears 16 kHz audio. A clip at a higher rate is denoised in two bands: below the
network's Nyquist frequency its output, above it the spectral gate's (:mod:`app.audio.denoise`),
so a 32 or 48 kHz training clip keeps its high band (upstream's FRCRN output stops at 8 kHz).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from app import assets
from app.assets.registry import DOWNLOAD_COMMAND
from app.audio.denoise import DenoiseOptions, denoise
from app.audio.resample import sinc_resample
from app.messages import Message

logger = logging.getLogger(__name__)

GTCRN_FOLDER = "denoise-model"  # upstream's folder for its denoiser (tools/denoise-model/)
GTCRN_FILE = "gtcrn_simple.onnx"  # the sherpa-onnx release's file name
GTCRN_ASSET = "gtcrn-simple"  # id in app.assets
# Metadata sherpa-onnx reads (sherpa-onnx/csrc/offline-speech-denoiser-gtcrn-model.cc).
INT_KEYS = ("sample_rate", "n_fft", "hop_length", "window_length", "version")
CACHE_KEYS = ("conv_cache_shape", "tra_cache_shape", "inter_cache_shape")
# Windows the STFT of sherpa-onnx (kaldi-native-fbank) builds; the export uses hann_sqrt.
WINDOWS = ("hann_sqrt", "hann")
# Width of the cross-over between the network's band and the gate's, as a share of the cut-off:
# a linear ramp over the top 10% of the network's band, where its output already rolls off.
CROSSOVER_SHARE = 0.1
# STFT of the band join: ~32 ms windows (as the spectral gate's resolution, halved), quarter hop.
JOIN_WINDOW_SECONDS = 0.032


class GtcrnError(RuntimeError):
    """The GTCRN model cannot run (missing or malformed file); the message says what to do."""


class MissingGtcrnModel(GtcrnError, FileNotFoundError):
    """``gtcrn_simple.onnx`` is not in ``pretrained_models/denoise-model/``."""


@dataclass(frozen=True)
class GtcrnMeta:
    """What the export's metadata says about its STFT (checked before sherpa-onnx sees the file)."""

    sample_rate: int  # Hz the network works at (16000)
    n_fft: int  # STFT size (512); the network takes n_fft // 2 + 1 bins per frame
    hop_length: int  # STFT hop (256)


def model_path(pretrained_root: Path) -> Path:
    """Where the published file belongs: ``pretrained_models/denoise-model/gtcrn_simple.onnx``."""
    return Path(pretrained_root) / GTCRN_FOLDER / GTCRN_FILE


def is_installed(pretrained_root: Path) -> bool:
    return model_path(pretrained_root).is_file()


def _shape(value: str, key: str, path: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in value.split(","))
    except ValueError:
        dims = ()
    if not dims or min(dims) <= 0:
        raise GtcrnError(
            f"{path}: metadata {key}={value!r} is not a list of positive sizes; download it again"
        )
    return dims


@lru_cache(maxsize=4)
def check_model(path: str) -> GtcrnMeta:
    """Refuse a file that is not a sherpa-onnx GTCRN export: metadata, inputs and outputs.

    Raises:
        GtcrnError: naming what is wrong (sherpa-onnx would end the process instead).
    """
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own unexported exception types
        raise GtcrnError(f"{path}: not a loadable ONNX model ({exc}); download it again") from exc
    meta = session.get_modelmeta().custom_metadata_map
    missing = [k for k in ("model_type", *INT_KEYS, "window_type", *CACHE_KEYS) if k not in meta]
    if missing:
        raise GtcrnError(
            f"{path}: not a sherpa-onnx GTCRN export (metadata {', '.join(missing)} missing); "
            f"use the published {GTCRN_FILE}"
        )
    if meta["model_type"] != "gtcrn":
        raise GtcrnError(f"{path}: model_type is {meta['model_type']!r}, not 'gtcrn'; use {GTCRN_FILE}")
    if meta["window_type"] not in WINDOWS:
        raise GtcrnError(f"{path}: window_type {meta['window_type']!r} is not one of {', '.join(WINDOWS)}")
    ints = {k: _shape(meta[k], k, path) for k in INT_KEYS}
    if any(len(v) != 1 for v in ints.values()):
        raise GtcrnError(f"{path}: {', '.join(INT_KEYS)} must each be one positive integer")
    rate, n_fft, hop, window = (ints[k][0] for k in INT_KEYS[:4])
    if not hop <= window <= n_fft:
        raise GtcrnError(f"{path}: needs hop_length <= window_length <= n_fft, got {hop}, {window}, {n_fft}")
    caches = [_shape(meta[k], k, path) for k in CACHE_KEYS]
    want = [(1, n_fft // 2 + 1, 1, 2), *caches]
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 4 or len(outputs) != 4:
        raise GtcrnError(
            f"{path}: a GTCRN export has 4 inputs and 4 outputs, this one {len(inputs)} and {len(outputs)}"
        )
    for kind, args in (("input", inputs), ("output", outputs)):
        for arg, shape in zip(args, want, strict=True):
            if tuple(arg.shape) != shape:
                raise GtcrnError(
                    f"{path}: {kind} {arg.name} has shape {arg.shape}, the metadata says {list(shape)}"
                )
    return GtcrnMeta(rate, n_fft, hop)


@lru_cache(maxsize=2)
def _denoiser(path: str):
    import sherpa_onnx

    logger.info("loading GTCRN from %s", path)
    model = sherpa_onnx.OfflineSpeechDenoiserModelConfig(
        gtcrn=sherpa_onnx.OfflineSpeechDenoiserGtcrnModelConfig(model=path),
        num_threads=1,  # one frame at a time through a 48 k-parameter network: more threads only wait
    )
    return sherpa_onnx.OfflineSpeechDenoiser(sherpa_onnx.OfflineSpeechDenoiserConfig(model=model))


def _join_bands(low: torch.Tensor, high: torch.Tensor, sr: int, cutoff: float) -> torch.Tensor:
    """``low``'s spectrum below ``cutoff`` Hz, ``high``'s above it; ``(C, T)`` both, ``(C, T)`` back."""
    n_fft = 1 << round(np.log2(sr * JOIN_WINDOW_SECONDS))
    hop, window = n_fft // 4, torch.hann_window(n_fft)
    freqs = torch.fft.rfftfreq(n_fft, 1.0 / sr)  # (F,)
    start = cutoff * (1.0 - CROSSOVER_SHARE)
    weight = ((cutoff - freqs) / (cutoff - start)).clamp(0.0, 1.0)[:, None]  # (F, 1): 1 below, 0 above
    spec_low = torch.stft(low, n_fft, hop, window=window, return_complex=True)  # (C, F, N)
    spec_high = torch.stft(high, n_fft, hop, window=window, return_complex=True)
    joined = spec_low * weight + spec_high * (1.0 - weight)
    return torch.istft(joined, n_fft, hop, window=window, length=low.shape[-1])


class GtcrnDenoiser:
    """The published GTCRN export, loaded: :meth:`denoise` takes any rate and channel count."""

    def __init__(self, pretrained_root: Path) -> None:
        path = model_path(pretrained_root)
        if not path.is_file():
            how = assets.missing_message(
                [assets.asset_status(assets.get(GTCRN_ASSET), Path(pretrained_root))]
            )
            how = how or f"{DOWNLOAD_COMMAND} {GTCRN_ASSET}"
            template = "{name} is not installed: {path} not found.\n{how}"
            raise MissingGtcrnModel(
                Message("sep.err.not_installed", template, name=GTCRN_FILE, path=str(path), how=how)
            )
        self.path = str(path)
        self.meta = check_model(self.path)

    def _network(self, channels: torch.Tensor, sr: int) -> torch.Tensor:
        """Each row of ``(C, T)`` at ``sr`` through the network at its rate; ``(C, T)`` at ``sr`` back."""
        rate = self.meta.sample_rate
        x = sinc_resample(channels, sr, rate)  # (C, T')
        out = torch.zeros_like(x)
        for c in range(x.shape[0]):
            result = _denoiser(self.path)(x[c].numpy(), rate)
            y = torch.from_numpy(np.asarray(result.samples, dtype=np.float32))
            n = min(y.shape[0], x.shape[1])  # the inverse STFT ends on the last full hop
            out[c, :n] = y[:n]
        back = sinc_resample(out, rate, sr)
        return torch.nn.functional.pad(back, (0, max(0, channels.shape[1] - back.shape[1])))[
            :, : channels.shape[1]
        ]

    def denoise(self, wav: np.ndarray, sr: int, options: DenoiseOptions = DenoiseOptions()) -> np.ndarray:
        """Denoise ``wav`` ``(T,)`` or ``(T, C)`` float at ``sr`` Hz; the same shape back.

        ``options.strength`` is the share of what the denoiser takes out that is removed (1: its
        output as it is); above the network's band the spectral gate works with ``options``'
        threshold.
        """
        x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))
        mono = x.ndim == 1
        channels = (x[None] if mono else x.T).contiguous()  # (C, T)
        if channels.shape[1] < self.meta.n_fft * sr // self.meta.sample_rate:
            raise ValueError(f"{channels.shape[1] / sr:.3f} s of audio is too short for GTCRN's STFT")
        full = self._network(channels, sr)
        nyquist = self.meta.sample_rate / 2
        if sr > self.meta.sample_rate:
            gated = denoise(channels.T.numpy(), sr, DenoiseOptions(1.0, options.threshold_std))  # (T, C)
            full = _join_bands(full, torch.from_numpy(np.ascontiguousarray(gated.T)), sr, nyquist)
        out = channels - options.strength * (channels - full)  # (C, T)
        return (out[0] if mono else out.T).numpy()
