"""Vocal separation: split songs or noisy recordings into vocals and accompaniment.

Upstream GPT-SoVITS runs UVR5 in a second web app; we use demucs (htdemucs by default) inside the
library. Weights are read only from ``pretrained_models/demucs/``, laid out as demucs' own model
repository (``<name>.yaml`` naming the signatures of a bag of models, ``<sig>-<sha256 prefix>.th``
weights), which is also what ``demucs.pretrained.get_model(name, repo=folder)`` reads. Nothing is
ever downloaded here; a missing file gets a message naming it and the download command.

Loading differs from demucs' own in one point: the ``.th`` pickles are opened with
``torch.load(weights_only=True)`` and only demucs' model classes allowed, so a tampered weight
file cannot run code.

Engines are swappable (STYLE rule 8): :data:`SEPARATORS` maps an id to a factory building a
:class:`Separator` (both in :mod:`app.data.preprocess.separate_base`, with the options and errors,
which this module names too): ``demucs``, and ``mdx`` for UVR's MDX-Net vocal models
(:mod:`app.data.preprocess.mdx`, files in ``pretrained_models/uvr5_weights/``), ``vr`` for UVR's
VR-architecture HP2/HP3 ``.pth`` files (:mod:`app.data.preprocess.vr`, same folder), ``roformer`` for
BS-/Mel-Band-RoFormer checkpoints with their configs (:mod:`app.data.preprocess.roformer`, same
folder). MDX-Net, VR and RoFormer run with their files' own chunking: segment, overlap and shifts are
demucs' settings.

Runs are resumable: ``report.json`` in the output folder records each file's stems
(:mod:`app.data.preprocess.ledger`), and a rerun with the same model keeps the complete ones.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import yaml

from app import assets
from app.assets.registry import DOWNLOAD_COMMAND
from app.audio import AUDIO_EXTENSIONS, AudioError, load_audio, save_audio
from app.data.preprocess.ledger import StepLedger, StepRecord
from app.data.preprocess.mdx import MDX_RATE, MdxError, MdxModel, MissingMdxModel, models_predicting
from app.data.preprocess.roformer import MissingRoformerModel, RoformerError, RoformerSeparator
from app.data.preprocess.separate_base import (
    ACCOMPANIMENT,
    DEMUCS_FOLDER,
    DEMUCS_MODELS,
    OUTPUT_FORMATS,
    SEPARATORS,
    VOCALS,
    MissingModelError,
    Progress,
    SeparateOptions,
    SeparationError,
    register_separator,
)
from app.data.preprocess.separate_base import DEFAULT_MODEL as DEFAULT_MODEL  # the Label tab's default
from app.data.preprocess.vr import MissingVrModel, VrError, VrModel, VrSeparator, models_for
from app.devices import pick_device
from app.messages import Message, said
from app.paths import fit_file_name

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------- demucs


def demucs_folder(pretrained_root: Path) -> Path:
    return Path(pretrained_root) / DEMUCS_FOLDER


def _remote_signatures(name: str) -> list[str] | None:
    """Signatures demucs' own bag file for ``name`` lists (shipped inside the demucs package)."""
    from demucs.pretrained import REMOTE_ROOT

    bag = REMOTE_ROOT / f"{name}.yaml"
    if not bag.is_file():
        return None
    return [str(s) for s in yaml.safe_load(bag.read_text(encoding="utf-8"))["models"]]


def _remote_file_names() -> dict[str, str]:
    """Signature -> published weight file name (``<sig>-<sha256 prefix>.th``) from demucs' files.txt."""
    from demucs.pretrained import REMOTE_ROOT

    names = {}
    for line in (REMOTE_ROOT / "files.txt").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and not line.startswith("root:"):
            names[line.split("-", 1)[0]] = line
    return names


def _local_weights(folder: Path) -> dict[str, Path]:
    """Signature -> ``.th`` file in ``folder`` (named ``<sig>.th`` or ``<sig>-<checksum>.th``)."""
    if not folder.is_dir():
        return {}
    return {p.stem.rsplit("-", 1)[0]: p for p in folder.glob("*.th")}


def missing_demucs_files(name: str, pretrained_root: Path) -> list[Path]:
    """Files model ``name`` needs that are not in ``pretrained_models/demucs/`` (empty when complete)."""
    folder = demucs_folder(pretrained_root)
    weights = _local_weights(folder)
    if name in weights:  # a single model addressed by its signature
        return []
    bag = folder / f"{name}.yaml"
    missing: list[Path] = []
    if bag.is_file():
        try:
            signatures = [str(s) for s in yaml.safe_load(bag.read_text(encoding="utf-8"))["models"]]
        except (yaml.YAMLError, KeyError, TypeError) as exc:
            template = "{bag}: not a demucs bag file ({problem}); replace it"
            raise SeparationError(Message("sep.err.bag", template, bag=str(bag), problem=str(exc))) from None
    else:
        missing.append(bag)
        signatures = _remote_signatures(name) or []
    published = _remote_file_names()
    missing += [folder / published.get(sig, f"{sig}.th") for sig in signatures if sig not in weights]
    return missing


