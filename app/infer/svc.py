"""Singing voice conversion: a song (or speech) in, the same melody in a trained voice out.

``SVCPipeline(pretrained_root).convert(SvcRequest(...)) -> SvcResult``; UI, CLI and API build the
same request. Steps (so-vits-svc 4.1 ``inference/infer_tool.py``, our code):

1. optional vocal separation (a :mod:`app.data.preprocess.separate` engine, demucs by default);
   the accompaniment is kept to mix back at the end;
2. the vocals at the model's rate are cut at silences (``slice_db``) and every voiced stretch
   longer than ``max_slice_seconds`` into overlapping pieces (:mod:`app.audio.chunks`), each padded
   with ``pad_seconds`` of silence: the model never sees more than one piece at a time;
3. first pass, per piece: f0 with the chosen tracker, transposed. The voiced pitch of the whole
   song is then checked against what the model can sing (its embedding covers 50-1100 Hz; the
   speaker's training range from ``pitch_report.json`` when it is beside the model or config)
   and an out-of-range input is refused with the range and a suggested transpose;
4. second pass, per piece: content features (16 kHz) stretched to the f0 frames, optional cluster
   blend toward the speaker's training features, volume when the model has a volume embedding,
   the synthesizer (speaker or speaker mix, noise scale, seed, optional predicted f0), the
   loudness envelope mix; pieces are cross-faded back together and the gaps stay silent.

CLI: ``python -m app.infer.svc INPUT -m G_800.pth [-c config.json] [-s speaker] [-t 12] [-o out.wav] ...``
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from app.audio.chunks import OverlapAdd, Piece, plan_pieces
from app.audio.io import SILENCE_PEAK, AudioError, load_audio, resample, save_audio
from app.audio.pitch import F0_MAX, TRACKERS, extract, transpose
from app.audio.pitch_range import REPORT_FILE, PitchRange, measure, note_name, read_report, semitones
from app.audio.slicer import SlicerOptions, find_segments
from app.audio.volume import frame_volume, match_loudness
from app.devices import pick_device
from app.models.encoders.content import SAMPLE_RATE as CONTENT_SR
from app.models.encoders.content import (
    align_frames,
    encoder_folder,
    load_content_encoder,
    missing_encoder_message,
)
from app.models.svc.retrieval import blend
from app.models.svc.synthesizer import DEFAULT_NOISE_SCALE, DEFAULT_SEED
from app.models.upstream.svc.checkpoint import SvcCheckpoint, load_svc
from app.models.upstream.svc.features import CLUSTER_FILE, read_cluster

log = logging.getLogger(__name__)

RANGE_MARGIN_ST = 5.0  # semitones outside the speaker's trained 5-95 % range that still pass
HIGH_SHARE = 0.05  # share of voiced frames above F0_MAX that makes an input out of range
# 4.1's inference slicer (inference/slicer.py defaults): long clips, short pauses cut, silence kept.
INFER_SLICER = {"min_length_ms": 5000, "min_interval_ms": 300, "hop_ms": 20, "max_sil_kept_ms": 5000}
# progress(fraction in [0, 1], message)
Progress = Callable[[float, str], None]


class SvcInputError(ValueError):
    """The input or the options cannot be converted; the message says why and what to change."""


class SvcModelError(ValueError):
    """A model, config or helper file is missing or unusable; the message names it."""


@dataclass(frozen=True)
class SvcRequest:
    """One conversion (see module doc for the steps)."""

    audio: Path | bytes  # the song or speech, any readable format
    model: Path  # G_*.pth (training or compressed)
    config: Path | None = None  # config.json; None = the one beside the model
    speaker: str | None = None  # a name of config.json's spk map; None = the first
    mix: tuple[
        tuple[str, float], ...
    ] = ()  # speaker mix (name, weight) instead of one speaker; weights normalised
    transpose: float = 0.0  # semitones (12 = an octave up)
    f0_method: str = "pm"  # app.audio.pitch tracker id (4.1's inference default)
    f0_threshold: float | None = None  # tracker's voicing threshold (None: its default)
    auto_f0: bool = False  # let the model predict the pitch (speech only; makes singing go off-key)
    noise_scale: float = DEFAULT_NOISE_SCALE  # prior noise (4.1 default 0.4)
    seed: int = DEFAULT_SEED  # noise seed (4.1's fixed 52468)
    slice_db: float = -40.0  # silence threshold for slicing, dBFS (4.1 -40; -30 noisy, -50 breathy)
    pad_seconds: float = 0.5  # silence added around each piece (4.1 default) against edge noise
    max_slice_seconds: float = 30.0  # longest piece the model gets (an unbroken song is split)
    crossfade_seconds: float = 0.1  # overlap of consecutive pieces of a long stretch
    cluster_ratio: float = 0.0  # 0..1 pull toward the speaker's training features (needs the cluster model)
    cluster_model: Path | None = None  # kmeans_10000.pt; None = beside the model
    loudness_mix: float = 1.0  # 1 = the output's own loudness, 0 = follow the input's envelope
    check_range: bool = True  # refuse inputs far outside the speaker's trained pitch range
    separate: bool = False  # separate the vocals first
    mix_accompaniment: bool = False  # with separate: mix the accompaniment back into the output
    separator_engine: str = "demucs"  # app.data.preprocess.separate engine
    separator_model: str = "htdemucs"  # its model


@dataclass(frozen=True)
class SvcResult:
    """A converted song."""

    audio: np.ndarray  # (T,) converted voice, or (T, C) with the accompaniment mixed back; float32
    sample_rate: int  # Hz (the model's)
    speaker: str  # the speaker (or "mix")
    slices: int  # pieces the model converted
    longest_piece_seconds: float  # longest input one model call got (bounded by max_slice_seconds + 2 pads)
    input_pitch: PitchRange | None  # voiced pitch of the input before transposing
    vocals: np.ndarray | None = None  # converted vocals alone (when the output has the accompaniment)
    warnings: tuple[str, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage


@lru_cache(maxsize=4)
def _cached_model(model: str, config: str, _stamp: tuple[int, int], device: str) -> SvcCheckpoint:
    return load_svc(model, config, purpose="inference", device=device)


@lru_cache(maxsize=4)
def _cached_cluster(path: str, _stamp: int) -> dict[str, np.ndarray]:
    return read_cluster(Path(path))


def _stamp(path: Path) -> int:
    return Path(path).stat().st_mtime_ns


def load_model(model: Path, config: Path | None, device: str | torch.device) -> SvcCheckpoint:
    """The model + config (cached per files and device; a changed file is reloaded)."""
    model = Path(model)
    config = Path(config) if config is not None else model.parent / "config.json"
    for path, what in ((model, "model file"), (config, "config.json")):
        if not path.is_file():
            raise SvcModelError(
                f"{path}: no such {what}; choose an existing G_*.pth and the config.json it was trained with"
            )
    return _cached_model(
        str(model.resolve()), str(config.resolve()), (_stamp(model), _stamp(config)), str(device)
    )


def default_output_name(source: str, transpose_st: float, speaker: str, ext: str = "wav") -> str:
    """4.1's result name: ``<input>_<transpose>key_<speaker>.<ext>``."""
    stem = Path(source).stem or "input"
    return f"{stem}_{transpose_st:g}key_{speaker}.{ext}"


