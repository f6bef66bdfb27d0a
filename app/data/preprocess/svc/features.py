"""SVC preprocessing: raw recordings -> a so-vits-svc 4.1 training tree with features.

Library: :func:`preprocess_svc` runs the whole step and returns a :class:`SvcPreprocessReport`;
:func:`extract_features` does one clip. CLI::

    python -m app.data.preprocess.svc.features EXPERIMENT_DIR [--raw DIR] [--f0 fcpe] [--encoder vec768l12]
        [--workers 2] [--vol-embedding] [--no-loudnorm] [--no-spec] [--device cpu]

Per clip (4.1 ``preprocess_hubert_f0.py``), beside ``dataset/44k/<speaker>/<clip>.wav``:
``.soft.pt`` content features from 16 kHz audio, ``.f0.npy`` (f0 + voiced flags at the model's hop),
``.spec.pt`` linear spectrogram (optional: the trainer computes it when absent), ``.vol.npy``
frame RMS when the config has ``vol_embedding``. A clip whose files all exist is skipped, so an
interrupted run continues where it stopped. Clips are processed in ``workers`` processes, each
loading the content encoder once.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import torch

from app.audio.io import AudioError, load_audio, resample
from app.audio.pitch import TRACKERS, PitchError, extract
from app.audio.pitch_range import REPORT_FILE, PitchRange, write_report
from app.audio.volume import frame_volume
from app.data.preprocess.svc.dataset import (
    ClipsResult,
    SkippedClip,
    make_config,
    prepare_clips,
    raw_speakers,
    speaker_pitch,
    split_lists,
)
from app.messages import Message
from app.models.encoders.content import (
    ENCODERS,
    SAMPLE_RATE,
    ContentEncoderError,
    encoder_folder,
    load_content_encoder,
    missing_encoder_message,
)
from app.models.svc.config import SvcConfig
from app.models.svc.losses import linear_spectrogram
from app.models.upstream.svc.checkpoint import read_config, write_config
from app.models.upstream.svc.features import feature_paths, write_content, write_f0, write_spec, write_volume
from app.paths import SvcExperiment

log = logging.getLogger(__name__)

DEFAULT_F0 = "fcpe"  # weights ship with torchfcpe; 4.1 defaults to rmvpe, which needs a download
# progress(stage, done, total): stage is "clips" (resampling) or "features"
StageProgress = Callable[[str, int, int], None]


class SvcPreprocessError(RuntimeError):
    """Preprocessing cannot run; the message says what is missing or wrong."""


@dataclass(frozen=True)
class SvcPreprocessOptions:
    """How to preprocess; UI and CLI build this."""

    pretrained_root: Path  # pretrained_models/ (content encoder, rmvpe weights)
    speech_encoder: str = "vec768l12"  # content encoder name (app.models.encoders.content.ENCODERS)
    encoder_dir: Path | None = None  # its transformers folder; None = the standard one under pretrained_root
    f0_method: str = DEFAULT_F0  # app.audio.pitch.TRACKERS id
    loudnorm: bool = True  # peak-normalise clips to full scale (4.1's default)
    vol_embedding: bool = False  # train with the volume embedding (+ 4.1's volume augmentation)
    write_spec: bool = True  # store .spec.pt (saves the trainer computing it every epoch)
    val_per_speaker: int = 2
    seed: int = 1234
    workers: int = 1  # feature extraction processes
    device: str = "cpu"  # device of the content encoder and neural f0 trackers
    template: SvcConfig | None = None  # config.json template (None: 4.1's, widths from the encoder)


@dataclass(frozen=True)
class FeatureJob:
    """What a worker needs for one clip (picklable, sent to worker processes)."""

    sampling_rate: int
    hop_length: int
    config: SvcConfig  # data section drives the spectrogram
    encoder: str
    encoder_dir: Path
    f0_method: str
    pretrained_root: Path
    write_spec: bool
    volume: bool
    device: str


@dataclass(frozen=True)
class FeatureResult:
    """One clip's feature extraction."""

    clip: Path
    written: bool  # False: every file was already there
    error: str = ""  # why it failed ("" when it did not)