def _missing_message(name: str, missing: Sequence[Path], pretrained_root: Path) -> Message:
    """Which files are missing, where they go and how to get them (app.assets knows the published models)."""
    fields = {
        "name": name,
        "folder": str(demucs_folder(pretrained_root)),
        "files": ", ".join(map(str, missing)),
    }
    head = "demucs model '{name}' is not installed in {folder}: missing {files}."
    try:
        asset = assets.get(f"demucs-{name}")
    except assets.UnknownAsset:
        template = head + " '{name}' is not a published demucs model ({published})."
        return Message("sep.err.demucs_unknown", template, **fields, published=", ".join(DEMUCS_MODELS))
    how = assets.missing_message([assets.asset_status(asset, pretrained_root)])
    how = how or f"download: {DOWNLOAD_COMMAND} {asset.id}"
    # A copy demucs downloaded earlier is in torch's hub cache under the same file names.
    template = head + "\n{how}\n  or copy them from ~/.cache/torch/hub/checkpoints/"
    return Message("sep.err.demucs_missing", template, **fields, how=how)


def _safe_load_package(path: Path) -> dict:
    """Open a demucs ``.th`` file without running code: only tensors and demucs model classes load."""
    from demucs.demucs import Demucs
    from demucs.hdemucs import HDemucs
    from demucs.htdemucs import HTDemucs

    # Fraction: HTDemucs stores its segment length as one (see demucs/hf.py).
    allowed = [Demucs, HDemucs, HTDemucs, Fraction]
    try:
        with torch.serialization.safe_globals(allowed):
            package = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, ValueError, EOFError, OSError, AttributeError) as exc:
        template = "{path}: not a loadable demucs weight file ({kind}: {problem}); download it again"
        problem = str(exc).splitlines()[0]
        message = Message(
            "sep.err.weights", template, path=str(path), kind=type(exc).__name__, problem=problem
        )
        raise SeparationError(message) from exc
    if not isinstance(package, dict) or not {"klass", "args", "kwargs", "state"} <= set(package):
        template = "{path}: not a demucs model package (expected klass/args/kwargs/state)"
        raise SeparationError(Message("sep.err.package", template, path=str(path)))
    if isinstance(package["state"], dict) and package["state"].get("__quantized"):
        try:
            import diffq  # noqa: F401
        except ImportError:
            template = (
                "{path}: a quantized demucs model (mdx_q, mdx_extra_q) needs the diffq package: "
                "pip install diffq, or choose an unquantized model such as htdemucs"
            )
            raise SeparationError(Message("sep.err.diffq", template, path=str(path))) from None
    return package


@lru_cache(maxsize=2)
def _load_demucs(folder: str, name: str):
    """Load (and cache) demucs model or bag ``name`` from the local repository ``folder``."""
    from demucs.repo import AnyModelRepo, BagOnlyRepo, LocalRepo, ModelLoadingError, check_checksum
    from demucs.states import load_model

    class SafeLocalRepo(LocalRepo):
        """demucs' local repository, opening weights with :func:`_safe_load_package`."""

        def get_model(self, sig: str):
            if sig not in self._models:
                template = "no weight file for signature {sig} in {root}"
                raise ModelLoadingError(Message("sep.err.signature", template, sig=sig, root=str(self.root)))
            path = self._models[sig]
            if sig in self._checksums:
                check_checksum(path, self._checksums[sig])
            return load_model(_safe_load_package(path))

    repo = Path(folder)
    models = SafeLocalRepo(repo)
    try:
        model = AnyModelRepo(models, BagOnlyRepo(repo, models)).get_model(name)
    except ModelLoadingError as exc:
        template = "demucs model '{name}' in {repo}: {problem}"
        raise SeparationError(
            Message("sep.err.demucs", template, name=name, repo=str(repo), problem=said(exc))
        ) from exc
    return model.eval()


