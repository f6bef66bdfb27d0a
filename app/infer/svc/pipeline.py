"""The singing voice conversion pipeline: ``SVCPipeline(pretrained_root).convert(SvcRequest(...))``.

Steps (so-vits-svc 4.1 ``inference/infer_tool.py``, our code):

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
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from app.audio.chunks import OverlapAdd, Piece, plan_pieces
from app.audio.io import SILENCE_PEAK, load_audio, resample
from app.audio.pitch import F0_MAX, TRACKERS, extract, transpose
from app.audio.pitch_range import REPORT_FILE, PitchRange, measure, note_name, read_report, semitones
from app.audio.slicer import SlicerOptions, find_segments
from app.audio.volume import frame_volume, match_loudness
from app.devices import pick_device
from app.infer.decoder import CastNSF, FixedWindowNSF, fixed_windows_pay
from app.infer.precision import plan_for
from app.infer.request import PRECISIONS
from app.infer.svc.request import Progress, SvcInputError, SvcModelError, SvcRequest, SvcResult
from app.messages import Message
from app.models.encoders.content import SAMPLE_RATE as CONTENT_SR
from app.models.encoders.content import (
    ContentEncoder,
    align_frames,
    encoder_folder,
    load_content_encoder,
    missing_encoder_message,
)
from app.models.svc.retrieval import blend
from app.models.upstream.svc.checkpoint import SvcCheckpoint, load_svc
from app.models.upstream.svc.features import CLUSTER_FILE, read_cluster

log = logging.getLogger(__name__)

RANGE_MARGIN_ST = 5.0  # semitones outside the speaker's trained 5-95 % range that still pass
HIGH_SHARE = 0.05  # share of voiced frames above F0_MAX that makes an input out of range
# 4.1's inference slicer (inference/slicer.py defaults): long clips, short pauses cut, silence kept.
INFER_SLICER = {"min_length_ms": 5000, "min_interval_ms": 300, "hop_ms": 20, "max_sil_kept_ms": 5000}


@dataclass(frozen=True)
class Voice:
    """What one request loaded: the model, who sings, and the helpers its pieces share."""

    ckpt: SvcCheckpoint
    speaker: str  # the named speaker (the heaviest one of a mix)
    sid: int | None  # its row of the speaker embedding; None with a mix
    mix: torch.Tensor | None  # (n_speakers,) normalised weights, or None
    centers: np.ndarray | None  # (K, C) cluster centres of the speaker when the ratio is > 0
    encoder: ContentEncoder


def _no_speaker(name: str, speakers: dict[str, int]) -> Message:
    """The refusal of a speaker the model does not have."""
    template = "speaker {name!r} is not in this model; it has {speakers}"
    return Message("svc.conv.no_speaker", template, name=name, speakers=", ".join(speakers))


@lru_cache(maxsize=4)
def _cached_model(
    model: str,
    config: str,
    _stamp: tuple[int, int],
    device: str,
    dtype: torch.dtype = torch.float32,
    int8: bool = False,
) -> SvcCheckpoint:
    ckpt = load_svc(model, config, purpose="inference", device=device)
    if dtype != torch.float32:  # its own copy (the cache key holds the dtype): fp32 users keep theirs
        cfg = ckpt.model.cfg
        if fixed_windows_pay(dtype, torch.device(device), cfg):  # one or two shapes, built now
            ckpt.model.dec = FixedWindowNSF(ckpt.model.dec, cfg, dtype=dtype, int8=int8)
            ckpt.model.dec.warm_up()
        else:
            ckpt.model.dec = CastNSF(ckpt.model.dec, dtype)
    return ckpt


@lru_cache(maxsize=4)
def _cached_cluster(path: str, _stamp: int) -> dict[str, np.ndarray]:
    return read_cluster(Path(path))


def _stamp(path: Path) -> int:
    return Path(path).stat().st_mtime_ns


def load_model(
    model: Path,
    config: Path | None,
    device: str | torch.device,
    dtype: torch.dtype = torch.float32,
    int8: bool = False,
) -> SvcCheckpoint:
    """The model + config, its decoder in ``dtype`` (with ``int8``, its residual blocks' convolutions
    in int8 where the decoder runs in fixed bf16 windows; cached per files, device, dtype and
    ``int8``; a changed file is reloaded)."""
    model = Path(model)
    config = Path(config) if config is not None else model.parent / "config.json"
    if not model.is_file():
        template = (
            "{path}: no such model file; choose an existing G_*.pth and the config.json it was trained with"
        )
        raise SvcModelError(Message("svc.conv.no_model", template, path=str(model)))
    if not config.is_file():
        template = (
            "{path}: no such config.json; choose an existing G_*.pth and the config.json it was trained with"
        )
        raise SvcModelError(Message("svc.conv.no_config", template, path=str(config)))
    stamps = (_stamp(model), _stamp(config))
    return _cached_model(str(model.resolve()), str(config.resolve()), stamps, str(device), dtype, int8)


class SVCPipeline:
    """Loads what a request needs (cached) and converts (see module doc)."""

    def __init__(
        self, pretrained_root: Path, *, device: str = "auto", encoder_dir: Path | None = None
    ) -> None:
        self.pretrained_root = Path(pretrained_root)
        self.device = pick_device(device)
        self.encoder_dir = encoder_dir

    # -- resources -------------------------------------------------------------------------
    def _encoder(self, name: str, dtype: torch.dtype = torch.float32) -> ContentEncoder:
        folder = self.encoder_dir
        if folder is None:
            message = missing_encoder_message(name, self.pretrained_root)
            if message:
                raise SvcModelError(message)
            folder = encoder_folder(name, self.pretrained_root)
        return load_content_encoder(name, Path(folder), str(self.device), dtype)

    def _speaker(
        self, ckpt: SvcCheckpoint, request: SvcRequest
    ) -> tuple[str, int | None, torch.Tensor | None]:
        spk = ckpt.config.spk or {"0": 0}
        if request.mix:
            weights = torch.zeros(ckpt.model.cfg.n_speakers)
            for name, w in request.mix:
                if name not in spk:
                    raise SvcInputError(_no_speaker(name, spk))
                if w < 0:
                    template = "mix weight of {name!r} is negative ({weight}); use weights >= 0"
                    raise SvcInputError(Message("svc.conv.negative_mix", template, name=name, weight=w))
                weights[spk[name]] += w
            if weights.sum() <= 0:
                template = "the speaker mix weights sum to 0; give at least one positive weight"
                raise SvcInputError(Message("svc.conv.zero_mix", template))
            main = max(request.mix, key=lambda item: item[1])[0]
            return main, None, weights / weights.sum()
        name = request.speaker if request.speaker not in (None, "") else min(spk, key=spk.get)
        if name not in spk:
            raise SvcInputError(_no_speaker(name, spk))
        return name, spk[name], None

    def _cluster(self, request: SvcRequest, speaker: str) -> np.ndarray | None:
        if request.cluster_ratio <= 0:
            return None
        path = Path(request.cluster_model or Path(request.model).parent / CLUSTER_FILE)
        if not path.is_file():
            template = (
                "cluster ratio {ratio} needs a cluster model, and {path} does not exist; build it "
                "with `python -m app.data.preprocess.svc.cluster EXPERIMENT` or set the ratio to 0"
            )
            raise SvcModelError(
                Message("svc.conv.no_cluster", template, ratio=request.cluster_ratio, path=str(path))
            )
        centers = _cached_cluster(str(path.resolve()), _stamp(path))
        if speaker not in centers:
            template = "{path} has no centres for speaker {speaker!r} (it has {speakers})"
            fields = {"path": str(path), "speaker": speaker, "speakers": ", ".join(centers)}
            raise SvcModelError(Message("svc.conv.cluster_speaker", template, **fields))
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
                template = "unknown separation engine {engine!r}; choose one of {choices}"
                choices = ", ".join(SEPARATORS)
                raise SvcInputError(
                    Message("svc.conv.separator", template, engine=options.engine, choices=choices)
                )
            separator = SEPARATORS[options.engine](options, self.pretrained_root)
            mix = load_audio(request.audio, separator.samplerate, mono=False, allow_silent=True)
            if mix.ndim == 1:
                mix = mix[:, None]
            if mix.shape[1] != separator.channels:
                mix = np.repeat(mix.mean(axis=1, keepdims=True), separator.channels, axis=1)
            stems = separator.separate(mix)
        except SeparationError as exc:
            problem = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
            raise SvcModelError(
                Message("svc.conv.separation", "vocal separation failed: {problem}", problem=problem)
            ) from exc
        vocals = resample(np.ascontiguousarray(stems[VOCALS].mean(axis=1)), separator.samplerate, sr)
        accompaniment = resample(np.ascontiguousarray(stems[ACCOMPANIMENT]), separator.samplerate, sr)
        return vocals, accompaniment

    # -- conversion ------------------------------------------------------------------------
    def convert(self, request: SvcRequest, progress: Progress | None = None) -> SvcResult:
        """Convert ``request.audio`` (module doc); raises SvcInputError / SvcModelError / AudioError."""
        report = progress or (lambda fraction, message: None)
        timings: dict[str, float] = {}
        t0 = time.monotonic()
        voice = self.load_voice(request)
        sr, hop = voice.ckpt.config.data.sampling_rate, voice.ckpt.model.hop_length
        timings["load"] = time.monotonic() - t0
        wav, accompaniment = self._read_input(request, sr, report, timings)
        source_name = (
            Message("svc.conv.vocals", "the separated vocals")
            if request.separate
            else Message("svc.conv.input", "the input")
        )
        if float(np.abs(wav).max(initial=0.0)) < SILENCE_PEAK:
            template = "{what} is silent (peak below -80 dBFS): there is nothing to convert"
            raise SvcInputError(Message("svc.conv.silent", template, what=source_name))
        pieces = self._pieces(wav, sr, hop, request)
        if not pieces:
            template = "{what} has no sound above the slicing threshold of {db} dB: nothing to convert"
            raise SvcInputError(Message("svc.conv.no_sound", template, what=source_name, db=request.slice_db))
        pad = round(request.pad_seconds * sr) // hop * hop  # whole frames, so f0 and audio stay aligned
        t1 = time.monotonic()
        tracks = self._track_pitch(wav, pieces, pad, request, voice, report)
        timings["f0"] = time.monotonic() - t1
        all_voiced = np.concatenate([f0[uv > 0] for f0, uv in tracks])
        input_pitch = measure(all_voiced, None, hop / sr)
        warnings = self._check_pitch(request, input_pitch, all_voiced, voice.speaker, source_name)
        t1 = time.monotonic()
        out = OverlapAdd(len(wav))
        for i, (piece, (f0, uv)) in enumerate(zip(pieces, tracks, strict=True)):
            audio = self.convert_piece(
                np.pad(wav[piece.start : piece.end], (pad, pad)), f0, uv, request, voice
            )
            out.add(piece, audio[pad : pad + piece.length])
            step = Message("svc.progress.convert", "converting {done}/{total}", done=i + 1, total=len(pieces))
            report(0.3 + 0.7 * (i + 1) / len(pieces), step)
        timings["convert"] = time.monotonic() - t1
        result_audio, separate_vocals = _mix_back(out.out, accompaniment, request)
        return SvcResult(
            audio=result_audio.astype(np.float32),
            sample_rate=sr,
            speaker="mix" if voice.mix is not None else voice.speaker,
            slices=len(pieces),
            longest_piece_seconds=max(p.length + 2 * pad for p in pieces) / sr,
            input_pitch=input_pitch,
            vocals=separate_vocals,
            warnings=tuple(warnings),
            timings=timings,
        )

    def load_voice(self, request: SvcRequest) -> Voice:
        """Check the options, then load the model, speaker, cluster centres and content encoder
        (also what :class:`app.infer.svc.live.LiveConverter` converts its blocks with)."""
        if request.f0_method not in TRACKERS:
            template = "unknown f0 method {method!r}; choose one of {choices}"
            choices = ", ".join(TRACKERS)
            raise SvcInputError(
                Message("svc.conv.f0_method", template, method=request.f0_method, choices=choices)
            )
        if request.max_slice_seconds <= 2 * request.crossfade_seconds or request.max_slice_seconds < 1.0:
            template = "max slice length must be at least 1 s and longer than twice the cross-fade"
            raise SvcInputError(Message("svc.conv.slice", template))
        if request.precision not in PRECISIONS:
            template = "unknown precision {precision!r}; choose one of {choices}"
            choices = ", ".join(PRECISIONS)
            raise SvcInputError(
                Message("svc.conv.precision", template, precision=request.precision, choices=choices)
            )
        plan = plan_for(request.precision, self.device)
        low = plan.decoder  # bf16 where native, else float32
        ckpt = load_model(request.model, request.config, self.device, low, plan.decoder_int8)
        speaker, sid, mix = self._speaker(ckpt, request)
        centers = self._cluster(request, speaker)
        name = ckpt.config.speech_encoder
        encoder = self._encoder(name, low)
        if encoder.dim != ckpt.model.cfg.ssl_dim:
            template = "the {name} encoder gives {dim}-d features, the model expects {expected}"
            fields = {"name": name, "dim": encoder.dim, "expected": ckpt.model.cfg.ssl_dim}
            raise SvcModelError(Message("svc.conv.encoder_dim", template, **fields))
        return Voice(ckpt, speaker, sid, mix, centers, encoder)

    def _read_input(
        self, request: SvcRequest, sr: int, report: Progress, timings: dict[str, float]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(voice mono at ``sr``, accompaniment (T, C) or None): the input, or its separated vocals."""
        if not request.separate:
            return load_audio(request.audio, sr, allow_silent=True), None
        report(0.0, Message("svc.progress.separate", "separating vocals"))
        t1 = time.monotonic()
        vocals, accompaniment = self._separate(request, sr)
        timings["separate"] = time.monotonic() - t1
        return vocals, accompaniment

    def _track_pitch(
        self,
        wav: np.ndarray,
        pieces: list[Piece],
        pad: int,
        request: SvcRequest,
        voice: Voice,
        report: Progress,
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """First pass (module doc, step 3): (f0, voiced flags) per padded piece, before transposing."""
        sr, hop = voice.ckpt.config.data.sampling_rate, voice.ckpt.model.hop_length
        tracks = []
        for i, piece in enumerate(pieces):
            padded = np.pad(wav[piece.start : piece.end], (pad, pad))
            f0, uv = extract(padded, sr, hop, request.f0_method, threshold=request.f0_threshold, device=str(self.device),
                             rmvpe_path=self.pretrained_root / "rmvpe.pt")  # fmt: skip
            tracks.append((f0, uv))
            report(
                0.3 * (i + 1) / len(pieces),
                Message("svc.progress.pitch", "pitch {done}/{total}", done=i + 1, total=len(pieces)),
            )
        return tracks

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
            template = (
                "no pitch found in {what} with the {method} tracker: is it a singing voice? Separate the "
                "vocals first, try another f0 method, or turn on automatic f0 for speech"
            )
            raise SvcInputError(Message("svc.pitch.none", template, what=what, method=request.f0_method))
        shifted = transpose(voiced, request.transpose)
        high = float(np.mean(shifted > F0_MAX))
        if high > HIGH_SHARE:
            need = -semitones(F0_MAX, float(np.percentile(shifted, 100 * (1 - HIGH_SHARE))))
            template = (
                "after transposing by {transpose:+g} semitones, {share:.0f} % of the voiced frames are above "
                "{top:.0f} Hz, the top of what so-vits-svc models can sing (their pitch embedding covers "
                "50-{top:.0f} Hz); transpose by at most {most:+g} semitones"
            )
            most = float(request.transpose + np.floor(need))
            raise SvcInputError(
                Message(
                    "svc.pitch.too_high",
                    template,
                    transpose=request.transpose,
                    share=100 * high,
                    top=F0_MAX,
                    most=most,
                )
            )
        trained = self._trained_range(request).get(speaker)
        if trained is None:
            return []
        median = pitch.median * 2 ** (request.transpose / 12)
        low, top = trained.p5 * 2 ** (-RANGE_MARGIN_ST / 12), trained.p95 * 2 ** (RANGE_MARGIN_ST / 12)
        if low <= median <= top:
            return []
        suggestion = round(semitones(pitch.median, trained.median))
        fields = dict(what=what, median=median, note=note_name(median), transpose=request.transpose,
                      speaker=speaker, trained=trained.describe(), suggestion=suggestion)  # fmt: skip
        template = (
            "{what} sits at a median of {median:.0f} Hz ({note}) after transposing by {transpose:+g} semitones, "
            "but speaker {speaker!r} was trained on {trained}; transpose by about {suggestion:+d} semitones"
        )
        if request.check_range:
            refused = template + " (or turn off the range check to convert anyway)"
            raise SvcInputError(Message("svc.pitch.out_of_range_refused", refused, **fields))
        return [Message("svc.pitch.out_of_range", template, **fields)]

    def _trained_range(self, request: SvcRequest) -> dict[str, PitchRange]:
        for folder in (Path(request.model).parent, Path(request.config).parent if request.config else None):
            if folder is not None and (folder / REPORT_FILE).is_file():
                return read_report(folder / REPORT_FILE)
        return {}

    def convert_piece(
        self, wav: np.ndarray, f0: np.ndarray, uv: np.ndarray, request: SvcRequest, voice: Voice
    ) -> np.ndarray:
        """One padded piece (N,) at the model's rate -> converted audio (N,)."""
        model, cfg = voice.ckpt.model, voice.ckpt.config
        sr, hop = cfg.data.sampling_rate, model.hop_length
        n_frames = len(f0)
        f0_t = torch.from_numpy(np.asarray(transpose(f0, request.transpose), dtype=np.float32))[None]
        content = voice.encoder(torch.from_numpy(resample(wav, sr, CONTENT_SR)))  # (1, C, T50)
        content = align_frames(content[0], n_frames, cfg.data.unit_interpolate_mode)
        if voice.centers is not None:
            content = blend(content, voice.centers, request.cluster_ratio)
        vol = frame_volume(wav, hop)[None] if model.cfg.vol_embedding else None
        out = model.infer(
            content[None], f0_t, torch.from_numpy(uv)[None], sid=voice.sid, mix=voice.mix, noise_scale=request.noise_scale,
            seed=request.seed, predict_f0=request.auto_f0, vol=vol,
        )  # fmt: skip
        audio = out.audio[0, 0].cpu().numpy()
        audio = np.pad(audio, (0, max(0, len(wav) - len(audio))))[: len(wav)]
        if request.loudness_mix != 1.0:
            audio = match_loudness(wav, audio, sr, request.loudness_mix)
        return audio


def _mix_back(
    vocals: np.ndarray, accompaniment: np.ndarray | None, request: SvcRequest
) -> tuple[np.ndarray, np.ndarray | None]:
    """(output, vocals alone or None): the accompaniment mixed back when asked, peaks kept below 0.99."""
    if accompaniment is None or not request.mix_accompaniment:
        return vocals, None
    n = min(len(vocals), len(accompaniment))
    mixed = vocals[:n, None] + accompaniment[:n]
    peak = float(np.abs(mixed).max(initial=0.0))
    return (mixed / peak * 0.99 if peak > 0.99 else mixed), vocals