class SVCPipeline:
    """Loads what a request needs (cached) and converts (see module doc)."""

    def __init__(
        self, pretrained_root: Path, *, device: str = "auto", encoder_dir: Path | None = None
    ) -> None:
        self.pretrained_root = Path(pretrained_root)
        self.device = pick_device(device)
        self.encoder_dir = encoder_dir

    # -- resources -------------------------------------------------------------------------
    def _encoder(self, name: str):  # type: ignore[no-untyped-def]
        folder = self.encoder_dir
        if folder is None:
            message = missing_encoder_message(name, self.pretrained_root)
            if message:
                raise SvcModelError(message)
            folder = encoder_folder(name, self.pretrained_root)
        return load_content_encoder(name, Path(folder), str(self.device))

    def _speaker(
        self, ckpt: SvcCheckpoint, request: SvcRequest
    ) -> tuple[str, int | None, torch.Tensor | None]:
        spk = ckpt.config.spk or {"0": 0}
        if request.mix:
            weights = torch.zeros(ckpt.model.cfg.n_speakers)
            for name, w in request.mix:
                if name not in spk:
                    raise SvcInputError(f"speaker {name!r} is not in this model; it has {', '.join(spk)}")
                if w < 0:
                    raise SvcInputError(f"mix weight of {name!r} is negative ({w}); use weights >= 0")
                weights[spk[name]] += w
            if weights.sum() <= 0:
                raise SvcInputError("the speaker mix weights sum to 0; give at least one positive weight")
            main = max(request.mix, key=lambda item: item[1])[0]
            return main, None, weights / weights.sum()
        name = request.speaker if request.speaker not in (None, "") else min(spk, key=spk.get)
        if name not in spk:
            raise SvcInputError(f"speaker {name!r} is not in this model; it has {', '.join(spk)}")
        return name, spk[name], None

    def _cluster(self, request: SvcRequest, speaker: str) -> np.ndarray | None:
        if request.cluster_ratio <= 0:
            return None
        path = Path(request.cluster_model or Path(request.model).parent / CLUSTER_FILE)
        if not path.is_file():
            raise SvcModelError(
                f"cluster ratio {request.cluster_ratio} needs a cluster model, and {path} does not exist; build it "
                "with `python -m app.data.preprocess.svc.cluster EXPERIMENT` or set the ratio to 0"
            )
        centers = _cached_cluster(str(path.resolve()), _stamp(path))
        if speaker not in centers:
            raise SvcModelError(
                f"{path} has no centres for speaker {speaker!r} (it has {', '.join(centers)})"
            )
        return centers[speaker]

    def _separate(self, request: SvcRequest, sr: int) -> tuple[np.ndarray, np.ndarray]:
        """(vocals mono, accompaniment (T, C)) at ``sr``."""
        from app.data.preprocess.separate import (
            ACCOMPANIMENT,
            SEPARATORS,
            VOCALS,
            SeparateOptions,
            SeparationError,
        )

        try:
            options = SeparateOptions(
                engine=request.separator_engine, model=request.separator_model, device=str(self.device)
            )
            if options.engine not in SEPARATORS:
                raise SvcInputError(
                    f"unknown separation engine {options.engine!r}; choose one of {', '.join(SEPARATORS)}"
                )
            separator = SEPARATORS[options.engine](options, self.pretrained_root)
            mix = load_audio(request.audio, separator.samplerate, mono=False, allow_silent=True)
            if mix.ndim == 1:
                mix = mix[:, None]
            if mix.shape[1] != separator.channels:
                mix = np.repeat(mix.mean(axis=1, keepdims=True), separator.channels, axis=1)
            stems = separator.separate(mix)
        except SeparationError as exc:
            raise SvcModelError(f"vocal separation failed: {exc}") from exc
        vocals = resample(np.ascontiguousarray(stems[VOCALS].mean(axis=1)), separator.samplerate, sr)
        accompaniment = resample(np.ascontiguousarray(stems[ACCOMPANIMENT]), separator.samplerate, sr)
        return vocals, accompaniment

    # -- conversion ------------------------------------------------------------------------
    def convert(self, request: SvcRequest, progress: Progress | None = None) -> SvcResult:
        """Convert ``request.audio`` (module doc); raises SvcInputError / SvcModelError / AudioError."""
        report = progress or (lambda fraction, message: None)
        timings: dict[str, float] = {}
        t0 = time.monotonic()
        if request.f0_method not in TRACKERS:
            raise SvcInputError(
                f"unknown f0 method {request.f0_method!r}; choose one of {', '.join(TRACKERS)}"
            )
        if request.max_slice_seconds <= 2 * request.crossfade_seconds or request.max_slice_seconds < 1.0:
            raise SvcInputError("max slice length must be at least 1 s and longer than twice the cross-fade")
        ckpt = load_model(request.model, request.config, self.device)
        cfg = ckpt.config
        sr, hop = cfg.data.sampling_rate, ckpt.model.hop_length
        speaker, sid, mix = self._speaker(ckpt, request)
        centers = self._cluster(request, speaker)
        encoder = self._encoder(cfg.speech_encoder)
        if encoder.dim != ckpt.model.cfg.ssl_dim:
            raise SvcModelError(
                f"the {cfg.speech_encoder} encoder gives {encoder.dim}-d features, the model expects {ckpt.model.cfg.ssl_dim}"
            )
        timings["load"] = time.monotonic() - t0
        accompaniment = None
        if request.separate:
            report(0.0, "separating vocals")
            t1 = time.monotonic()
            wav, accompaniment = self._separate(request, sr)
            timings["separate"] = time.monotonic() - t1
        else:
            wav = load_audio(request.audio, sr, allow_silent=True)
        source_name = "the separated vocals" if request.separate else "the input"
        if float(np.abs(wav).max(initial=0.0)) < SILENCE_PEAK:
            raise SvcInputError(f"{source_name} is silent (peak below -80 dBFS): there is nothing to convert")
        pieces = self._pieces(wav, sr, hop, request)
        if not pieces:
            raise SvcInputError(
                f"{source_name} has no sound above the slicing threshold of {request.slice_db} dB: nothing to convert"
            )
        pad = round(request.pad_seconds * sr) // hop * hop
        tracks, voiced = [], []
        t1 = time.monotonic()
        for i, piece in enumerate(pieces):
            padded = np.pad(wav[piece.start : piece.end], (pad, pad))
            f0, uv = extract(padded, sr, hop, request.f0_method, threshold=request.f0_threshold, device=str(self.device),
                             rmvpe_path=self.pretrained_root / "rmvpe.pt")  # fmt: skip
            tracks.append((f0, uv))
            voiced.append(f0[uv > 0])
            report(0.3 * (i + 1) / len(pieces), f"pitch {i + 1}/{len(pieces)}")
        timings["f0"] = time.monotonic() - t1
        all_voiced = np.concatenate(voiced)
        input_pitch = measure(all_voiced, None, hop / sr)
        warnings = self._check_pitch(request, input_pitch, all_voiced, speaker, source_name)
        out = OverlapAdd(len(wav))
        t1 = time.monotonic()
        for i, (piece, (f0, uv)) in enumerate(zip(pieces, tracks, strict=True)):
            audio = self._convert_piece(
                np.pad(wav[piece.start : piece.end], (pad, pad)),
                f0,
                uv,
                request,
                ckpt,
                encoder,
                sid,
                mix,
                centers,
            )
            out.add(piece, audio[pad : pad + piece.length])
            report(0.3 + 0.7 * (i + 1) / len(pieces), f"converting {i + 1}/{len(pieces)}")
        timings["convert"] = time.monotonic() - t1
        vocals = out.out
        result_audio, separate_vocals = vocals, None
        if accompaniment is not None and request.mix_accompaniment:
            n = min(len(vocals), len(accompaniment))
            mixed = vocals[:n, None] + accompaniment[:n]
            peak = float(np.abs(mixed).max(initial=0.0))
            result_audio = mixed / peak * 0.99 if peak > 0.99 else mixed
            separate_vocals = vocals
        return SvcResult(
            audio=result_audio.astype(np.float32),
            sample_rate=sr,
            speaker="mix" if mix is not None else speaker,
            slices=len(pieces),
            longest_piece_seconds=max(p.length + 2 * pad for p in pieces) / sr,
            input_pitch=input_pitch,
            vocals=separate_vocals,
            warnings=tuple(warnings),
            timings=timings,
        )

    @staticmethod
    def _pieces(wav: np.ndarray, sr: int, hop: int, request: SvcRequest) -> list[Piece]:
        """Voiced stretches (4.1's inference slicer settings) cut to at most ``max_slice_seconds``."""
        options = SlicerOptions(threshold_db=request.slice_db, **INFER_SLICER)
        segments = find_segments(wav, sr, options)
        overlap = round(request.crossfade_seconds * sr)
        return plan_pieces(
            segments, round(request.max_slice_seconds * sr), overlap, align=hop, total=len(wav)
        )

    def _check_pitch(
        self, request: SvcRequest, pitch: PitchRange | None, voiced: np.ndarray, speaker: str, what: str
    ) -> list[str]:
        """Refuse inputs the model cannot sing (module doc, step 3); returns warnings."""
        if request.auto_f0:
            return []
        if pitch is None:
            raise SvcInputError(
                f"no pitch found in {what} with the {request.f0_method} tracker: is it a singing voice? Separate the "
                "vocals first, try another f0 method, or turn on automatic f0 for speech"
            )
        shifted = transpose(voiced, request.transpose)
        high = float(np.mean(shifted > F0_MAX))
        if high > HIGH_SHARE:
            need = -semitones(F0_MAX, float(np.percentile(shifted, 100 * (1 - HIGH_SHARE))))
            raise SvcInputError(
                f"after transposing by {request.transpose:+g} semitones, {100 * high:.0f} % of the voiced frames are "
                f"above {F0_MAX:.0f} Hz, the top of what so-vits-svc models can sing (their pitch embedding covers "
                f"50-{F0_MAX:.0f} Hz); transpose by at most {request.transpose + np.floor(need):+g} semitones"
            )
        trained = self._trained_range(request).get(speaker)
        if trained is None:
            return []
        median = pitch.median * 2 ** (request.transpose / 12)
        low, top = trained.p5 * 2 ** (-RANGE_MARGIN_ST / 12), trained.p95 * 2 ** (RANGE_MARGIN_ST / 12)
        if low <= median <= top:
            return []
        suggestion = round(semitones(pitch.median, trained.median))
        message = (
            f"{what} sits at a median of {median:.0f} Hz ({note_name(median)}) after transposing by "
            f"{request.transpose:+g} semitones, but speaker {speaker!r} was trained on {trained.describe()}; "
            f"transpose by about {suggestion:+d} semitones"
        )
        if request.check_range:
            raise SvcInputError(message + " (or turn off the range check to convert anyway)")
        return [message]

    def _trained_range(self, request: SvcRequest) -> dict[str, PitchRange]:
        for folder in (Path(request.model).parent, Path(request.config).parent if request.config else None):
            if folder is not None and (folder / REPORT_FILE).is_file():
                return read_report(folder / REPORT_FILE)
        return {}

    def _convert_piece(self, wav: np.ndarray, f0: np.ndarray, uv: np.ndarray, request: SvcRequest, ckpt: SvcCheckpoint,
                       encoder, sid: int | None, mix: torch.Tensor | None, centers: np.ndarray | None) -> np.ndarray:  # fmt: skip
        """One padded piece (N,) at the model's rate -> converted audio (N,)."""
        model, cfg = ckpt.model, ckpt.config
        sr, hop = cfg.data.sampling_rate, model.hop_length
        n_frames = len(f0)
        f0_t = torch.from_numpy(np.asarray(transpose(f0, request.transpose), dtype=np.float32))[None]
        content = encoder(torch.from_numpy(resample(wav, sr, CONTENT_SR)))  # (1, C, T50)
        content = align_frames(content[0], n_frames, cfg.data.unit_interpolate_mode)
        if centers is not None:
            content = blend(content, centers, request.cluster_ratio)
        vol = frame_volume(wav, hop)[None] if model.cfg.vol_embedding else None
        out = model.infer(
            content[None], f0_t, torch.from_numpy(uv)[None], sid=sid, mix=mix, noise_scale=request.noise_scale,
            seed=request.seed, predict_f0=request.auto_f0, vol=vol,
        )  # fmt: skip
        audio = out.audio[0, 0].cpu().numpy()
        audio = np.pad(audio, (0, max(0, len(wav) - len(audio))))[: len(wav)]
        if request.loudness_mix != 1.0:
            audio = match_loudness(wav, audio, sr, request.loudness_mix)
        return audio