class DemucsSeparator:
    """A demucs model or bag of models, applied in overlapping chunks."""

    def __init__(self, model, options: SeparateOptions) -> None:
        self.model = model
        self.options = options
        self.device = pick_device(options.device)
        self.samplerate = int(model.samplerate)
        self.channels = int(model.audio_channels)
        self.sources = list(model.sources)
        if VOCALS not in self.sources:
            template = "demucs model '{name}' has no vocals stem (stems: {stems})"
            raise SeparationError(
                Message("sep.err.demucs_stems", template, name=options.model, stems=str(self.sources))
            )
        # HTDemucs cannot run on chunks longer than it was trained on (demucs' api checks the same).
        limit = _segment_limit(model)
        if options.segment is not None and limit is not None and options.segment > limit:
            template = "segment {segment} s is longer than model '{name}' allows ({limit:.1f} s)"
            message = Message(
                "sep.err.segment_long", template, segment=options.segment, name=options.model, limit=limit
            )
            raise SeparationError(message)

    def separate(
        self, wav: np.ndarray, progress: Callable[[float], None] | None = None
    ) -> dict[str, np.ndarray]:
        from demucs.apply import apply_model

        mix = torch.from_numpy(np.ascontiguousarray(wav.T, dtype=np.float32))  # (C, T)
        # Normalise like demucs' separate command: the models were trained on standardised mixes.
        reference = mix.mean(0)
        mean, std = reference.mean(), reference.std().clamp_min(1e-8)
        passes = max(1, self.options.shifts) * len(getattr(self.model, "models", [self.model]))
        length = mix.shape[-1]

        def report(state: dict) -> None:
            if progress is None or state.get("state") != "end":
                return
            done = (state["model_idx_in_bag"] * max(1, self.options.shifts) + state["shift_idx"]) / passes
            done += min(1.0, state["segment_offset"] / max(1, length)) / passes
            progress(min(1.0, done))

        with torch.inference_mode():
            sources = apply_model(
                self.model,
                ((mix - mean) / std)[None],  # (1, C, T)
                shifts=self.options.shifts,
                split=True,
                overlap=self.options.overlap,
                segment=self.options.segment,
                device=self.device,
                callback=report,
            )[0]  # (S, C, T)
        sources = sources * std + mean
        stems = {name: sources[i].T.numpy() for i, name in enumerate(self.sources)}  # each (T, C)
        # Accompaniment = every stem but the vocals, as demucs' --two-stems=vocals writes it.
        stems[ACCOMPANIMENT] = sum(s for n, s in stems.items() if n != VOCALS)
        return stems


def _segment_limit(model) -> float | None:
    from demucs.htdemucs import HTDemucs

    inner = getattr(model, "models", [model])
    limits = [float(m.segment) for m in inner if isinstance(m, HTDemucs)]
    return min(limits) if limits else None


@register_separator("demucs")
def load_demucs_separator(options: SeparateOptions, pretrained_root: Path) -> DemucsSeparator:
    """Build the demucs separator for ``options.model`` from ``pretrained_models/demucs/`` (never downloads)."""
    missing = missing_demucs_files(options.model, pretrained_root)
    if missing:
        raise MissingModelError(_missing_message(options.model, missing, pretrained_root))
    model = _load_demucs(str(demucs_folder(pretrained_root).resolve()), options.model)
    return DemucsSeparator(model, options)


# ----------------------------------------------------------------------------------- MDX-Net
MDX_SEPARATION_MODELS = models_predicting("vocals", "instrumental")


class MdxSeparator:
    """A UVR MDX-Net model predicting vocals (or the instrumental); the other stem is the rest."""

    samplerate = MDX_RATE
    channels = 2

    def __init__(self, model: MdxModel, device: str) -> None:
        self.model = model
        self.device = device

    def separate(
        self, wav: np.ndarray, progress: Callable[[float], None] | None = None
    ) -> dict[str, np.ndarray]:
        predicted = self.model.predict(wav, progress)  # (T, 2)
        if self.model.params.predicts == VOCALS:
            return {VOCALS: predicted, ACCOMPANIMENT: wav - predicted}
        return {VOCALS: wav - predicted, ACCOMPANIMENT: predicted}


@register_separator("mdx")
def load_mdx_separator(options: SeparateOptions, pretrained_root: Path) -> MdxSeparator:
    """An MDX-Net separator for ``options.model`` (a file of MDX_SEPARATION_MODELS in uvr5_weights/)."""
    if options.model not in MDX_SEPARATION_MODELS:
        template = "MDX-Net separation model {name!r}: choose one of {choices}"
        choices = ", ".join(MDX_SEPARATION_MODELS)
        raise SeparationError(Message("sep.err.mdx_choice", template, name=options.model, choices=choices))
    device = pick_device(options.device).type
    try:
        return MdxSeparator(MdxModel(options.model, pretrained_root, device), device)
    except MissingMdxModel as exc:
        raise MissingModelError(said(exc)) from exc
    except MdxError as exc:
        raise SeparationError(said(exc)) from exc


