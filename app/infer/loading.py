"""Loading the models of one :class:`PipelineSpec`: every failure a :class:`ModelLoadError` that names
the file at fault and how to get the right one.

:func:`load_models` loads the GPT and SoVITS files (and what the SoVITS version needs beside them:
the v2Pro* speaker-verification model, the v3/v4 vocoder, the v3/v4 LoRA base) and checks that they
fit together; :func:`load_hubert` and :func:`load_bert` load the encoders a pipeline needs only for
some requests, on first use.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from app.assets.registry import DOWNLOAD_COMMAND
from app.devices import release_free_memory
from app.infer.precision import pack_gpt, plan_for
from app.infer.request import ModelLoadError, PipelineSpec
from app.messages import Message
from app.models.encoders.hubert import HubertEncoder
from app.models.encoders.sv import SV_ASSET, SV_FILE, SpeakerEncoder
from app.models.sovits.cfm_model import CfmSoVITS
from app.models.sovits.model import SoVITS
from app.models.upstream.cfm_voice import LORA_BASE_FILES, is_cfm_file, load_cfm_voice, lora_base
from app.models.upstream.gpt import GPTFile, load_gpt
from app.models.upstream.sovits import FlowMatchingModel, SoVITSFile, load_sovits
from app.models.upstream.vocoder import load_vocoder
from app.models.vocoders import VOCODER_PATHS, Vocoder

if TYPE_CHECKING:  # BERT pulls in transformers: imported in load_bert
    from app.models.encoders.bert import BertFeaturizer

log = logging.getLogger(__name__)

HUBERT_ASSET, BERT_ASSET = "chinese-hubert-base", "chinese-roberta-wwm-ext-large"


@dataclass(frozen=True)
class LoadedModels:
    """The models of one spec, checked to fit each other."""

    gpt: GPTFile
    sovits: SoVITS | CfmSoVITS
    # v2Pro*: the speaker-verification encoder whose embedding joins the timbre.
    speaker: SpeakerEncoder | None
    # v3/v4: the vocoder that turns the flow matching's mel into audio.
    vocoder: Vocoder | None


def load_models(spec: PipelineSpec) -> LoadedModels:
    """Load the GPT and SoVITS files of ``spec`` and what their version needs beside them."""
    device = torch.device(spec.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        template = "device {device!r} was asked for but no CUDA GPU is available; use cpu"
        raise ModelLoadError(Message("load.err.no_cuda", template, device=spec.device))
    try:
        gpt = load_gpt(spec.gpt_path, device=device)
    except ValueError as exc:  # GPTFileError and friends: the message names the file
        raise ModelLoadError(Message("load.err.gpt", "GPT model: {problem}", problem=_problem(exc))) from exc
    # Packed for decoding (its float32 weights freed) before SoVITS loads: the two files' float32
    # weights are never resident together (the load's peak memory).
    plan = plan_for(spec.precision, device)
    pack_gpt(gpt.model, plan.gpt)
    release_free_memory()
    sovits, record, vocoder = _load_sovits(spec, device)
    speaker = (
        _load_speaker_encoder(spec, device, record.version, plan.speaker) if record.config.is_pro else None
    )
    if speaker is not None and speaker.dim != record.config.sv_dim:
        template = (
            "{path} gives {dim}-wide speaker embeddings but {sovits} expects {expected}: use "
            "upstream's ERes2NetV2 file ({file}) with upstream's v2Pro/v2ProPlus models"
        )
        fields = {"path": str(speaker.path), "dim": speaker.dim, "sovits": str(spec.sovits_path)}
        fields |= {"expected": record.config.sv_dim, "file": SV_FILE.as_posix()}
        raise ModelLoadError(Message("load.err.sv_width", template, **fields))
    if gpt.version == "v1" and record.version != "v1":
        template = (
            "{gpt} is a v1 GPT (322 phone symbols) but {sovits} is a {version} SoVITS model: "
            "pick a GPT and a SoVITS model of the same version"
        )
        fields = {"gpt": str(spec.gpt_path), "sovits": str(spec.sovits_path), "version": record.version}
        raise ModelLoadError(Message("load.err.v1_mix", template, **fields))
    log.info(
        "TTS pipeline: GPT %s (%s), SoVITS %s (%s), %s, %s",
        spec.gpt_path.name,
        gpt.version,
        spec.sovits_path.name,
        record.version,
        device,
        spec.precision,
    )
    return LoadedModels(gpt, sovits, speaker, vocoder)


def _load_sovits(
    spec: PipelineSpec, device: torch.device
) -> tuple[SoVITS | CfmSoVITS, SoVITSFile, Vocoder | None]:
    """The SoVITS model, its file record and (v3/v4) its vocoder."""
    try:
        cfm = is_cfm_file(spec.sovits_path)
    except OSError as exc:
        template = "SoVITS model: cannot read {path} ({problem})"
        fields = {"path": str(spec.sovits_path), "problem": str(exc.strerror)}
        raise ModelLoadError(Message("load.err.sovits_read", template, **fields)) from exc
    if not cfm:
        try:
            sovits, record = load_sovits(spec.sovits_path, device=device)
            return sovits, record, None
        except FlowMatchingModel:
            pass  # a v3/v4 export that starts like a v2 file
        except ValueError as exc:  # CheckpointError / UnsafePickleError
            template = "SoVITS model: {problem}"
            raise ModelLoadError(Message("load.err.sovits", template, problem=_problem(exc))) from exc
    return _load_cfm(spec, device)


def _load_speaker_encoder(
    spec: PipelineSpec, device: torch.device, version: str, dtype: torch.dtype
) -> SpeakerEncoder:
    """The ERes2NetV2 speaker-verification model a v2Pro/v2ProPlus SoVITS needs, in ``dtype``."""
    path = spec.sv_path or spec.hubert_dir.parent / SV_FILE
    if not path.is_file():
        template = (
            "{name} is a {version} SoVITS model, which needs the speaker-verification model {path} "
            "(missing): download it with `{command}` or copy GPT-SoVITS's pretrained_models/{file} there"
        )
        fields = {"name": spec.sovits_path.name, "version": version, "path": str(path)}
        fields |= {"command": f"{DOWNLOAD_COMMAND} {SV_ASSET}", "file": SV_FILE.as_posix()}
        raise ModelLoadError(Message("load.err.sv_missing", template, **fields))
    try:
        return SpeakerEncoder(path, device=device, dtype=dtype)
    except (OSError, ValueError) as exc:  # CheckpointError / UnsafePickleError name the file
        template = "speaker-verification model: {problem}"
        raise ModelLoadError(Message("load.err.sv", template, problem=_problem(exc))) from exc


def _missing_base_file(
    spec: PipelineSpec, version: str, path: Path, file: Path, *, key: str, template: str
) -> ModelLoadError:
    """A v3/v4 voice's missing base file (``file`` under pretrained_models/, expected at ``path``),
    with the download command of its version's models."""
    fields = {"name": spec.sovits_path.name, "version": version, "path": str(path)}
    fields |= {"command": f"{DOWNLOAD_COMMAND} gpt-sovits-{version}", "file": file.as_posix()}
    return ModelLoadError(Message(key, template, **fields))