# -- CLI ------------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    d = SvcRequest(audio=b"", model=Path())
    p = argparse.ArgumentParser(
        prog="python -m app.infer.svc", description="Convert a song to a trained so-vits-svc voice."
    )
    p.add_argument("input", type=Path, help="song or speech (any readable audio)")
    p.add_argument("-m", "--model", type=Path, required=True, help="G_*.pth or compressed model")
    p.add_argument("-c", "--config", type=Path, help="config.json (default: beside the model)")
    p.add_argument("-s", "--speaker", help="speaker name (default: the first)")
    p.add_argument("--mix", nargs="+", metavar="NAME=WEIGHT", help="speaker mix instead of one speaker")
    p.add_argument("-t", "--transpose", type=float, default=0.0, help="semitones (12 = octave up)")
    p.add_argument(
        "-f0p", "--f0", default=d.f0_method, choices=sorted(TRACKERS), help="f0 tracker (default %(default)s)"
    )
    p.add_argument("-a", "--auto-f0", action="store_true", help="predict f0 (speech only)")
    p.add_argument("-ns", "--noise-scale", type=float, default=d.noise_scale)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("-sd", "--slice-db", type=float, default=d.slice_db)
    p.add_argument("-p", "--pad-seconds", type=float, default=d.pad_seconds)
    p.add_argument("--max-slice", type=float, default=d.max_slice_seconds, help="longest piece in seconds")
    p.add_argument(
        "--crossfade", type=float, default=d.crossfade_seconds, help="cross-fade between pieces, seconds"
    )
    p.add_argument("-cr", "--cluster-ratio", type=float, default=0.0)
    p.add_argument("-cm", "--cluster-model", type=Path)
    p.add_argument("-lea", "--loudness-mix", type=float, default=1.0)
    p.add_argument(
        "--no-range-check", action="store_true", help="convert even far outside the trained pitch range"
    )
    p.add_argument("--separate", action="store_true", help="separate the vocals first (demucs)")
    p.add_argument(
        "--mix-accompaniment", action="store_true", help="with --separate: mix the accompaniment back"
    )
    p.add_argument(
        "-o", "--output", type=Path, help="output file (default: results/<input>_<t>key_<speaker>.wav)"
    )
    p.add_argument("--pretrained", type=Path, help="pretrained_models folder (default from STUDIO_HOME)")
    p.add_argument("--device", default="auto")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from app.settings import load_settings

    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = load_settings()
    try:
        mix = tuple(
            (name, float(weight)) for name, _, weight in (item.partition("=") for item in args.mix or ())
        )
        request = SvcRequest(
            audio=args.input, model=args.model, config=args.config, speaker=args.speaker, mix=mix,
            transpose=args.transpose, f0_method=args.f0, auto_f0=args.auto_f0, noise_scale=args.noise_scale,
            seed=args.seed, slice_db=args.slice_db, pad_seconds=args.pad_seconds, max_slice_seconds=args.max_slice,
            crossfade_seconds=args.crossfade, cluster_ratio=args.cluster_ratio, cluster_model=args.cluster_model,
            loudness_mix=args.loudness_mix, check_range=not args.no_range_check, separate=args.separate,
            mix_accompaniment=args.mix_accompaniment,
        )  # fmt: skip
        pipeline = SVCPipeline(
            args.pretrained or settings.pretrained,
            device=args.device if args.device != "auto" else settings.device,
        )
        result = pipeline.convert(request)
    except (SvcInputError, SvcModelError, AudioError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    output = args.output or settings.home / "output" / "svc_results" / default_output_name(
        os.fspath(args.input), args.transpose, result.speaker
    )
    save_audio(output, result.audio, result.sample_rate)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
