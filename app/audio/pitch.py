"""Fundamental frequency (f0) tracking: one interface, several trackers.

``extract(wav, sr, hop, method)`` returns ``(f0, uv)``, two float32 arrays of ``len(wav) // hop``
frames (frame ``i`` at time ``i * hop / sr``), as so-vits-svc 4.1's f0 predictors do:

- ``uv`` is 1 where the tracker found a voiced frame, 0 elsewhere;
- ``f0`` is in Hz with the unvoiced frames filled by linear interpolation between the voiced
  neighbours (constant before the first / after the last voiced frame; all zeros when nothing is
  voiced). ``interpolate=False`` keeps zeros there instead (RVC's convention).

Trackers (registry ``TRACKERS``, keyed by a stable id):

| id | package | notes |
|---|---|---|
| ``pm`` | praat-parselmouth | Praat autocorrelation, voicing threshold 0.6; fastest |
| ``dio`` | pyworld | DIO + StoneMask refinement |
| ``harvest`` | pyworld | Harvest + StoneMask; good low notes, slow |
| ``crepe`` / ``crepe-tiny`` | torchcrepe (weights bundled) | Viterbi decoding, periodicity threshold |
| ``fcpe`` | torchfcpe (weights bundled) | fast neural tracker |
| ``rmvpe`` | our network, weights ``pretrained_models/rmvpe.pt`` | see :mod:`app.audio.rmvpe` |

torchcrepe and torchfcpe import ``torchaudio`` at import time, which has no build for our torch.
:func:`_import_without_torchaudio` puts a small stand-in (``load`` and ``transforms.Resample``,
backed by :func:`app.audio.io.load_audio` / :func:`app.audio.io.resample`) into ``sys.modules``
only while one of them is first imported, then takes it out again, so nothing else ever sees it.
We always hand them 16 kHz audio, so the stand-in is never actually called in normal use.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import importlib.util
import logging
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from app.audio.io import resample
from app.messages import Message
from app.paths import ROOT

logger = logging.getLogger(__name__)

F0_MIN = 50.0  # Hz, the range every so-vits-svc / RVC tracker is run with
F0_MAX = 1100.0
NEURAL_SR = 16000  # crepe, fcpe and rmvpe analyse 16 kHz audio ...
NEURAL_HOP = 160  # ... at 10 ms frames centred on multiples of the hop
DEFAULT_RMVPE_PATH = ROOT / "pretrained_models" / "rmvpe.pt"
RMVPE_CONFIG = None  # None = the released network size (tests swap in a tiny one)
# Coarse pitch: 256 embedding rows over the mel-scaled range [F0_MIN, F0_MAX] (all systems).
COARSE_BINS = 256


class PitchError(ValueError):
    """Audio or options the f0 trackers cannot work with; the message says what to change."""


@dataclass(frozen=True)
class PitchRequest:
    """What one tracker call gets (built by :func:`extract`)."""

    wav: np.ndarray  # float32 mono samples at ``sr``
    sr: int  # sample rate of ``wav`` in Hz
    hop: int  # output frame step in samples at ``sr``
    n_frames: int  # output length: len(wav) // hop
    f0_min: float  # Hz, lowest pitch searched
    f0_max: float  # Hz, highest pitch searched
    threshold: float  # voicing / confidence threshold, meaning depends on the tracker
    device: str  # torch device for the neural trackers
    rmvpe_path: Path  # weights file for "rmvpe"


@dataclass(frozen=True)
class Tracker:
    """One registered f0 tracker."""

    name: str  # stable id used in configs, CLIs and the UI
    run: Callable[[PitchRequest], np.ndarray]  # raw f0 [n_frames] in Hz, 0 = unvoiced
    default_threshold: float  # used when extract() gets threshold=None
    description: str  # one line for help texts


TRACKERS: dict[str, Tracker] = {}


def register(name: str, default_threshold: float, description: str):
    """Decorator adding a tracker function to :data:`TRACKERS`."""

    def wrap(fn: Callable[[PitchRequest], np.ndarray]) -> Callable[[PitchRequest], np.ndarray]:
        TRACKERS[name] = Tracker(name, fn, default_threshold, description)
        return fn

    return wrap


def extract(
    wav: np.ndarray,
    sr: int,
    hop: int,
    method: str = "pm",
    f0_min: float = F0_MIN,
    f0_max: float = F0_MAX,
    threshold: float | None = None,
    *,
    median_filter: int = 0,
    interpolate: bool = True,
    device: str | torch.device | None = None,
    rmvpe_path: str | Path | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Track f0 of mono audio ``wav`` (float, at ``sr`` Hz) every ``hop`` samples.

    Returns ``(f0 Hz [T], uv [T])`` float32 with ``T = len(wav) // hop``; see the module docstring.
    ``median_filter``: odd kernel size (>= 3) of a median filter over the raw track before the
    unvoiced frames are filled (RVC's ``filter_radius``); 0 or 1 = off.
    """
    if method not in TRACKERS:
        choices = ", ".join(sorted(TRACKERS))
        raise PitchError(
            Message(
                "pitch.err.method",
                "unknown f0 method {method!r}; choose one of: {choices}",
                method=method,
                choices=choices,
            )
        )
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim != 1:
        template = "f0 tracking needs mono audio of shape (samples,), got shape {shape}"
        raise PitchError(Message("pitch.err.shape", template, shape=str(wav.shape)))
    if sr <= 0 or hop <= 0:
        template = "sample rate and hop must be positive, got sr={sr}, hop={hop}"
        raise PitchError(Message("pitch.err.rate", template, sr=sr, hop=hop))
    if not 0 < f0_min < f0_max:
        template = "need 0 < f0_min < f0_max, got f0_min={low}, f0_max={high}"
        raise PitchError(Message("pitch.err.range", template, low=f0_min, high=f0_max))
    if not np.isfinite(wav).all():
        template = "the audio contains NaN or infinite samples; re-export or re-decode it"
        raise PitchError(Message("pitch.err.not_finite", template))
    n_frames = len(wav) // hop
    if n_frames < 1:
        template = "the audio is shorter than one frame ({samples} samples < hop {hop})"
        raise PitchError(Message("pitch.err.short", template, samples=len(wav), hop=hop))
    if median_filter not in (0, 1) and (median_filter < 3 or median_filter % 2 == 0):
        template = "median_filter must be 0 (off) or an odd size >= 3, got {size}"
        raise PitchError(Message("pitch.err.median", template, size=median_filter))
    tracker = TRACKERS[method]
    request = PitchRequest(
        wav=wav,
        sr=int(sr),
        hop=int(hop),
        n_frames=n_frames,
        f0_min=float(f0_min),
        f0_max=float(f0_max),
        threshold=tracker.default_threshold if threshold is None else float(threshold),
        device=str(device or "cpu"),
        rmvpe_path=Path(rmvpe_path) if rmvpe_path is not None else DEFAULT_RMVPE_PATH,
    )
    raw = np.asarray(tracker.run(request), dtype=np.float64)
    raw = np.nan_to_num(_fit_length(raw, n_frames), nan=0.0)
    raw[raw < 0] = 0.0
    if median_filter >= 3:
        from scipy.signal import medfilt

        raw = medfilt(raw, median_filter)
    uv = (raw > 0).astype(np.float32)
    f0 = fill_unvoiced(raw) if interpolate else raw
    return f0.astype(np.float32), uv


