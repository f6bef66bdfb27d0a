"""UVR's multi-band spectrogram: the input and output side of the VR-architecture models.

A 44.1 kHz stereo signal is resampled down a ladder of rates (the band parameters, UVR's
``modelparams/*.json``, kept as data in ``uvr_bands/``); each band has its own STFT, and a slice of
each band's bins is stacked into one spectrogram of ``bins + 1`` rows. The network masks that
spectrogram; the way back inverts every band, filters its edges and sums them up the ladder.

    4band_v2  HP2/HP3/HP5 (UVR's v5 ASPP networks)      bins 672: 7350 Hz x2, 14700 Hz, 44100 Hz
    4band_v3  VR-DeEcho* (UVR's "new" networks)           the same bands (only training fields differ)

The bins above the top band's crop (the "high end", which the network never sees) are put back by
mirroring the masked spectrum below the pre-filter, bounded by the input's own high end (UVR's
default ``high_end_process="mirroring"``). The maths follows UVR's ``spec_utils`` and uses the same
librosa resamplers and STFTs, so the numbers match.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import librosa
import numpy as np

BANDS_PACKAGE = "app.data.preprocess"
BANDS_FOLDER = "uvr_bands"  # 4band_v2.json, 4band_v3.json
# UVR's resamplers on the way back up: the lowest band with "sinc_fastest", the others with "scipy".
# librosa's "sinc_fastest" needs the `samplerate` package, which is not a dependency; it is only
# called when the lowest two bands differ in rate, and load_bands refuses such files (both UVR files
# used here run their lowest two bands at 7350 Hz, where librosa returns the signal as it is).
LOW_BAND_UP = "sinc_fastest"
MID_BAND_UP = "scipy"
MIRROR_GAP = 10  # bins between the pre-filter and the mirrored region (UVR's spec_utils.mirroring)


@dataclass(frozen=True)
class Band:
    """One band: its rate, STFT and which of its bins enter the combined spectrogram."""

    sr: int  # sample rate of this band's signal
    hl: int  # hop length
    n_fft: int  # STFT size
    crop_start: int  # first bin taken
    crop_stop: int  # bin after the last one taken
    res_type: str  # librosa resampler bringing the band above down to this rate
    lpf_start: int = 0  # low-pass ramp on the way back (0: none; top band)
    lpf_stop: int = 0
    hpf_start: int = 0  # high-pass ramp on the way back (0: none; lowest band)
    hpf_stop: int = 0


@dataclass(frozen=True)
class BandParams:
    """A set of bands (lowest first) and the combined spectrogram's size and pre-filter."""

    name: str  # the JSON's stem
    bins: int  # rows of the combined spectrogram less one (the network's n_fft / 2)
    sr: int  # rate of the top band: the rate the audio comes in and goes out at
    pre_filter_start: int  # combined bins from here on fade out
    pre_filter_stop: int
    bands: tuple[Band, ...]

    @property
    def high_end_bins(self) -> int:
        """Top-band bins the combined spectrogram leaves out, put back on the way out."""
        top = self.bands[-1]
        return (top.n_fft // 2 - top.crop_stop) + (self.pre_filter_stop - self.pre_filter_start)


BAND_FIELDS = {f for f in Band.__dataclass_fields__}
# UVR fields that only training reads, or stereo modes none of the supported files uses.
_TRAINING_FIELDS = {"unstable_bins", "reduction_bins"}


@lru_cache(maxsize=4)
def load_bands(name: str) -> BandParams:
    """The band parameters ``uvr_bands/<name>.json``; raises ValueError for an unknown or odd file."""
    try:
        text = resources.files(BANDS_PACKAGE).joinpath(BANDS_FOLDER, f"{name}.json").read_text("utf-8")
    except FileNotFoundError:
        raise ValueError(f"no UVR band parameters named {name!r} (uvr_bands/{name}.json)") from None
    raw = json.loads(text)
    stereo = [
        k for k in ("mid_side", "mid_side_b", "mid_side_b2", "stereo_w", "stereo_n", "reverse") if raw.get(k)
    ]
    if stereo:
        raise ValueError(f"uvr_bands/{name}.json: stereo mode {stereo} is not supported (only plain L/R)")
    bands = []
    for key in sorted(raw["band"], key=int):
        fields = raw["band"][key]
        unknown = set(fields) - BAND_FIELDS
        if unknown:
            raise ValueError(f"uvr_bands/{name}.json band {key}: unknown fields {sorted(unknown)}")
        bands.append(Band(**fields))
    unknown = set(raw) - {"band", "bins", "sr", "pre_filter_start", "pre_filter_stop"} - _TRAINING_FIELDS
    if unknown:
        raise ValueError(f"uvr_bands/{name}.json: unknown fields {sorted(unknown)}")
    if len(bands) < 2 or bands[0].sr != bands[1].sr:
        raise ValueError(f"uvr_bands/{name}.json: the lowest two bands must share a rate (see LOW_BAND_UP)")
    return BandParams(
        name, raw["bins"], raw["sr"], raw["pre_filter_start"], raw["pre_filter_stop"], tuple(bands)
    )


def _stft(wave: np.ndarray, band: Band) -> np.ndarray:
    """``(2, T)`` -> ``(2, n_fft/2 + 1, frames)`` complex64 (Hann, centred, zero-padded: librosa's defaults)."""
    return librosa.stft(np.asfortranarray(wave), n_fft=band.n_fft, hop_length=band.hl)


def analyse(wave: np.ndarray, params: BandParams) -> tuple[np.ndarray, np.ndarray]:
    """Stereo ``(2, T)`` at ``params.sr`` -> combined spectrogram ``(2, bins + 1, frames)`` and the
    top band's high end ``(2, high_end_bins, frames)`` (both complex)."""
    waves: dict[int, np.ndarray] = {len(params.bands) - 1: wave.astype(np.float32)}
    for i in range(len(params.bands) - 2, -1, -1):  # down the ladder from the band above
        above, band = params.bands[i + 1], params.bands[i]
        waves[i] = librosa.resample(waves[i + 1], orig_sr=above.sr, target_sr=band.sr, res_type=band.res_type)
    specs = [_stft(waves[i], band) for i, band in enumerate(params.bands)]
    frames = min(s.shape[2] for s in specs)
    combined = np.zeros((2, params.bins + 1, frames), dtype=np.complex64)
    offset = 0
    for spec, band in zip(specs, params.bands, strict=True):
        rows = band.crop_stop - band.crop_start
        combined[:, offset : offset + rows] = spec[:, band.crop_start : band.crop_stop, :frames]
        offset += rows
    if offset > params.bins:
        raise ValueError(f"band parameters {params.name}: {offset} bins do not fit in {params.bins}")
    # Pre-filter: each bin past pre_filter_start damped by a gain that depends on the previous one.
    previous = 1.0
    for b in range(params.pre_filter_start + 1, params.pre_filter_stop):
        gain = math.pow(10, -(b - params.pre_filter_start) * (3.5 - previous) / 20.0)
        previous = gain
        combined[:, b] *= gain
    top, h = params.bands[-1], params.high_end_bins
    high_end = specs[-1][:, top.n_fft // 2 - h : top.n_fft // 2, :frames]
    return combined, high_end


def mirror_high_end(spec: np.ndarray, high_end: np.ndarray, params: BandParams) -> np.ndarray:
    """The high end for ``spec``: the masked bins just below the pre-filter, flipped, with the input's
    phase, never louder than the input's own high end. ``(2, high_end_bins, frames)``."""
    h = high_end.shape[1]
    stop = params.pre_filter_start - MIRROR_GAP
    mirror = np.flip(np.abs(spec[:, stop - h : stop, :]), 1) * np.exp(1.0j * np.angle(high_end))
    return np.where(np.abs(high_end) <= np.abs(mirror), high_end, mirror)


def _low_pass(spec: np.ndarray, start: int, stop: int) -> None:
    """Linear fade to zero over bins [start, stop), zero above (in place; UVR's fft_lp_filter)."""
    gain = 1.0
    for b in range(start, stop):
        gain -= 1 / (stop - start)
        spec[:, b] *= gain
    spec[:, stop:] = 0


def _high_pass(spec: np.ndarray, start: int, stop: int) -> None:
    """Linear fade to zero from bin ``start`` down to ``stop``, zero from there down (UVR's fft_hp_filter)."""
    gain = 1.0
    for b in range(start, stop, -1):
        gain -= 1 / (start - stop)
        spec[:, b] *= gain
    spec[:, : stop + 1] = 0


def _istft(spec: np.ndarray, band: Band) -> np.ndarray:
    return librosa.istft(spec, hop_length=band.hl)  # (2, (frames - 1) * hl)


def synthesise(spec: np.ndarray, params: BandParams, high_end: np.ndarray | None = None) -> np.ndarray:
    """Combined spectrogram ``(2, bins + 1, frames)`` -> stereo ``(T, 2)`` at ``params.sr``.

    ``high_end`` (from :func:`mirror_high_end`) fills the top band's bins above its crop.
    """
    wave = np.zeros((2, 0), dtype=np.float32)
    offset, last = 0, len(params.bands) - 1
    for i, band in enumerate(params.bands):
        own = np.zeros((2, band.n_fft // 2 + 1, spec.shape[2]), dtype=np.complex128)
        rows = band.crop_stop - band.crop_start
        own[:, band.crop_start : band.crop_stop] = spec[:, offset : offset + rows]
        offset += rows
        if i == last:
            if high_end is not None:
                top, h = band.n_fft // 2, high_end.shape[1]
                own[:, top - h : top] = high_end
            if band.hpf_start > 0:
                _high_pass(own, band.hpf_start, band.hpf_stop - 1)
            wave = wave + _istft(own, band) if i > 0 else _istft(own, band)
            continue
        up = params.bands[i + 1].sr
        if i == 0:
            _low_pass(own, band.lpf_start, band.lpf_stop)
            wave = librosa.resample(_istft(own, band), orig_sr=band.sr, target_sr=up, res_type=LOW_BAND_UP)
        else:
            _high_pass(own, band.hpf_start, band.hpf_stop - 1)
            _low_pass(own, band.lpf_start, band.lpf_stop)
            wave = librosa.resample(
                wave + _istft(own, band), orig_sr=band.sr, target_sr=up, res_type=MID_BAND_UP
            )
    return wave.T