def _load_cfm(spec: PipelineSpec, device: torch.device) -> tuple[CfmSoVITS, SoVITSFile, Vocoder]:
    """A v3/v4 SoVITS file (a LoRA merged onto its base) and its version's vocoder."""
    pretrained = spec.hubert_dir.parent
    base = lora_base(spec.sovits_path, pretrained)
    if base is not None and not base.is_file():
        version = "v3" if base.name == LORA_BASE_FILES["v3"].name else "v4"
        template = (
            "{name} is a {version} LoRA voice, merged at load onto the {version} base model {path} "
            "(missing): download it with `{command}` or copy GPT-SoVITS's pretrained_models/{file} there"
        )
        raise _missing_base_file(
            spec, version, base, LORA_BASE_FILES[version], key="load.err.lora_base", template=template
        )
    try:
        voice = load_cfm_voice(spec.sovits_path, pretrained, device=device)
    except ValueError as exc:  # CheckpointError / UnsafePickleError name the file
        template = "SoVITS model: {problem}"
        raise ModelLoadError(Message("load.err.sovits", template, problem=_problem(exc))) from exc
    version = voice.version
    place = pretrained / VOCODER_PATHS[version]
    if not place.exists():
        template = (
            "{name} is a {version} SoVITS model, which needs the {version} vocoder {path} (missing): "
            "download it with `{command}` or copy GPT-SoVITS's pretrained_models/{file} there"
        )
        raise _missing_base_file(
            spec, version, place, VOCODER_PATHS[version], key="load.err.vocoder_missing", template=template
        )
    try:
        vocoder = load_vocoder(version, pretrained, device=device)
    except (OSError, ValueError) as exc:
        template = "{version} vocoder: {problem}"
        fields = {"version": version, "problem": _problem(exc)}
        raise ModelLoadError(Message("load.err.vocoder", template, **fields)) from exc
    return voice.model, voice.record, vocoder


