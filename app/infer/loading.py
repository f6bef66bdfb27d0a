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
from typing import TYPE_CHECKING

import torch

from app.assets.registry import DOWNLOAD_COMMAND
from app.devices import release_free_memory
from app.infer.precision import pack_gpt, plan_for
from app.infer.request import ModelLoadError, PipelineSpec
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
        raise ModelLoadError(f"device {spec.device!r} was asked for but no CUDA GPU is available; use cpu")
    try:
        gpt = load_gpt(spec.gpt_path, device=device)
    except ValueError as exc:  # GPTFileError and friends: the message names the file
        raise ModelLoadError(f"GPT model: {exc}") from exc
    # Packed for decoding (its float32 weights freed) before SoVITS loads: the two files' float32
    # weights are never resident together (the load's peak memory).
    pack_gpt(gpt.model, plan_for(spec.precision, device).gpt)
    release_free_memory()
    sovits, record, vocoder = _load_sovits(spec, device)
    speaker = _load_speaker_encoder(spec, device, record.version) if record.config.is_pro else None
    if speaker is not None and speaker.dim != record.config.sv_dim:
        raise ModelLoadError(
            f"{speaker.path} gives {speaker.dim}-wide speaker embeddings but {spec.sovits_path} "
            f"expects {record.config.sv_dim}: use upstream's ERes2NetV2 file "
            f"({SV_FILE.as_posix()}) with upstream's v2Pro/v2ProPlus models"
        )
    if gpt.version == "v1" and record.version != "v1":
        raise ModelLoadError(
            f"{spec.gpt_path} is a v1 GPT (322 phone symbols) but {spec.sovits_path} is a "
            f"{record.version} SoVITS model: pick a GPT and a SoVITS model of the same version"
        )
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
        raise ModelLoadError(f"SoVITS model: cannot read {spec.sovits_path} ({exc.strerror})") from exc
    if not cfm:
        try:
            sovits, record = load_sovits(spec.sovits_path, device=device)
            return sovits, record, None
        except FlowMatchingModel:
            pass  # a v3/v4 export that starts like a v2 file
        except ValueError as exc:  # CheckpointError / UnsafePickleError
            raise ModelLoadError(f"SoVITS model: {exc}") from exc
    return _load_cfm(spec, device)


def _load_speaker_encoder(spec: PipelineSpec, device: torch.device, version: str) -> SpeakerEncoder:
    """The ERes2NetV2 speaker-verification model a v2Pro/v2ProPlus SoVITS needs."""
    path = spec.sv_path or spec.hubert_dir.parent / SV_FILE
    if not path.is_file():
        raise ModelLoadError(
            f"{spec.sovits_path.name} is a {version} SoVITS model, which needs the speaker-verification "
            f"model {path} (missing): download it with `{DOWNLOAD_COMMAND} {SV_ASSET}` or copy "
            f"GPT-SoVITS's pretrained_models/{SV_FILE.as_posix()} there"
        )
    try:
        return SpeakerEncoder(path, device=device)
    except (OSError, ValueError) as exc:  # CheckpointError / UnsafePickleError name the file
        raise ModelLoadError(f"speaker-verification model: {exc}") from exc


def _load_cfm(spec: PipelineSpec, device: torch.device) -> tuple[CfmSoVITS, SoVITSFile, Vocoder]:
    """A v3/v4 SoVITS file (a LoRA merged onto its base) and its version's vocoder."""
    pretrained = spec.hubert_dir.parent
    base = lora_base(spec.sovits_path, pretrained)
    if base is not None and not base.is_file():
        version = "v3" if base.name == LORA_BASE_FILES["v3"].name else "v4"
        raise ModelLoadError(
            f"{spec.sovits_path.name} is a {version} LoRA voice, merged at load onto the {version} base "
            f"model {base} (missing): download it with `{DOWNLOAD_COMMAND} gpt-sovits-{version}` or copy "
            f"GPT-SoVITS's pretrained_models/{LORA_BASE_FILES[version].as_posix()} there"
        )
    try:
        voice = load_cfm_voice(spec.sovits_path, pretrained, device=device)
    except ValueError as exc:  # CheckpointError / UnsafePickleError name the file
        raise ModelLoadError(f"SoVITS model: {exc}") from exc
    version = voice.version
    place = pretrained / VOCODER_PATHS[version]
    if not place.exists():
        raise ModelLoadError(
            f"{spec.sovits_path.name} is a {version} SoVITS model, which needs the {version} vocoder {place} "
            f"(missing): download it with `{DOWNLOAD_COMMAND} gpt-sovits-{version}` or copy GPT-SoVITS's "
            f"pretrained_models/{VOCODER_PATHS[version].as_posix()} there"
        )
    try:
        vocoder = load_vocoder(version, pretrained, device=device)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{version} vocoder: {exc}") from exc
    return voice.model, voice.record, vocoder


def _missing_model(kind: str, folder: object, asset: str) -> ModelLoadError:
    return ModelLoadError(
        f"{kind} model missing in {folder} (no config.json): download it with "
        f"`{DOWNLOAD_COMMAND} {asset}` or copy GPT-SoVITS's pretrained_models/{asset} there"
    )


def load_hubert(spec: PipelineSpec, device: torch.device, dtype: torch.dtype) -> HubertEncoder:
    """The content encoder of the reference's prompt tokens."""
    if not (spec.hubert_dir / "config.json").is_file():
        raise _missing_model("HuBERT", spec.hubert_dir, HUBERT_ASSET)
    try:
        return HubertEncoder(spec.hubert_dir, device=device, dtype=dtype, release_pages=True)
    except (FileNotFoundError, OSError, ValueError) as exc:
        raise ModelLoadError(f"HuBERT model in {spec.hubert_dir}: {exc}") from exc


def load_bert(spec: PipelineSpec, device: torch.device, bert_dim: int) -> BertFeaturizer:
    """The BERT phone featurizer of Chinese text; its width must be the GPT's ``bert_dim``."""
    from app.models.encoders.bert import BertFeaturizer, BertModelMissing, BertOptions

    if not (spec.bert_dir / "config.json").is_file():
        raise _missing_model("BERT", spec.bert_dir, BERT_ASSET)
    try:
        bert = BertFeaturizer(BertOptions(spec.bert_dir, device=str(device)))
    except (BertModelMissing, OSError, ValueError) as exc:
        raise ModelLoadError(f"BERT model in {spec.bert_dir}: {exc}") from exc
    if bert.dim != bert_dim:
        raise ModelLoadError(
            f"BERT in {spec.bert_dir} gives {bert.dim}-wide features but the GPT expects "
            f"{bert_dim}: use chinese-roberta-wwm-ext-large"
        )
    return bert
