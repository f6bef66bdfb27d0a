"""Vocal clean-up between separation and slicing: karaoke (lead vs backing vocals) -> de-reverb -> denoise.

Reverb and backing vocals in training clips are the commonest cause of a bad clone; upstream's
users run UVR5's karaoke and de-reverb models, then a denoiser, on the separated vocals. Each
step here reads the previous step's files and writes its own folder::

    <out>/karaoke/<clip>.wav     lead vocal: the mix less what UVR_MDXNET_KARA_2 calls instrumental,
                                 or less what HP5_only_main_vocal's mask keeps (a VR model)
    <out>/dereverb/<clip>.wav    dry vocal: the input less the reverb FoxJoy's model predicts, or
                                 what a VR-DeEcho model's mask keeps (app.data.preprocess.vr)
    <out>/denoise/<clip>.wav     noise taken out: the spectral gate (app.audio.denoise) or GTCRN
                                 (a learned denoiser, app.data.preprocess.gtcrn), DENOISE_ENGINES
    <out>/report.json            per clip and step: source, model, frames, dB removed, seconds

Steps run in the fixed order of :data:`STEPS`; a rerun keeps every output the report shows
complete (:mod:`app.data.preprocess.ledger`). A clip a step cannot read is reported and left out
of the following steps; the others go on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from app.audio import AudioError, load_audio, save_audio
from app.audio.denoise import DenoiseOptions, denoise
from app.data.preprocess.gtcrn import GTCRN_FILE, GtcrnDenoiser
from app.data.preprocess.ledger import StepLedger, StepRecord
from app.data.preprocess.mdx import MDX_RATE, MdxModel, models_predicting
from app.data.preprocess.vr import VR_MODELS, VrModel, models_for
from app.devices import pick_device
from app.messages import Message, said
from app.paths import fit_file_name

logger = logging.getLogger(__name__)

# Order of the steps (the separate -> de-reverb -> denoise, with the lead vocal picked out
# first: backing vocals carry reverb too, and the de-reverb model was trained on one voice).
STEPS: tuple[str, ...] = ("karaoke", "dereverb", "denoise")
# UVR's MDX-Net files (ONNX), then its VR-architecture files (.pth); the name says which.
KARAOKE_MODELS = (*models_predicting("instrumental"), *models_for("karaoke"))
DEREVERB_MODELS = (*models_predicting("reverb"), *models_for("dereverb"))

# progress(fraction in [0, 1], message)
Progress = Callable[[float, str], None]
# A denoiser: audio (T, C) at a rate -> the same shape, with its options applied.
DenoiseFunction = Callable[[np.ndarray, int], np.ndarray]


def _spectral_gate(options: DenoiseOptions, pretrained_root: Path) -> tuple[DenoiseFunction, str]:
    label = f"spectral-gate strength={options.strength} threshold={options.threshold_std}"
    return (lambda wav, sr: denoise(wav, sr, options)), label


def _gtcrn(options: DenoiseOptions, pretrained_root: Path) -> tuple[DenoiseFunction, str]:
    model = GtcrnDenoiser(pretrained_root)  # refuses a missing or malformed file before any audio
    label = f"gtcrn:{GTCRN_FILE} strength={options.strength} threshold={options.threshold_std}"
    return (lambda wav, sr: model.denoise(wav, sr, options)), label


# Denoise engines by stable id -> (options, pretrained root) -> (denoiser, what the report records).
# spectral-gate: stationary noise, no model file; gtcrn: a learned denoiser (also non-stationary
# noise: traffic, keyboard, babble), a 0.5 MB model file.
DENOISE_ENGINES: dict[str, Callable[[DenoiseOptions, Path], tuple[DenoiseFunction, str]]] = {
    "spectral-gate": _spectral_gate,
    "gtcrn": _gtcrn,
}
DEFAULT_DENOISER = "spectral-gate"


class CleanupError(ValueError):
    """Bad clean-up options; the message says what was wrong."""


@dataclass(frozen=True)
class CleanupOptions:
    """Which clean-up steps run; a step left None is skipped."""

    karaoke: str | None = None  # MDX-Net or VR file keeping the lead vocal (KARAOKE_MODELS), None = skip
    dereverb: str | None = None  # MDX-Net or VR file removing reverb and echo (DEREVERB_MODELS), None = skip
    denoise: DenoiseOptions | None = None  # how hard to denoise, None = skip
    denoiser: str = DEFAULT_DENOISER  # DENOISE_ENGINES id: "spectral-gate" or "gtcrn"
    device: str = "auto"  # where the MDX-Net and VR models run: "auto", "cpu", "cuda"

    def __post_init__(self) -> None:
        if self.karaoke is not None and self.karaoke not in KARAOKE_MODELS:
            template = "karaoke model {model!r}: choose one of {choices}"
            message = Message(
                "cleanup.err.karaoke", template, model=self.karaoke, choices=", ".join(KARAOKE_MODELS)
            )
            raise CleanupError(message)
        if self.dereverb is not None and self.dereverb not in DEREVERB_MODELS:
            template = "de-reverb model {model!r}: choose one of {choices}"
            message = Message(
                "cleanup.err.dereverb", template, model=self.dereverb, choices=", ".join(DEREVERB_MODELS)
            )
            raise CleanupError(message)
        if self.denoiser not in DENOISE_ENGINES:
            template = "denoiser {model!r}: choose one of {choices}"
            message = Message(
                "cleanup.err.denoiser", template, model=self.denoiser, choices=", ".join(DENOISE_ENGINES)
            )
            raise CleanupError(message)

    @property
    def steps(self) -> tuple[str, ...]:
        """The steps that run, in order."""
        chosen = {"karaoke": self.karaoke, "dereverb": self.dereverb, "denoise": self.denoise}
        return tuple(s for s in STEPS if chosen[s] is not None)


@dataclass(frozen=True)
class CleanupResult:
    """What a clean-up run wrote."""

    outputs: tuple[Path, ...]  # the last step's file for every clip that went through all steps
    records: tuple[StepRecord, ...]  # one per clip and step, in step order
    failed: tuple[tuple[Path, str], ...]  # clips a step could not read, with the step and reason
    report: Path  # report.json


# A step: (source file) -> (kept audio (T, C), its rate, removed audio (T, C)); and its model id.
StepFunction = Callable[[Path], tuple[np.ndarray, int, np.ndarray]]


def _stereo(wav: np.ndarray) -> np.ndarray:
    """``(T,)`` or ``(T, C)`` -> ``(T, 2)``: mono duplicated, more channels averaged."""
    wav = wav[:, None] if wav.ndim == 1 else wav
    if wav.shape[1] == 2:
        return wav
    return np.repeat(wav.mean(axis=1, keepdims=True), 2, axis=1)


def _mdx_step(model: MdxModel) -> StepFunction:
    """The input less what the network predicts (the backing part, or the reverb)."""

    def run(source: Path) -> tuple[np.ndarray, int, np.ndarray]:
        mix = _stereo(load_audio(source, MDX_RATE, mono=False, allow_silent=True))  # (T, 2)
        removed = model.predict(mix)
        return mix - removed, MDX_RATE, removed

    return run


def _vr_step(model: VrModel) -> StepFunction:
    """What the VR file's step keeps: the dry vocal its mask keeps (DeEcho), or the lead vocal
    left when its mask takes the instrumental and backing vocals (HP5)."""

    def run(source: Path) -> tuple[np.ndarray, int, np.ndarray]:
        mix = _stereo(load_audio(source, MDX_RATE, mono=False, allow_silent=True))  # (T, 2) at 44.1 kHz
        masked, rest = model.split(mix)
        return (masked, MDX_RATE, rest) if model.params.keeps == "dry" else (rest, MDX_RATE, masked)

    return run


def _denoise_step(denoiser: DenoiseFunction) -> StepFunction:
    def run(source: Path) -> tuple[np.ndarray, int, np.ndarray]:
        try:
            rate = int(sf.info(str(source)).samplerate)
        except (sf.LibsndfileError, RuntimeError) as exc:
            template = "{name}: not a readable audio file ({problem})"
            raise AudioError(
                Message("cleanup.err.unreadable", template, name=source.name, problem=str(exc))
            ) from exc
        wav = load_audio(source, rate, mono=False, allow_silent=True)  # (T, C) at the file's own rate
        try:
            kept = denoiser(wav, rate)
        except ValueError as exc:
            raise AudioError(
                Message("cleanup.err.denoise", "{name}: {problem}", name=source.name, problem=said(exc))
            ) from exc
        return kept, rate, wav - kept

    return run


def _open_step(step: str, options: CleanupOptions, pretrained_root: Path) -> tuple[StepFunction, str]:
    if step == "denoise":
        assert options.denoise is not None
        denoiser, label = DENOISE_ENGINES[options.denoiser](options.denoise, pretrained_root)
        return _denoise_step(denoiser), label
    name = options.karaoke if step == "karaoke" else options.dereverb
    assert name is not None
    device = pick_device(options.device).type
    if name in VR_MODELS:
        return _vr_step(VrModel(name, pretrained_root, device)), f"vr:{name}"
    return _mdx_step(MdxModel(name, pretrained_root, device)), f"mdx:{name}"


def _removed_db(kept: np.ndarray, removed: np.ndarray) -> float:
    """Energy taken out relative to the input, dB (-inf: nothing; 0: all of it)."""
    total = float(np.sum((kept + removed) ** 2))
    return 10.0 * np.log10(max(float(np.sum(removed**2)), 1e-12) / max(total, 1e-12))


def clean_files(
    files: Sequence[Path],
    output_dir: Path,
    pretrained_root: Path,
    options: CleanupOptions,
    progress: Progress | None = None,
) -> CleanupResult:
    """Run the chosen steps over ``files`` into ``output_dir/<step>/``; skip what an earlier run finished.

    Missing or unknown models raise before any audio is read.
    """
    output_dir = Path(output_dir)
    steps = [(step, *_open_step(step, options, pretrained_root)) for step in options.steps]
    ledger = StepLedger(output_dir)
    current = [Path(f) for f in files]
    records: list[StepRecord] = []
    failed: list[tuple[Path, str]] = []
    total = max(1, len(steps) * len(current))
    done = 0
    for step, run, model in steps:
        following: list[Path] = []
        for source in current:
            if progress is not None:
                progress(done / total, f"{step}: {source.name}")
            done += 1
            out = output_dir / step / fit_file_name(source.stem, ".wav")
            record = ledger.finished(step, source, out, model)
            if record is None:
                start = time.perf_counter()
                try:
                    kept, rate, removed = run(source)
                except AudioError as exc:
                    failed.append((source, f"{step}: {exc}"))
                    logger.warning("%s: %s: %s", step, source, exc)
                    continue
                save_audio(out, kept, rate)
                figures = {"removed_db": _removed_db(kept, removed), "seconds": time.perf_counter() - start}
                record = StepRecord(step, source, (out,), model, figures, False)
                ledger.record(record)
            records.append(record)
            following.append(out)
        current = following
    if progress is not None:
        progress(1.0, f"cleaned {len(current)} of {len(files)} files")
    return CleanupResult(tuple(current), tuple(records), tuple(failed), ledger.path)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m app.data.preprocess.cleanup IN OUT --dereverb MODEL --denoise``: clean vocal files."""
    import argparse
    import sys

    from app.data.preprocess.gtcrn import GtcrnError
    from app.data.preprocess.mdx import MdxError
    from app.data.preprocess.separate import list_audio_files
    from app.data.preprocess.vr import VrError
    from app.settings import load_settings

    p = argparse.ArgumentParser(
        prog="python -m app.data.preprocess.cleanup", description=__doc__.splitlines()[0]
    )
    p.add_argument("input", type=Path, help="a vocal file or a folder of them (separated vocals)")
    p.add_argument("output", type=Path, help="folder receiving <step>/ folders and report.json")
    p.add_argument("--karaoke", choices=KARAOKE_MODELS, help="keep the lead vocal with this MDX-Net/VR file")
    p.add_argument("--dereverb", choices=DEREVERB_MODELS, help="remove reverb/echo with this MDX-Net/VR file")
    p.add_argument("--denoise", action="store_true", help="take noise out (see --denoiser)")
    p.add_argument(
        "--denoiser",
        choices=tuple(DENOISE_ENGINES),
        default=DEFAULT_DENOISER,
        help="spectral-gate (stationary noise, no model) or gtcrn (learned, pretrained_models/denoise-model/)",
    )
    p.add_argument("--strength", type=float, default=DenoiseOptions().strength, help="denoise strength 0..1")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda (MDX-Net and VR models)")
    p.add_argument("--pretrained", type=Path, help="pretrained_models folder (default: the studio's)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        options = CleanupOptions(
            karaoke=args.karaoke,
            dereverb=args.dereverb,
            denoise=DenoiseOptions(strength=args.strength) if args.denoise else None,
            denoiser=args.denoiser,
            device=args.device,
        )
        if not options.steps:
            template = "choose at least one step: --karaoke, --dereverb or --denoise"
            raise CleanupError(Message("cleanup.err.no_step", template))
        result = clean_files(
            list_audio_files(args.input),
            args.output,
            args.pretrained or load_settings().pretrained,
            options,
            progress=lambda f, msg: print(f"[{f:4.0%}] {msg}", file=sys.stderr),
        )
    except (CleanupError, MdxError, VrError, GtcrnError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(result.outputs)} file(s) cleaned ({' -> '.join(options.steps)}); report: {result.report}")
    for path, why in result.failed:
        print(f"failed: {path}: {why}", file=sys.stderr)
    return 1 if result.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