# --------------------------------------------------------------------------- BS-/Mel-Band-RoFormer
@register_separator("roformer")
def load_roformer_separator(options: SeparateOptions, pretrained_root: Path) -> RoformerSeparator:
    """A RoFormer separator for ``options.model`` (``<name>.ckpt`` with ``<name>.yaml`` in uvr5_weights/)."""
    device = pick_device(options.device).type
    try:
        return RoformerSeparator(options.model, pretrained_root, device)
    except MissingRoformerModel as exc:
        raise MissingModelError(said(exc)) from exc
    except RoformerError as exc:
        raise SeparationError(said(exc)) from exc


# ------------------------------------------------------------------------------- UVR VR (.pth)
VR_SEPARATION_MODELS = models_for("separate")


@register_separator("vr")
def load_vr_separator(options: SeparateOptions, pretrained_root: Path) -> VrSeparator:
    """A VR separator for ``options.model`` (HP2/HP3_all_vocals.pth in uvr5_weights/)."""
    if options.model not in VR_SEPARATION_MODELS:
        template = "VR separation model {name!r}: choose one of {choices}"
        choices = ", ".join(VR_SEPARATION_MODELS)
        raise SeparationError(Message("sep.err.vr_choice", template, name=options.model, choices=choices))
    try:
        return VrSeparator(VrModel(options.model, pretrained_root, pick_device(options.device).type))
    except MissingVrModel as exc:
        raise MissingModelError(said(exc)) from exc
    except VrError as exc:
        raise SeparationError(said(exc)) from exc


# ------------------------------------------------------------------------------------ workflow


@dataclass(frozen=True)
class SeparatedFile:
    """The stems written for one input file."""

    source: Path  # the input recording
    vocals: Path  # vocals stem
    accompaniment: Path  # everything but the vocals
    seconds: float  # length of the input


@dataclass(frozen=True)
class SeparateResult:
    """What a separation run wrote."""

    files: tuple[SeparatedFile, ...]  # one entry per input that was separated
    failed: tuple[tuple[Path, str], ...]  # inputs that could not be read, with the reason
    vocals_dir: Path  # folder of the vocals stems (input of slicing)
    accompaniment_dir: Path  # folder of the accompaniment stems
    model: str  # model used
    device: str  # device it ran on


def list_audio_files(inputs: Path | Sequence[Path]) -> list[Path]:
    """Audio files of a folder (sorted, not recursive) or of an explicit list of files."""
    if isinstance(inputs, (str, Path)):
        folder = Path(inputs)
        if folder.is_file():
            return [folder]
        if not folder.is_dir():
            raise FileNotFoundError(
                Message("slice.err.no_input", "{path}: no such file or folder", path=str(folder))
            )
        return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
    return [Path(p) for p in inputs]