@dataclass(frozen=True)
class SvcPreprocessReport:
    """What :func:`preprocess_svc` did."""

    experiment: Path  # the experiment folder
    speakers: dict[str, int]  # spk map written to config.json
    train: int  # clips in filelists/train.txt
    val: int  # clips in filelists/val.txt
    clips: ClipsResult  # resampling outcome (written, reused, skipped)
    features_written: int  # clips whose features this run extracted
    features_reused: int  # clips whose features were already there
    failed: tuple[FeatureResult, ...] = ()  # clips whose features failed
    warnings: tuple[str, ...] = ()  # split warnings (speakers with few clips)
    pitch: dict[str, PitchRange] = field(default_factory=dict)  # per speaker

    def summary(self) -> str:
        """A few Markdown lines for the UI and the CLI."""
        c = self.clips
        lines = [
            f"**{self.train + self.val}** clips of {len(self.speakers)} speaker(s) in `{self.experiment}`: "
            f"{self.train} train, {self.val} validation ({c.written} new, {c.reused} kept from before)",
            f"features: {self.features_written} extracted, {self.features_reused} already there",
        ]
        lines += [f"- skipped `{s.source.name}`: {s.reason}" for s in c.skipped]
        lines += [f"- failed `{f.clip.name}`: {f.error}" for f in self.failed]
        lines += [f"- {w}" for w in self.warnings]
        if self.pitch:
            lines.append("\npitch range per speaker (pick a transpose that brings a song near it):")
            lines += [f"- {name}: {r.describe()}" for name, r in sorted(self.pitch.items())]
        return "\n".join(lines)


# -- one clip -------------------------------------------------------------------------------------------
def _outputs(clip: Path, job: FeatureJob) -> list[Path]:
    paths = feature_paths(clip)
    wanted = [paths["content"], paths["f0"]]
    if job.write_spec:
        wanted.append(paths["spec"])
    if job.volume:
        wanted.append(paths["volume"])
    return wanted


def extract_features(clip: Path, job: FeatureJob) -> FeatureResult:
    """Write the missing feature files of one clip; never raises for a bad clip."""
    clip = Path(clip)
    if all(p.is_file() for p in _outputs(clip, job)):
        return FeatureResult(clip, written=False)
    paths = feature_paths(clip)
    try:
        wav = load_audio(clip, job.sampling_rate)
        if not paths["f0"].is_file():
            f0, uv = extract(
                wav, job.sampling_rate, job.hop_length, job.f0_method,
                device=job.device, rmvpe_path=job.pretrained_root / "rmvpe.pt",
            )  # fmt: skip
            write_f0(paths["f0"], f0, uv)
        if not paths["content"].is_file():
            encoder = load_content_encoder(job.encoder, job.encoder_dir, job.device)
            wav16k = torch.from_numpy(resample(wav, job.sampling_rate, SAMPLE_RATE))
            write_content(paths["content"], encoder(wav16k))
        audio = torch.from_numpy(wav)
        if job.write_spec and not paths["spec"].is_file():
            write_spec(paths["spec"], linear_spectrogram(audio, job.config.data)[0])
        if job.volume and not paths["volume"].is_file():
            write_volume(paths["volume"], frame_volume(audio, job.hop_length))
    except (AudioError, PitchError, ContentEncoderError, OSError) as exc:
        return FeatureResult(clip, written=False, error=str(exc))
    return FeatureResult(clip, written=True)


def extract_all(
    clips: Sequence[Path],
    job: FeatureJob,
    *,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> list[FeatureResult]:
    """Features for every clip, in ``workers`` processes (spawned: safe inside a threaded server)."""
    total = len(clips)
    results: list[FeatureResult] = []

    def finished(result: FeatureResult) -> None:
        results.append(result)
        if result.error:
            log.warning("features failed for %s: %s", result.clip, result.error)
        if progress is not None:
            progress(len(results), total)

    todo = [c for c in clips if not all(p.is_file() for p in _outputs(c, job))]
    for clip in clips:
        if clip not in todo:
            finished(FeatureResult(clip, written=False))
    if workers <= 1 or len(todo) <= 1:
        for clip in todo:
            finished(extract_features(clip, job))
        return results
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=ctx) as pool:
        pending: set[Future[FeatureResult]] = {pool.submit(extract_features, c, job) for c in todo}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                finished(fut.result())
    return results