def fill_unvoiced(f0: np.ndarray) -> np.ndarray:
    """Linear interpolation over the zero (unvoiced) frames of ``f0`` [T], as 4.1 does.

    Frames before the first / after the last voiced one take its value; no voiced frame -> zeros.
    """
    f0 = np.asarray(f0, dtype=np.float64)
    voiced = np.flatnonzero(f0 > 0)
    if voiced.size == 0:
        return np.zeros_like(f0)
    return np.interp(np.arange(len(f0)), voiced, f0[voiced])


def transpose(f0: np.ndarray | torch.Tensor, semitones: float) -> np.ndarray | torch.Tensor:
    """Shift f0 by ``semitones`` (12 = one octave up); zeros stay zeros."""
    return f0 * 2 ** (semitones / 12)


def coarse_pitch(
    f0: torch.Tensor,
    style: Literal["sovits41", "clip"] = "sovits41",
    f0_min: float = F0_MIN,
    f0_max: float = F0_MAX,
) -> torch.Tensor:
    """Quantise f0 (Hz, any shape) to pitch-embedding ids in ``[0, 255]`` (int64, same shape).

    m = 1127 ln(1 + f0/700) (mel); voiced frames map linearly so that f0_min -> 1 and
    f0_max -> 255; unvoiced (f0 = 0) -> 1.

    - ``"sovits41"`` (so-vits-svc 4.x ``utils.f0_to_coarse``): round half to even; values below 1
      become 1; **values >= 256 become 0** — upstream meant to clamp to 255 but zeroes first, so
      f0 a little above f0_max gets id 0, an embedding row no other frame uses. Trained 4.x
      models saw exactly this, so we keep it for parity.
    - ``"clip"`` (innnky 32k): clip to [1, 255], then round half up (``floor(x + 0.5)``).
    """
    mel_min = 1127.0 * np.log(1.0 + f0_min / 700.0)
    mel_max = 1127.0 * np.log(1.0 + f0_max / 700.0)
    mel = 1127.0 * (1.0 + f0 / 700.0).log()
    if style == "sovits41":
        # Same float32 expression shape as upstream (m * a - b) so ties round identically.
        a = (COARSE_BINS - 2) / (mel_max - mel_min)
        b = mel_min * a - 1.0
        mel = torch.where(mel > 0, mel * a - b, mel)
        coarse = torch.round(mel).long()
        coarse = torch.where(coarse < 1, torch.ones_like(coarse), coarse)
        return torch.where(coarse >= COARSE_BINS, torch.zeros_like(coarse), coarse)
    if style == "clip":
        mel = torch.where(mel > 0, (mel - mel_min) * (COARSE_BINS - 2) / (mel_max - mel_min) + 1, mel)
        mel = mel.clamp(1.0, COARSE_BINS - 1.0)
        return (mel + 0.5).long()
    template = "unknown coarse pitch style {style!r}; use 'sovits41' or 'clip'"
    raise PitchError(Message("pitch.err.style", template, style=style))