def separate_files(
    inputs: Path | Sequence[Path],
    output_dir: Path,
    pretrained_root: Path,
    options: SeparateOptions = SeparateOptions(),
    progress: Progress | None = None,
) -> SeparateResult:
    """Separate every audio file of ``inputs`` (a file, a folder, or a list of files).

    Writes ``output_dir/vocals/<stem>.<fmt>`` and ``output_dir/accompaniment/<stem>.<fmt>`` at the
    model's rate (44.1 kHz stereo for demucs and MDX-Net) and ``output_dir/report.json``; files an
    earlier run with the same settings finished are kept. Unreadable inputs are reported in
    ``failed``; a missing model raises :class:`MissingModelError` before anything is read.
    """
    if options.engine not in SEPARATORS:
        template = "unknown separation engine {engine!r}; choose one of {choices}"
        raise SeparationError(
            Message("sep.err.engine", template, engine=options.engine, choices=str(sorted(SEPARATORS)))
        )
    files = list_audio_files(inputs)
    if not files:
        template = "{inputs}: no audio files to separate ({types})"
        message = Message("sep.err.no_files", template, inputs=str(inputs), types=", ".join(AUDIO_EXTENSIONS))
        raise SeparationError(message)
    separator = SEPARATORS[options.engine](options, Path(pretrained_root))
    vocals_dir, accompaniment_dir = Path(output_dir) / VOCALS, Path(output_dir) / ACCOMPANIMENT
    ledger = StepLedger(Path(output_dir))
    # What makes the stems: a rerun with other settings separates again.
    signature = f"{options.engine}:{options.model} segment={options.segment} overlap={options.overlap} shifts={options.shifts}"
    done: list[SeparatedFile] = []
    failed: list[tuple[Path, str]] = []
    for i, path in enumerate(files):

        def tick(fraction: float, i: int = i, path: Path = path) -> None:
            if progress is not None:
                progress((i + fraction) / len(files), f"separating {path.name}")

        tick(0.0)
        name = fit_file_name(path.stem, f".{options.output_format}")  # a long stem shortened with a hash
        earlier = ledger.finished("separate", path, vocals_dir / name, signature)
        if earlier is not None:
            logger.info("kept %s from an earlier run", earlier.outputs[0])
            done.append(SeparatedFile(path, *earlier.outputs, earlier.figures.get("input_seconds", 0.0)))
            continue
        try:
            wav = load_audio(path, separator.samplerate, mono=False)  # (T, C)
        except AudioError as exc:
            logger.warning("skipping %s: %s", path, exc)
            failed.append((path, str(exc)))
            continue
        wav = _match_channels(wav, separator.channels)
        stems = separator.separate(wav, tick)
        vocals = save_audio(vocals_dir / name, stems[VOCALS], separator.samplerate)
        accompaniment = save_audio(accompaniment_dir / name, stems[ACCOMPANIMENT], separator.samplerate)
        seconds = len(wav) / separator.samplerate
        ledger.record(
            StepRecord(
                "separate", path, (vocals, accompaniment), signature, {"input_seconds": seconds}, False
            )
        )
        done.append(SeparatedFile(path, vocals, accompaniment, seconds))
        logger.info("separated %s -> %s", path, vocals)
    if progress is not None:
        progress(1.0, f"separated {len(done)} of {len(files)} files")
    device = str(getattr(separator, "device", "cpu"))
    return SeparateResult(tuple(done), tuple(failed), vocals_dir, accompaniment_dir, options.model, device)


def _match_channels(wav: np.ndarray, channels: int) -> np.ndarray:
    """``(T, C)`` -> ``(T, channels)``: mono is duplicated, extra channels are averaged down."""
    if wav.ndim == 1:
        wav = wav[:, None]
    if wav.shape[1] == channels:
        return wav
    if wav.shape[1] == 1:
        return np.repeat(wav, channels, axis=1)
    return np.repeat(wav.mean(axis=1, keepdims=True), channels, axis=1)


# ----------------------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m app.data.preprocess.separate IN OUT``: vocals and accompaniment of each file."""
    import argparse
    import sys

    from app.settings import load_settings

    defaults = SeparateOptions()
    p = argparse.ArgumentParser(
        prog="python -m app.data.preprocess.separate", description=__doc__.splitlines()[0]
    )
    p.add_argument("input", type=Path, help="an audio file or a folder of audio files")
    p.add_argument("output", type=Path, help="folder receiving vocals/ and accompaniment/")
    p.add_argument("--engine", default=defaults.engine, choices=sorted(SEPARATORS))
    p.add_argument(
        "--model",
        default=defaults.model,
        help=f"demucs: {', '.join(DEMUCS_MODELS)}; mdx: {', '.join(MDX_SEPARATION_MODELS)}; "
        f"vr: {', '.join(VR_SEPARATION_MODELS)}; "
        "roformer: a <name>.ckpt with <name>.yaml in uvr5_weights/ (e.g. model_bs_roformer_ep_317_sdr_12.9755.ckpt)",
    )
    p.add_argument("--segment", type=float, help="seconds per chunk (default: the model's own)")
    p.add_argument(
        "--overlap", type=float, default=defaults.overlap, help="chunk overlap (default %(default)s)"
    )
    p.add_argument(
        "--shifts", type=int, default=defaults.shifts, help="random shifts averaged (default %(default)s)"
    )
    p.add_argument("--device", default=defaults.device, help="auto, cpu, cuda, cuda:1 (default %(default)s)")
    p.add_argument("--format", default=defaults.output_format, choices=OUTPUT_FORMATS)
    p.add_argument("--pretrained", type=Path, help="pretrained_models folder (default: the studio's)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        options = SeparateOptions(
            engine=args.engine,
            model=args.model,
            segment=args.segment,
            overlap=args.overlap,
            shifts=args.shifts,
            device=args.device,
            output_format=args.format,
        )
        result = separate_files(
            args.input,
            args.output,
            args.pretrained or load_settings().pretrained,
            options,
            progress=lambda f, msg: print(f"[{f:4.0%}] {msg}", file=sys.stderr),
        )
    except (SeparationError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(result.files)} file(s) separated into {result.vocals_dir} and {result.accompaniment_dir}")
    for path, why in result.failed:
        print(f"failed: {path}: {why}", file=sys.stderr)
    return 1 if result.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