# -- the whole step ---------------------------------------------------------------------------------------
def check_requirements(options: SvcPreprocessOptions) -> Path:
    """The content encoder folder to use; raises with the download command when it is missing."""
    if options.f0_method not in TRACKERS:
        template = "unknown f0 method {method!r}; choose one of {choices}"
        message = Message("svcprep.err.f0", template, method=options.f0_method, choices=", ".join(TRACKERS))
        raise SvcPreprocessError(message)
    if options.f0_method == "rmvpe" and not (options.pretrained_root / "rmvpe.pt").is_file():
        template = (
            "f0 method rmvpe needs {file}: run `python tools/download_models.py rmvpe`, or choose fcpe "
            "(weights bundled) or pm"
        )
        raise SvcPreprocessError(
            Message("svcprep.err.rmvpe", template, file=str(options.pretrained_root / "rmvpe.pt"))
        )
    if options.speech_encoder not in ENCODERS:
        template = "unknown content encoder {encoder!r}; choose one of {choices}"
        message = Message(
            "svcprep.err.encoder", template, encoder=options.speech_encoder, choices=", ".join(ENCODERS)
        )
        raise SvcPreprocessError(message)
    if options.encoder_dir is not None:
        if not (options.encoder_dir / "config.json").is_file():
            template = "{folder}: no content encoder here (config.json missing)"
            raise SvcPreprocessError(
                Message("svcprep.err.no_encoder", template, folder=str(options.encoder_dir))
            )
        return options.encoder_dir
    message = missing_encoder_message(options.speech_encoder, options.pretrained_root)
    if message:
        raise SvcPreprocessError(message)
    return encoder_folder(options.speech_encoder, options.pretrained_root)


def _config_for(
    experiment: SvcExperiment, speakers: Sequence[str], options: SvcPreprocessOptions
) -> SvcConfig:
    """Keep an existing config.json's settings (the user may have edited them), update the speakers."""
    template = options.template
    if template is None and experiment.config.is_file():
        template = read_config(experiment.config)
    return make_config(
        speakers,
        template=template,
        speech_encoder=options.speech_encoder,
        vol_embedding=options.vol_embedding,
    )


def preprocess_svc(
    experiment: SvcExperiment | Path,
    options: SvcPreprocessOptions,
    *,
    raw: Path | Mapping[str, Sequence[Path]] | None = None,
    progress: StageProgress | None = None,
) -> SvcPreprocessReport:
    """Raw recordings -> clips, filelists, config.json, features and pitch report (module doc).

    ``raw``: a folder of speaker folders, or ``{speaker: files}``; default ``<experiment>/dataset_raw``.
    """
    experiment = experiment if isinstance(experiment, SvcExperiment) else SvcExperiment(Path(experiment))
    encoder_dir = check_requirements(options)
    sources = raw_speakers(experiment.raw if raw is None else raw) if not isinstance(raw, Mapping) else raw
    sources = {name: [Path(p) for p in files] for name, files in sources.items() if files}
    if not sources:
        template = "no recordings found: put audio files in {folder}/<speaker name>/ (one folder per speaker)"
        raise SvcPreprocessError(Message("svcprep.err.no_recordings", template, folder=str(experiment.raw)))
    experiment.ensure()
    config = _config_for(experiment, list(sources), options)
    sr, hop = config.data.sampling_rate, config.data.hop_length

    def stage(name: str) -> Callable[[int, int], None] | None:
        return None if progress is None else (lambda done, total: progress(name, done, total))

    clip_stage = stage("clips")
    clips = prepare_clips(
        sources, experiment, sr, loudnorm=options.loudnorm,
        progress=None if clip_stage is None else (lambda d, t, _name: clip_stage(d, t)),
    )  # fmt: skip
    if not clips.clips:
        reasons = "; ".join(f"{s.source.name}: {s.reason}" for s in clips.skipped[:5])
        template = "none of the recordings could be used ({reasons})"
        raise SvcPreprocessError(Message("svcprep.err.none_usable", template, reasons=reasons))
    config = make_config(
        list(clips.clips), template=config, speech_encoder=options.speech_encoder,
        vol_embedding=options.vol_embedding,
    )  # fmt: skip
    train, val, warnings = split_lists(
        clips.clips, experiment, val_per_speaker=options.val_per_speaker, seed=options.seed
    )
    write_config(config, experiment.config)
    job = FeatureJob(
        sampling_rate=sr, hop_length=hop, config=config, encoder=options.speech_encoder,
        encoder_dir=encoder_dir, f0_method=options.f0_method, pretrained_root=options.pretrained_root,
        write_spec=options.write_spec, volume=config.model.vol_embedding, device=options.device,
    )  # fmt: skip
    all_clips = [c for paths in clips.clips.values() for c in paths]
    _check_encoder_width(config, job)
    results = extract_all(all_clips, job, workers=options.workers, progress=stage("features"))
    failed = tuple(r for r in results if r.error)
    pitch = {}
    for speaker, paths in clips.clips.items():
        measured = speaker_pitch(paths, hop / sr)
        if measured is not None:
            pitch[speaker] = measured
    write_report(experiment.config.parent / REPORT_FILE, pitch)
    return SvcPreprocessReport(
        experiment=experiment.root,
        speakers=dict(config.spk),
        train=len(train),
        val=len(val),
        clips=clips,
        features_written=sum(r.written for r in results),
        features_reused=sum(not r.written and not r.error for r in results),
        failed=failed,
        warnings=tuple(warnings),
        pitch=pitch,
    )