def _fit_length(f0: np.ndarray, n_frames: int) -> np.ndarray:
    """Pad (with zeros at the end) or cut a track to ``n_frames``."""
    if len(f0) >= n_frames:
        return f0[:n_frames]
    return np.pad(f0, (0, n_frames - len(f0)))


def _frames_from_16k(f0_16k: np.ndarray, request: PitchRequest) -> np.ndarray:
    """Map a 10 ms track (frame j at j * 10 ms) to the output frames by nearest frame in time."""
    times = np.arange(request.n_frames) * request.hop / request.sr
    index = np.rint(times * NEURAL_SR / NEURAL_HOP).astype(np.int64)
    return f0_16k[np.clip(index, 0, len(f0_16k) - 1)]


def _wav_16k(request: PitchRequest) -> np.ndarray:
    return resample(request.wav, request.sr, NEURAL_SR)


def _resize_nan_aware(f0: np.ndarray, n_frames: int) -> np.ndarray:
    """Linear resize of a track to ``n_frames`` that never blends voiced with unvoiced (4.1 dio/harvest)."""
    source = np.array(f0, dtype=np.float64)
    source[source < 0.001] = np.nan
    positions = np.arange(0, len(source) * n_frames, len(source)) / n_frames
    return np.nan_to_num(np.interp(positions, np.arange(len(source)), source))


# --- trackers --------------------------------------------------------------------------------