def _problem(exc: BaseException) -> str:
    """What a lower layer said: its Message when it gave one (the page translates it), else its text."""
    said = exc.args[0] if exc.args else None
    return said if isinstance(said, Message) else str(exc)


def _missing_model(folder: object, asset: str, kind: str) -> ModelLoadError:
    template = (
        "{kind} model missing in {folder} (no config.json): download it with `{command}` "
        "or copy GPT-SoVITS's pretrained_models/{asset} there"
    )
    fields = {"kind": kind, "folder": str(folder), "command": f"{DOWNLOAD_COMMAND} {asset}", "asset": asset}
    return ModelLoadError(Message("load.err.encoder_missing", template, **fields))


def load_hubert(spec: PipelineSpec, device: torch.device, dtype: torch.dtype) -> HubertEncoder:
    """The content encoder of the reference's prompt tokens."""
    if not (spec.hubert_dir / "config.json").is_file():
        raise _missing_model(spec.hubert_dir, HUBERT_ASSET, kind="HuBERT")
    try:
        return HubertEncoder(spec.hubert_dir, device=device, dtype=dtype, release_pages=True)
    except (FileNotFoundError, OSError, ValueError) as exc:
        template = "HuBERT model in {folder}: {problem}"
        fields = {"folder": str(spec.hubert_dir), "problem": _problem(exc)}
        raise ModelLoadError(Message("load.err.hubert", template, **fields)) from exc


def load_bert(spec: PipelineSpec, device: torch.device, bert_dim: int) -> BertFeaturizer:
    """The BERT phone featurizer of Chinese text; its width must be the GPT's ``bert_dim``."""
    from app.models.encoders.bert import BertFeaturizer, BertModelMissing, BertOptions

    if not (spec.bert_dir / "config.json").is_file():
        raise _missing_model(spec.bert_dir, BERT_ASSET, kind="BERT")
    try:
        bert = BertFeaturizer(BertOptions(spec.bert_dir, device=str(device)))
    except (BertModelMissing, OSError, ValueError) as exc:
        template = "BERT model in {folder}: {problem}"
        fields = {"folder": str(spec.bert_dir), "problem": _problem(exc)}
        raise ModelLoadError(Message("load.err.bert", template, **fields)) from exc
    if bert.dim != bert_dim:
        template = "BERT in {folder} gives {dim}-wide features but the GPT expects {expected}: use {asset}"
        fields = {"folder": str(spec.bert_dir), "dim": bert.dim, "expected": bert_dim, "asset": BERT_ASSET}
        raise ModelLoadError(Message("load.err.bert_width", template, **fields))
    return bert