def _check_encoder_width(config: SvcConfig, job: FeatureJob) -> None:
    """config.json's ssl_dim must equal the encoder's width, or training fails much later."""
    encoder = load_content_encoder(job.encoder, job.encoder_dir, job.device)
    if encoder.dim != config.model.ssl_dim:
        template = (
            "content encoder {encoder} gives {dim}-d features but config.json has model.ssl_dim = {ssl_dim}; "
            "use a matching config template or encoder"
        )
        fields = {"encoder": job.encoder, "dim": encoder.dim, "ssl_dim": config.model.ssl_dim}
        raise SvcPreprocessError(Message("svcprep.err.width", template, **fields))


# -- CLI ----------------------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m app.data.preprocess.svc.features",
        description="Prepare a singing voice conversion dataset (so-vits-svc 4.1 layout) with features.",
    )
    p.add_argument("experiment", type=Path, help="experiment folder (created; 4.1 layout inside)")
    p.add_argument("--raw", type=Path, help="folder of speaker folders (default: EXPERIMENT/dataset_raw)")
    p.add_argument("--pretrained", type=Path, help="pretrained_models folder (default from STUDIO_HOME)")
    p.add_argument("--encoder", default="vec768l12", choices=sorted(ENCODERS), help="content encoder")
    p.add_argument("--encoder-dir", type=Path, help="content encoder folder (default: the standard one)")
    p.add_argument(
        "--f0", default=DEFAULT_F0, choices=sorted(TRACKERS), help="f0 tracker (default %(default)s)"
    )
    p.add_argument("--config-template", type=Path, help="config.json to start from (default: 4.1's template)")
    p.add_argument("--vol-embedding", action="store_true", help="train with the volume embedding")
    p.add_argument("--no-loudnorm", action="store_true", help="keep clip levels (no peak normalisation)")
    p.add_argument("--no-spec", action="store_true", help="do not store .spec.pt files")
    p.add_argument("--workers", type=int, default=1, help="feature extraction processes")
    p.add_argument("--device", default="cpu", help="device for the encoder and neural f0 trackers")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from app.settings import load_settings

    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    pretrained = args.pretrained or load_settings().pretrained
    try:
        template = read_config(args.config_template) if args.config_template else None
        options = SvcPreprocessOptions(
            pretrained_root=pretrained, speech_encoder=args.encoder, encoder_dir=args.encoder_dir,
            f0_method=args.f0, loudnorm=not args.no_loudnorm, vol_embedding=args.vol_embedding,
            write_spec=not args.no_spec, workers=args.workers, device=args.device, template=template,
        )  # fmt: skip

        def show(stage: str, done: int, total: int) -> None:
            print(f"[{stage} {done}/{total}]", file=sys.stderr)

        report = preprocess_svc(SvcExperiment(args.experiment), options, raw=args.raw, progress=show)
    except (SvcPreprocessError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "FeatureJob",
    "FeatureResult",
    "SkippedClip",
    "SvcPreprocessError",
    "SvcPreprocessOptions",
    "SvcPreprocessReport",
    "extract_all",
    "extract_features",
    "preprocess_svc",
]