@register("pm", 0.6, "Praat autocorrelation (parselmouth): fastest, good on clean speech")
def _pm(request: PitchRequest) -> np.ndarray:
    import parselmouth

    step = request.hop / request.sr
    # Praat needs three periods of the lowest pitch in its window.
    if len(request.wav) / request.sr < 3.0 / request.f0_min:
        template = "audio of {seconds:.3f} s is too short for pm with f0_min {low} Hz (needs {needed:.3f} s); use a longer clip"
        fields = {
            "seconds": len(request.wav) / request.sr,
            "low": request.f0_min,
            "needed": 3.0 / request.f0_min,
        }
        raise PitchError(Message("pitch.err.pm_short", template, **fields))
    pitch = parselmouth.Sound(request.wav.astype(np.float64), request.sr).to_pitch_ac(
        time_step=step,
        voicing_threshold=request.threshold,
        pitch_floor=request.f0_min,
        pitch_ceiling=request.f0_max,
    )
    f0 = pitch.selected_array["frequency"]
    # Praat's frames start half a window in: centre the track in the output frames (4.1 does so).
    left = max((request.n_frames - len(f0) + 1) // 2, 0)
    return _fit_length(np.pad(f0, (left, 0)), request.n_frames)


def _world(request: PitchRequest, algorithm: str) -> np.ndarray:
    import pyworld

    x = request.wav.astype(np.float64)
    period_ms = 1000.0 * request.hop / request.sr
    track = getattr(pyworld, algorithm)
    f0, times = track(
        x, fs=request.sr, f0_floor=request.f0_min, f0_ceil=request.f0_max, frame_period=period_ms
    )
    f0 = pyworld.stonemask(x, f0, times, request.sr)
    return _resize_nan_aware(np.round(f0, 1), request.n_frames)


@register("dio", 0.0, "WORLD DIO + StoneMask (pyworld): fast, can drop soft notes")
def _dio(request: PitchRequest) -> np.ndarray:
    return _world(request, "dio")


@register("harvest", 0.0, "WORLD Harvest + StoneMask (pyworld): robust low notes, slow")
def _harvest(request: PitchRequest) -> np.ndarray:
    return _world(request, "harvest")


def _crepe(request: PitchRequest, model: str) -> np.ndarray:
    torchcrepe = _import_without_torchaudio("torchcrepe")
    audio = torch.from_numpy(_wav_16k(request))[None].to(request.device)
    f0, periodicity = torchcrepe.predict(
        audio,
        NEURAL_SR,
        NEURAL_HOP,
        request.f0_min,
        request.f0_max,
        model=model,
        decoder=torchcrepe.decode.viterbi,
        return_periodicity=True,
        batch_size=512,
        device=request.device,
        pad=True,
    )
    # 4.1's post-processing: smooth the confidence, silence below -60 dB counts as unvoiced,
    # threshold, then a NaN-aware 3-frame mean over the pitch.
    periodicity = torchcrepe.filter.median(periodicity, 3)
    periodicity = torchcrepe.threshold.Silence(-60.0)(periodicity, audio, NEURAL_SR, NEURAL_HOP)
    f0 = torchcrepe.threshold.At(request.threshold)(f0, periodicity)
    f0 = torchcrepe.filter.mean(f0, 3)
    f0 = torch.nan_to_num(f0, nan=0.0)[0].cpu().numpy()
    return _frames_from_16k(f0, request)


@register("crepe", 0.05, "CREPE full (torchcrepe): accurate, slow on CPU")
def _crepe_full(request: PitchRequest) -> np.ndarray:
    return _crepe(request, "full")


@register("crepe-tiny", 0.05, "CREPE tiny (torchcrepe): fast, less accurate")
def _crepe_tiny(request: PitchRequest) -> np.ndarray:
    return _crepe(request, "tiny")


@lru_cache(maxsize=2)
def _fcpe_model(device: str):
    torchfcpe = _import_without_torchaudio("torchfcpe")
    return torchfcpe.spawn_bundled_infer_model(device=device)


# torchfcpe's own default confidence threshold for its bundled checkpoint.
@register("fcpe", 0.006, "FCPE (torchfcpe, bundled weights): fast and accurate")
def _fcpe(request: PitchRequest) -> np.ndarray:
    model = _fcpe_model(request.device)
    audio = torch.from_numpy(_wav_16k(request))[None, :, None].to(request.device)
    with torch.no_grad():
        f0 = model.infer(
            audio,
            sr=NEURAL_SR,
            decoder_mode="local_argmax",
            threshold=request.threshold,
            f0_min=request.f0_min,
            f0_max=request.f0_max,
            interp_uv=False,
        )
    f0 = f0[0, :, 0].cpu().numpy().astype(np.float64)
    f0[f0 < request.f0_min] = 0.0
    return _frames_from_16k(f0, request)


@register("rmvpe", 0.05, "RMVPE (weights pretrained_models/rmvpe.pt): robust for singing")
def _rmvpe(request: PitchRequest) -> np.ndarray:
    from app.audio.rmvpe import load_rmvpe

    model = load_rmvpe(request.rmvpe_path, request.device, RMVPE_CONFIG)
    f0 = model.track(torch.from_numpy(_wav_16k(request)), threshold=request.threshold)
    f0 = f0.cpu().numpy().astype(np.float64)
    f0[(f0 < request.f0_min) | (f0 > request.f0_max)] = 0.0
    return _frames_from_16k(f0, request)


# --- torchaudio stand-in for torchcrepe / torchfcpe ------------------------------------------


class _Resample(torch.nn.Module):
    """``torchaudio.transforms.Resample`` stand-in: resamples the last axis with soxr."""

    def __init__(self, orig_freq: int = 16000, new_freq: int = 16000, **_ignored: object) -> None:
        super().__init__()
        self.orig_freq, self.new_freq = int(orig_freq), int(new_freq)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        flat = waveform.detach().reshape(-1, waveform.shape[-1]).float().cpu().numpy()
        out = np.stack([resample(row, self.orig_freq, self.new_freq) for row in flat])
        out = torch.from_numpy(out).reshape(*waveform.shape[:-1], -1)
        return out.to(device=waveform.device, dtype=waveform.dtype)


def _load(path: str, *_args: object, **_kwargs: object) -> tuple[torch.Tensor, int]:
    """``torchaudio.load`` stand-in: (float32 [1, samples], native sample rate)."""
    import soundfile as sf

    from app.audio.io import load_audio

    sr = sf.info(path).samplerate
    return torch.from_numpy(load_audio(path, sr))[None], sr


@contextlib.contextmanager
def _torchaudio_standin() -> Iterator[None]:
    if importlib.util.find_spec("torchaudio") is not None or "torchaudio" in sys.modules:
        yield  # a real torchaudio is installed: let the package use it
        return
    module = types.ModuleType("torchaudio")
    module.__spec__ = importlib.machinery.ModuleSpec("torchaudio", None)
    module.load = _load
    transforms = types.ModuleType("torchaudio.transforms")
    transforms.__spec__ = importlib.machinery.ModuleSpec("torchaudio.transforms", None)
    transforms.Resample = _Resample
    module.transforms = transforms
    sys.modules["torchaudio"] = module
    sys.modules["torchaudio.transforms"] = transforms
    try:
        yield
    finally:
        for name, stub in (("torchaudio", module), ("torchaudio.transforms", transforms)):
            if sys.modules.get(name) is stub:
                del sys.modules[name]


@cache
def _import_without_torchaudio(package: str) -> types.ModuleType:
    """Import torchcrepe / torchfcpe, which import torchaudio at import time (see module doc)."""
    with _torchaudio_standin():
        try:
            return importlib.import_module(package)
        except ImportError as exc:
            template = (
                "the f0 tracker needs the package {package!r}, which failed to import ({problem}); install it with: "
                "pip install --no-deps -r requirements-nodeps.txt"
            )
            raise PitchError(
                Message("pitch.err.package", template, package=package, problem=str(exc))
            ) from exc
