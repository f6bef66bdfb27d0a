"""A GPT-SoVITS v3/v4 voice ready to synthesize: the SoVITS model (whole, or a LoRA on its base).

Upstream's places under ``pretrained_models/``: the base models ``s2Gv3.pth`` and
``gsv-v4-pretrained/s2Gv4.pth`` (a LoRA export holds only what its training changed and is merged
onto the base of its version, wherever the export itself lives) and the vocoders
(:data:`app.models.vocoders.VOCODER_PATHS`).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from app.messages import Message
from app.models.sovits.cfm_model import CfmSoVITS
from app.models.upstream.headers import LORA_HEADERS
from app.models.upstream.safe_pickle import CheckpointError
from app.models.upstream.sovits import SoVITSFile, load_cfm_sovits, read_sovits
from app.models.upstream.sovits_cfm import HASH_BYTES, PRETRAINED_CFM_HASHES, build_cfm_sovits
from app.models.upstream.sovits_lora import LoRAFile, lora_version, merge_lora, read_lora

# Base model of each LoRA version, relative to pretrained_models/ (upstream's fixed paths).
LORA_BASE_FILES: dict[str, Path] = {"v3": Path("s2Gv3.pth"), "v4": Path("gsv-v4-pretrained") / "s2Gv4.pth"}


@dataclass(frozen=True)
class CfmVoice:
    """What was loaded for a v3/v4 SoVITS file."""

    model: CfmSoVITS
    record: SoVITSFile  # the whole file, or the LoRA's base
    lora: LoRAFile | None  # the LoRA merged onto ``record``, if any

    @property
    def version(self) -> str:
        return self.record.version


# Headers that only v3/v4 files carry (02: v3 as upstream's table has it; 03/04: LoRA exports).
CFM_HEADERS = {b"02": "v3", **LORA_HEADERS}


def cfm_version(path: str | os.PathLike) -> str | None:
    """``"v3"``/``"v4"`` for a file that is surely v3/v4 from its first bytes (a ``02``/``03``/``04``
    header, or upstream's official base files by the MD5 of the first 8192 bytes), else None.

    Other v3/v4 exports start with ``PK`` like v1/v2 files;
    :func:`~app.models.upstream.sovits.load_sovits` names them
    (:class:`~app.models.upstream.sovits.FlowMatchingModel`).
    """
    with open(path, "rb") as f:
        head = f.read(HASH_BYTES)
    if head[:2] in CFM_HEADERS:
        return CFM_HEADERS[head[:2]]
    return PRETRAINED_CFM_HASHES.get(hashlib.md5(head, usedforsecurity=False).hexdigest())


def is_cfm_file(path: str | os.PathLike) -> bool:
    """True when :func:`cfm_version` knows the file for a v3/v4 one."""
    return cfm_version(path) is not None


def lora_base(path: str | os.PathLike, pretrained_dir: str | os.PathLike) -> Path | None:
    """Where the base of a LoRA file lives (None when ``path`` is not a LoRA export)."""
    version = lora_version(path)
    return None if version is None else Path(pretrained_dir) / LORA_BASE_FILES[version]


def load_cfm_voice(
    path: str | os.PathLike,
    pretrained_dir: str | os.PathLike,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> CfmVoice:
    """Load a v3/v4 SoVITS file for inference; a LoRA export is merged onto its base first.

    Raises:
        CheckpointError: the file (or its base) is unreadable, not v3/v4, or the LoRA does not
            fit the base; a missing base is named with its expected place.
    """
    base_path = lora_base(path, pretrained_dir)
    if base_path is None:
        model, record = load_cfm_sovits(path, device, dtype)
        return CfmVoice(model, record, None)
    lora = read_lora(path)
    if not base_path.is_file():
        template = "{path} is a {version} LoRA voice; it is merged onto the {version} base model {base}, which is missing"
        raise CheckpointError(
            Message(
                "lorafile.err.no_base", template, path=str(path), version=lora.version, base=str(base_path)
            )
        )
    base = read_sovits(base_path, expect_version=lora.version)
    state = merge_lora(base.state_dict, lora, str(base_path))
    model = build_cfm_sovits(state, base.config, device, dtype, f"{path} merged onto {base_path}")
    return CfmVoice(model, base, lora)
