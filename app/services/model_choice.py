"""The server's current GPT / SoVITS models (what api_v2's ``/set_*_weights`` change).

The choice is a small JSON file under the data root (``output/api/models.json``), written
atomically and read on every request, so replicas sharing one data root agree on it and a
choice survives restarts. Requests may also name their own models (or use a preset's); the
choice only fills in what a request leaves open. Nothing is loaded here: loading happens in a job
of the synthesis service (``app.services.synthesis``), so swaps never interrupt a running synthesis.

A model path resolves only to a file :func:`app.services.weights.list_weights` offers (the
weight folders and the pretrained base models), so an API client cannot point the safe readers
at anything else on the host.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from app import config_io
from app.fileio import exclusive_lock
from app.infer.request import ModelLoadError
from app.messages import Message
from app.models.upstream.gpt import gpt_version, read_gpt_file
from app.models.upstream.sovits import read_sovits
from app.models.upstream.sovits_lora import lora_version, read_lora
from app.paths import Layout, PathOutsideRoot, resolve_inside
from app.services.weights import WeightFile, WeightsListing, list_weights

log = logging.getLogger(__name__)

KINDS = ("gpt", "sovits")
CHOICE_FILE = Path("api") / "models.json"  # under Layout.output
# Upstream's README names models by their path inside its repository.
UPSTREAM_PREFIXES = ("GPT_SoVITS/pretrained_models/", "pretrained_models/")


@dataclass(frozen=True)
class ModelChoice:
    """The current models, as paths relative to the data root ("" = not chosen: the first listed)."""

    # GPT .ckpt (e.g. "GPT_weights/voice-e15.ckpt").
    gpt: str = ""
    # SoVITS generator .pth (e.g. "SoVITS_weights/voice_e8_s200.pth").
    sovits: str = ""


@dataclass(frozen=True)
class WeightInfo:
    """What a safe read of a model file found."""

    # Absolute path.
    path: Path
    # "gpt" or "sovits".
    kind: str
    # "v1", "v2", "v2Pro", ...
    version: str


def _listed(listing: WeightsListing, kind: str) -> tuple[WeightFile, ...]:
    return listing.gpt if kind == "gpt" else listing.sovits


def relative_name(path: Path, layout: Layout) -> str:
    """``path`` relative to the data root (or to pretrained_models/ when that lives elsewhere)."""
    for root, prefix in ((layout.home, ""), (layout.pretrained, "pretrained_models/")):
        try:
            return prefix + str(PurePosixPath(path.resolve().relative_to(root.resolve())))
        except ValueError:
            continue
    return path.name


def _candidates(layout: Layout, text: str) -> list[Path]:
    """Where ``text`` may point: absolute paths under the data root or pretrained_models/, paths
    relative to the data root, upstream's ``GPT_SoVITS/pretrained_models/...`` relative to ours.

    A path (or a link on it) that leads out of those folders raises :class:`PathOutsideRoot`.
    """
    given = Path(text)
    if given.is_absolute():
        for root in (layout.home, layout.pretrained):
            if given.is_relative_to(root) or given.is_relative_to(root.resolve()):
                return [resolve_inside(given, root)]
        template = (
            "{path} is outside the data folder; name a file under {gpt}/, {sovits}/ or pretrained_models/"
        )
        fields = {"path": text, "gpt": layout.gpt_weights.name, "sovits": layout.sovits_weights.name}
        raise PathOutsideRoot(Message("choice.err.outside", template, **fields))
    out = [resolve_inside(given, layout.home)]
    for prefix in UPSTREAM_PREFIXES:
        if text.startswith(prefix):
            out.append(resolve_inside(text[len(prefix) :], layout.pretrained))
    return out


def resolve_weight(layout: Layout, kind: str, value: str, listing: WeightsListing | None = None) -> Path:
    """The listed model file ``value`` names: a path relative to the data root, upstream's
    ``GPT_SoVITS/pretrained_models/...`` form, or a bare file name found in the listing.

    Raises :class:`PathOutsideRoot` for a path leaving the data root (``..``, absolute, a link
    out) and :class:`ModelLoadError` for anything that is not a listed model file of ``kind``.
    """
    if kind not in KINDS:
        template = "unknown model kind {kind!r}: use one of {choices}"
        raise ValueError(Message("choice.err.kind", template, kind=kind, choices=KINDS))
    text = str(value).strip()
    label = "GPT" if kind == "gpt" else "SoVITS"
    if not text:
        raise ModelLoadError(Message("choice.err.unnamed", "no {label} model named", label=label))
    if ".." in Path(text).parts:
        template = "{path}: '..' is not allowed in model paths; name a file under the data folder"
        raise PathOutsideRoot(Message("choice.err.dotdot", template, path=text))
    listing = listing or list_weights(layout)
    files = {w.path.resolve(): w for w in _listed(listing, kind)}
    for path in _candidates(layout, text):
        if path in files:
            return path
    by_name = [p for p in files if p.name == Path(text).name] if "/" not in text else []
    if len(by_name) == 1:
        return by_name[0]
    known = ", ".join(relative_name(p, layout) for p in files)
    fields = {"label": label, "name": text, "known": known}
    if not known:
        template = "{label} model {name!r} is not one of the available {label} models: none found"
        raise ModelLoadError(Message("choice.err.none_listed", template, **fields))
    template = "{label} model {name!r} is not one of the available {label} models: {known}"
    raise ModelLoadError(Message("choice.err.not_listed", template, **fields))


def inspect_weight(path: Path, kind: str) -> WeightInfo:
    """Read ``path`` with the restricted readers (no model is built); :class:`ModelLoadError` if unusable."""
    try:
        if kind == "gpt":
            _, config, _ = read_gpt_file(path)
            model = config.get("model")
            if not isinstance(model, dict):
                template = "{path}: config has no 'model' section; not a GPT-SoVITS GPT checkpoint"
                raise ModelLoadError(Message("choice.err.no_model_section", template, path=str(path)))
            return WeightInfo(path, kind, gpt_version(model, where=str(path)))
        lora = lora_version(path)
        if lora is not None:  # a v3/v4 LoRA voice: only its adapters; merged onto the base at load
            read_lora(path)
            return WeightInfo(path, kind, lora)
        record = read_sovits(path)
    except ModelLoadError:
        raise
    except ValueError as exc:  # GPTFileError, CheckpointError, UnsafePickleError: they name the file
        said = exc.args[0] if exc.args and isinstance(exc.args[0], Message) else str(exc)
        raise ModelLoadError(said) from None
    except OSError as exc:
        template = "{path}: cannot read the {kind} model ({problem})"
        fields = {"path": str(path), "kind": kind, "problem": str(exc.strerror)}
        raise ModelLoadError(Message("choice.err.cannot_read", template, **fields)) from None
    return WeightInfo(path, kind, record.version)


class ModelChoiceStore:
    """Read and change the current models of one data root."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.path = layout.output / CHOICE_FILE

    def read(self) -> ModelChoice:
        if not self.path.is_file():
            return ModelChoice()
        try:
            return config_io.load(ModelChoice, self.path)
        except config_io.ConfigError as exc:
            log.warning("ignoring %s: %s", self.path, exc)
            return ModelChoice()

    def set(self, kind: str, path: Path) -> ModelChoice:
        """Make ``path`` (already resolved and inspected) the current ``kind`` model.

        Replicas setting the two kinds at once take turns (a lock beside the file), so neither
        choice is lost.
        """
        name = relative_name(path, self.layout)
        with exclusive_lock(self.path.with_name(self.path.name + ".lock")):
            current = self.read()
            choice = (
                ModelChoice(gpt=name, sovits=current.sovits)
                if kind == "gpt"
                else ModelChoice(current.gpt, name)
            )
            config_io.save(choice, self.path)
        log.info("current %s model: %s", kind, name)
        return choice

    def current(self, listing: WeightsListing | None = None) -> tuple[Path, Path]:
        """(GPT, SoVITS) to use when a request names none: the saved choice, else the first listed.

        Raises :class:`ModelLoadError` when no model of a kind exists (the message says where to put one).
        """
        listing = listing or list_weights(self.layout)
        choice = self.read()
        out = []
        for kind, chosen in (("gpt", choice.gpt), ("sovits", choice.sovits)):
            if chosen:
                try:
                    out.append(resolve_weight(self.layout, kind, chosen, listing))
                    continue
                except (ModelLoadError, PathOutsideRoot) as exc:
                    log.warning("the chosen %s model is gone (%s); using the first listed", kind, exc)
            files = _listed(listing, kind)
            if not files:
                raise ModelLoadError(
                    listing.message or Message("choice.err.none", "no {kind} model found", kind=kind)
                )
            out.append(files[0].path.resolve())
        return out[0], out[1]
