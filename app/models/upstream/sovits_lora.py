"""GPT-SoVITS v3/v4 LoRA files: read one, merge it onto its base model's weights.

Upstream trains v3/v4 voices as LoRA adapters on the flow-matching DiT of the pretrained
``s2Gv3.pth`` / ``gsv-v4-pretrained/s2Gv4.pth`` and exports only what training changed:

- Container: ``torch.save`` zip whose leading ``PK`` is replaced by ``03`` (v3) or ``04`` (v4);
  ``{"weight": fp16 tensors, "config": utils.HParams, "info": "<e>epoch_<s>iteration",
  "lora_rank": int}``.
- ``weight``: the adapter matrices ``cfm.base_model.model.estimator.transformer_blocks.N.attn.
  {to_q,to_k,to_v,to_out.0}.lora_{A,B}.default.weight`` (A ``[r, in]``, B ``[out, r]``), every other
  trainable tensor (``ref_enc``, ``bridge``, ``wns1``, ``linear_mel``) and every buffer (the
  quantizer's codebook, the rotary ``inv_freq``), names of the CFM under peft's
  ``cfm.base_model.model.`` prefix.

Merging (what upstream's loader does with peft, ``lora_alpha = r`` so the scale is 1): each
adapted weight becomes ``W + B @ A``; every other tensor of the file replaces the base's. The
merged state dict is an ordinary v3/v4 state dict.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from app.models.upstream.safe_pickle import CheckpointError, HParams
from app.models.upstream.sovits import _open

# Leading bytes of a LoRA export -> version of its base.
LORA_HEADERS = {b"03": "v3", b"04": "v4"}
VERSION_LORA_HEADERS = {v: h for h, v in LORA_HEADERS.items()}
# Linear layers of each DiT block that carry adapters (upstream's target_modules).
LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
# Ranks upstream's training UI offers.
LORA_RANKS = (16, 32, 64, 128)
PEFT_PREFIX = "cfm.base_model.model."
_ADAPTER = re.compile(r"^(?P<layer>.+)\.lora_(?P<which>[AB])\.default\.weight$")


@dataclass(frozen=True)
class LoRAFile:
    """A v3/v4 LoRA export as read."""

    path: str
    version: str  # "v3" or "v4": the base it adapts
    rank: int
    # layer name in the merged model (``cfm.estimator....attn.to_q``) -> (A [r, in], B [out, r])
    adapters: dict[str, tuple[torch.Tensor, torch.Tensor]]
    # other tensors, under their merged-model names: they replace the base's
    replaced: dict[str, torch.Tensor]
    hparams: HParams | None
    info: str | None


def lora_version(path: str | Path) -> str | None:
    """``"v3"``/``"v4"`` when the file starts with a LoRA header, else None (reads 2 bytes)."""
    with open(path, "rb") as f:
        return LORA_HEADERS.get(f.read(2))


def _merged_name(name: str) -> str:
    return "cfm." + name[len(PEFT_PREFIX) :] if name.startswith(PEFT_PREFIX) else name


def read_lora(path: str | Path) -> LoRAFile:
    """Read a LoRA export; :class:`CheckpointError` says what is wrong with a bad one."""
    source = str(path)
    header, obj, _ = _open(path, "a GPT-SoVITS v3/v4 LoRA file")
    version = LORA_HEADERS.get(header)
    if version is None:
        raise CheckpointError(
            f"{source}: not a v3/v4 LoRA file: it starts with {header!r}, LoRA exports start with "
            "'03' (v3) or '04' (v4)"
        )
    if not isinstance(obj, Mapping) or not isinstance(obj.get("weight"), Mapping):
        raise CheckpointError(f"{source}: a LoRA file is a dict with 'weight', 'config' and 'lora_rank'")
    rank = obj.get("lora_rank")
    if isinstance(rank, str) and rank.isdigit():
        rank = int(rank)
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        raise CheckpointError(f"{source}: 'lora_rank' must be a positive whole number, found {rank!r}")
    halves: dict[str, dict[str, torch.Tensor]] = {}
    replaced: dict[str, torch.Tensor] = {}
    for name, tensor in obj["weight"].items():
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            raise CheckpointError(f"{source}: weight entries must be named tensors; {name!r} is not")
        found = _ADAPTER.match(name)
        if found is None:
            replaced[_merged_name(name)] = tensor
            continue
        halves.setdefault(_merged_name(found["layer"]), {})[found["which"]] = tensor
    adapters: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for layer, pair in sorted(halves.items()):
        if set(pair) != {"A", "B"}:
            raise CheckpointError(f"{source}: adapter {layer} has lora_{''.join(pair)} but not both A and B")
        a, b = pair["A"], pair["B"]
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] != rank or b.shape[1] != rank:
            raise CheckpointError(
                f"{source}: adapter {layer} has A {tuple(a.shape)} and B {tuple(b.shape)}; expected "
                f"[{rank}, in] and [out, {rank}] for lora_rank {rank}"
            )
        if layer.rsplit(".attn.", 1)[-1] not in LORA_TARGETS or not layer.startswith("cfm.estimator."):
            raise CheckpointError(
                f"{source}: adapter on {layer}; upstream adapts only {LORA_TARGETS} of the DiT"
            )
        adapters[layer] = (a, b)
    if not adapters:
        raise CheckpointError(f"{source}: no LoRA adapters (lora_A/lora_B weights) in the file")
    config = obj.get("config")
    info = obj.get("info")
    return LoRAFile(
        source, version, rank, adapters, replaced, config if isinstance(config, HParams) else None,
        info if isinstance(info, str) else None,
    )  # fmt: skip


def merge_lora(
    base: Mapping[str, torch.Tensor], lora: LoRAFile, base_source: str = "the base"
) -> dict[str, torch.Tensor]:
    """The base state dict with ``lora`` merged in (adapted weights as float32 sums).

    Raises :class:`CheckpointError` when an adapter or a replaced tensor does not fit the base
    (a LoRA of another model, or the wrong base version).
    """
    merged = dict(base)
    for layer, (a, b) in lora.adapters.items():
        key = f"{layer}.weight"
        weight = base.get(key)
        if weight is None:
            raise CheckpointError(f"{lora.path}: adapts {key}, which {base_source} does not have")
        if tuple(weight.shape) != (b.shape[0], a.shape[1]):
            raise CheckpointError(
                f"{lora.path}: adapter {layer} gives [{b.shape[0]}, {a.shape[1]}] but {base_source} has "
                f"{key} of {tuple(weight.shape)}: the LoRA was trained on another base model"
            )
        # float32, as upstream merges into its float32 model (fp16 would round the sum again)
        merged[key] = weight.float() + b.float() @ a.float()
    for key, tensor in lora.replaced.items():
        old = base.get(key)
        if old is None:
            raise CheckpointError(f"{lora.path}: holds {key}, which {base_source} does not have")
        if old.shape != tensor.shape:
            raise CheckpointError(
                f"{lora.path}: {key} is {tuple(tensor.shape)} but {base_source} has {tuple(old.shape)}: "
                "the LoRA was trained on another base model"
            )
        merged[key] = tensor
    return merged
