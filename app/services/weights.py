"""Which GPT / SoVITS models can be chosen for TTS, and which base models are missing.

- Base models: the pretrained GPT-SoVITS files of :mod:`app.assets` found in ``pretrained_models/``
  (laid out as upstream names them).
- Fine-tuned models: ``*.ckpt`` under ``GPT_weights/`` and ``*.pth`` under ``SoVITS_weights/``,
  subfolders included, and upstream's own folders (``GPT_weights_v2/``, ``SoVITS_weights_v2Pro/``,
  ...) copied into the data root or into those folders.
- The encoders every synthesis needs (HuBERT; RoBERTa for Chinese text): when a folder lacks its
  config or weights, :attr:`WeightsListing.message` names the missing files and the download
  command; listing never raises.

:func:`pipeline_spec` turns a choice (paths from a dropdown or an API call) into a
:class:`~app.infer.request.PipelineSpec`, refusing paths outside the data folders.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.assets import AssetStatus, asset_status, get, missing_message
from app.devices import pick_device
from app.infer.request import PRECISIONS, ModelLoadError, PipelineSpec
from app.messages import Message
from app.models.encoders.sv import SV_FILE
from app.models.upstream.cfm_voice import cfm_version
from app.paths import Layout, PathOutsideRoot, resolve_inside

HUBERT_ASSET = "chinese-hubert-base"
BERT_ASSET = "chinese-roberta-wwm-ext-large"
# Base model assets, in the order offered (v2 first: the default of this studio).
BASE_ASSETS = (
    "gpt-sovits-v2",
    "gpt-sovits-v2pro",
    "gpt-sovits-v2proplus",
    "gpt-sovits-v4",
    "gpt-sovits-v3",
    "gpt-sovits-v1",
)
WEIGHT_FILES = ("pytorch_model.bin", "model.safetensors")


@dataclass(frozen=True)
class WeightFile:
    """One choosable model file."""

    # Absolute path.
    path: Path
    # "gpt" (.ckpt) or "sovits" (.pth generator).
    kind: str
    # True for a pretrained base model from pretrained_models/.
    base: bool
    # What the dropdown shows: "GPT_weights/voice-e15.ckpt", "base v2: s2G2333k.pth".
    label: str


@dataclass(frozen=True)
class WeightsListing:
    """Everything the model dropdowns need, as found on disk."""

    # Choosable GPT files: fine-tuned first (newest first), then base models.
    gpt: tuple[WeightFile, ...]
    # Choosable SoVITS generator files, same order.
    sovits: tuple[WeightFile, ...]
    # Folder of the HuBERT content encoder and of the Chinese BERT.
    hubert_dir: Path
    bert_dir: Path
    # What is missing and how to get it ("" when nothing needed is missing), in English.
    message: str
    # The same, as data for an interface to word itself: the assets not (fully) on disk, and the
    # kinds of model ("GPT", "SoVITS") of which no file at all is there.
    missing: tuple[AssetStatus, ...] = ()
    lacking: tuple[str, ...] = ()

    @property
    def ready(self) -> bool:
        """True when at least one GPT, one SoVITS model and HuBERT are there."""
        return bool(self.gpt and self.sovits) and _usable(self.hubert_dir)


def _usable(folder: Path) -> bool:
    """A transformers model folder with its config and weights (any size: tests use tiny ones)."""
    return (folder / "config.json").is_file() and any((folder / n).is_file() for n in WEIGHT_FILES)


def _base_files(layout: Layout) -> tuple[list[WeightFile], list[WeightFile]]:
    gpt: dict[Path, WeightFile] = {}
    sovits: dict[Path, WeightFile] = {}
    for asset_id in BASE_ASSETS:
        asset = get(asset_id)
        version = asset_id.removeprefix("gpt-sovits-").replace("pro", "Pro").replace("plus", "Plus")
        for state in asset_status(asset, layout.pretrained).files:
            if state.state != "present":
                continue
            name = Path(state.file.path).name
            if name.endswith(".ckpt"):
                gpt.setdefault(state.path, WeightFile(state.path, "gpt", True, f"base {version}: {name}"))
            elif name.startswith("s2G"):
                sovits[state.path] = WeightFile(state.path, "sovits", True, f"base {version}: {name}")
    return list(gpt.values()), list(sovits.values())


def _fine_tuned(layout: Layout, folder: Path, pattern: str, kind: str) -> list[WeightFile]:
    roots = [folder, *sorted(layout.home.glob(f"{folder.name}_*"))]  # upstream's GPT_weights_v2/ ...
    found: dict[Path, WeightFile] = {}
    for root in roots:
        if not root.is_dir():
            continue
        for path in root.rglob(pattern):
            if path.is_file() and not path.name.startswith("."):
                found.setdefault(
                    path.resolve(), WeightFile(path, kind, False, str(path.relative_to(layout.home)))
                )
    return sorted(found.values(), key=lambda w: (-w.path.stat().st_mtime, w.label))


def list_weights(layout: Layout) -> WeightsListing:
    """Scan the data folders (fast: names and sizes only, no file is opened)."""
    base_gpt, base_sovits = _base_files(layout)
    gpt = _fine_tuned(layout, layout.gpt_weights, "*.ckpt", "gpt") + base_gpt
    sovits = _fine_tuned(layout, layout.sovits_weights, "*.pth", "sovits") + base_sovits
    hubert_dir = layout.pretrained / get(HUBERT_ASSET).folder
    bert_dir = layout.pretrained / get(BERT_ASSET).folder
    missing = [
        asset_status(get(asset_id), layout.pretrained)
        for asset_id, folder in ((HUBERT_ASSET, hubert_dir), (BERT_ASSET, bert_dir))
        if not _usable(folder)
    ]
    if not base_gpt or not base_sovits:
        v2 = asset_status(get("gpt-sovits-v2"), layout.pretrained)
        if not v2.ok:
            missing.append(v2)
    message = missing_message(missing)
    kinds = tuple(k for k, v in (("GPT", gpt), ("SoVITS", sovits)) if not v)
    if not gpt or not sovits:
        message = _none_found(layout, kinds, message)
    return WeightsListing(tuple(gpt), tuple(sovits), hubert_dir, bert_dir, message, tuple(missing), kinds)


def _none_found(layout: Layout, kinds: tuple[str, ...], below: str) -> Message:
    """The refusal when no GPT or no SoVITS model is there, ``below`` (the missing base models) after it."""
    both = Message("weights.gpt_and_sovits", "GPT and SoVITS")
    template = (
        "No {lacking} model found: put fine-tuned files in {gpt}/ and {sovits}/, or download the base "
        "models (below).{below}"
    )
    return Message(
        "weights.none",
        template,
        lacking=both if len(kinds) == 2 else kinds[0],
        gpt=layout.gpt_weights.name,
        sovits=layout.sovits_weights.name,
        below=Message("weights.below", "\n\n{listing}", listing=below) if below else "",
    )


def _inside_data(path: str | Path, layout: Layout) -> Path:
    for root in (layout.home, layout.pretrained):
        try:
            return resolve_inside(path, root)
        except PathOutsideRoot:
            continue
    template = (
        "{path} is outside the data folder {home}; only models under it (or under {pretrained}) can be used"
    )
    fields = {"path": str(path), "home": str(layout.home), "pretrained": str(layout.pretrained)}
    raise ModelLoadError(Message("weights.err.outside", template, **fields))


def pipeline_spec(
    layout: Layout, gpt: str | Path, sovits: str | Path, device: str = "auto", precision: str = "fp32"
) -> PipelineSpec:
    """A :class:`PipelineSpec` for two chosen files (relative paths start at the data root).

    Raises :class:`ModelLoadError` for a path outside the data folders, a missing file, an
    unknown precision or an unavailable device.
    """
    if precision not in PRECISIONS:
        template = "unknown precision {precision!r}: use one of {choices}"
        raise ModelLoadError(
            Message("weights.err.precision", template, precision=precision, choices=", ".join(PRECISIONS))
        )
    files = []
    for kind, choice in (("GPT", gpt), ("SoVITS", sovits)):
        if not str(choice).strip():
            template = "no {kind} model chosen: pick one (or refresh the list)"
            raise ModelLoadError(Message("weights.err.no_choice", template, kind=kind))
        path = _inside_data(choice, layout)
        if not path.is_file():
            template = "{kind} model {path} not found: refresh the list or copy the file there"
            raise ModelLoadError(Message("weights.err.not_found", template, kind=kind, path=str(path)))
        files.append(path)
    try:
        dev = pick_device(device)
    except RuntimeError as exc:
        raise ModelLoadError(exc.args[0] if exc.args else str(exc)) from None
    return PipelineSpec(
        gpt_path=files[0],
        sovits_path=files[1],
        hubert_dir=layout.pretrained / get(HUBERT_ASSET).folder,
        bert_dir=layout.pretrained / get(BERT_ASSET).folder,
        device=str(dev),
        precision=precision,
        sv_path=layout.pretrained / SV_FILE,  # read only by v2Pro/v2ProPlus models
    )


def flow_matching_version(layout: Layout, sovits: str | Path | None) -> str | None:
    """``"v3"``/``"v4"`` when the chosen SoVITS file is a flow-matching model known from its first
    bytes (sample steps apply), else None (also for a path that is not there or outside the data)."""
    if not sovits or not str(sovits).strip():
        return None
    try:
        return cfm_version(_inside_data(sovits, layout))
    except (ModelLoadError, OSError):
        return None
