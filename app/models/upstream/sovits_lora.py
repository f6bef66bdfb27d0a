"""GPT-SoVITS v3/v4 LoRA files: read one, merge it onto its base model's weights, write one.

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

Writing (:func:`write_lora`, upstream ``process_ckpt.savee`` with ``lora_rank``): the same
container from the adapters and the other trained tensors under their merged-model names, the
config tree of :func:`app.models.upstream.sovits.write_sovits` with ``train.lora_rank`` as the
string upstream's UI passes. Upstream names the file ``<exp>_e<epoch>_s<step>_l<rank>.pth``.
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from app.fileio import atomic_write
from app.messages import Message
from app.models.sovits.config import SoVITSConfig
from app.models.upstream.headers import LORA_HEADERS
from app.models.upstream.safe_pickle import CheckpointError, HParams, save
from app.models.upstream.sovits import _hparams_for, _open
from app.models.upstream.sovits_cfm import OPTIONAL_CFM_PREFIX

# LORA_HEADERS: leading bytes of a LoRA export -> version of its base (the SoVITS readers' table).
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


def _peft_name(name: str) -> str:
    """Merged-model name -> the name in the file (the CFM's tensors sit under peft's wrapper)."""
    return PEFT_PREFIX + name[len("cfm.") :] if name.startswith("cfm.") else name


def read_lora(path: str | Path) -> LoRAFile:
    """Read a LoRA export; :class:`CheckpointError` says what is wrong with a bad one."""
    source = str(path)
    header, obj, _ = _open(path, "a GPT-SoVITS v3/v4 LoRA file")
    version = LORA_HEADERS.get(header)
    if version is None:
        template = "{source}: not a v3/v4 LoRA file: it starts with {header!r}, LoRA exports start with '03' (v3) or '04' (v4)"
        raise CheckpointError(Message("lorafile.err.header", template, source=source, header=header))
    if not isinstance(obj, Mapping) or not isinstance(obj.get("weight"), Mapping):
        template = "{source}: a LoRA file is a dict with 'weight', 'config' and 'lora_rank'"
        raise CheckpointError(Message("lorafile.err.dict", template, source=source))
    rank = obj.get("lora_rank")
    if isinstance(rank, str) and rank.isdigit():
        rank = int(rank)
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        template = "{source}: 'lora_rank' must be a positive whole number, found {rank!r}"
        raise CheckpointError(Message("lorafile.err.rank", template, source=source, rank=rank))
    halves: dict[str, dict[str, torch.Tensor]] = {}
    replaced: dict[str, torch.Tensor] = {}
    for name, tensor in obj["weight"].items():
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            template = "{source}: weight entries must be named tensors; {name!r} is not"
            raise CheckpointError(Message("lorafile.err.entries", template, source=source, name=name))
        found = _ADAPTER.match(name)
        if found is None:
            replaced[_merged_name(name)] = tensor
            continue
        halves.setdefault(_merged_name(found["layer"]), {})[found["which"]] = tensor
    adapters: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for layer, pair in sorted(halves.items()):
        if set(pair) != {"A", "B"}:
            template = "{source}: adapter {layer} has lora_{halves} but not both A and B"
            raise CheckpointError(
                Message("lorafile.err.half", template, source=source, layer=layer, halves="".join(pair))
            )
        a, b = pair["A"], pair["B"]
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] != rank or b.shape[1] != rank:
            template = "{source}: adapter {layer} has A {a} and B {b}; expected [{rank}, in] and [out, {rank}] for lora_rank {rank}"
            fields = {
                "source": source,
                "layer": layer,
                "a": str(tuple(a.shape)),
                "b": str(tuple(b.shape)),
                "rank": rank,
            }
            raise CheckpointError(Message("lorafile.err.shapes", template, **fields))
        if layer.rsplit(".attn.", 1)[-1] not in LORA_TARGETS or not layer.startswith("cfm.estimator."):
            template = "{source}: adapter on {layer}; upstream adapts only {targets} of the DiT"
            raise CheckpointError(
                Message(
                    "lorafile.err.target", template, source=source, layer=layer, targets=str(LORA_TARGETS)
                )
            )
        adapters[layer] = (a, b)
    if not adapters:
        template = "{source}: no LoRA adapters (lora_A/lora_B weights) in the file"
        raise CheckpointError(Message("lorafile.err.no_adapters", template, source=source))
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
            template = "{path}: adapts {weight}, which {base} does not have"
            raise CheckpointError(
                Message(
                    "lorafile.err.base_lacks", template, path=str(lora.path), weight=key, base=base_source
                )
            )
        if tuple(weight.shape) != (b.shape[0], a.shape[1]):
            template = "{path}: adapter {layer} gives [{rows}, {cols}] but {base} has {weight} of {shape}: the LoRA was trained on another base model"
            fields = {
                "path": str(lora.path),
                "layer": layer,
                "rows": b.shape[0],
                "cols": a.shape[1],
                "base": base_source,
            }
            raise CheckpointError(
                Message(
                    "lorafile.err.base_shape", template, **fields, weight=key, shape=str(tuple(weight.shape))
                )
            )
        # float32, as upstream merges into its float32 model (fp16 would round the sum again)
        merged[key] = weight.float() + b.float() @ a.float()
    for key, tensor in lora.replaced.items():
        old = base.get(key)
        if old is None and key.startswith(OPTIONAL_CFM_PREFIX):
            # The training-only head (upstream's model always has one; bases may lack it).
            merged[key] = tensor
            continue
        if old is None:
            template = "{path}: holds {weight}, which {base} does not have"
            raise CheckpointError(
                Message(
                    "lorafile.err.base_lacks_tensor",
                    template,
                    path=str(lora.path),
                    weight=key,
                    base=base_source,
                )
            )
        if old.shape != tensor.shape:
            template = "{path}: {weight} is {shape} but {base} has {base_shape}: the LoRA was trained on another base model"
            fields = {
                "path": str(lora.path),
                "weight": key,
                "shape": str(tuple(tensor.shape)),
                "base": base_source,
            }
            raise CheckpointError(
                Message("lorafile.err.base_tensor", template, **fields, base_shape=str(tuple(old.shape)))
            )
        merged[key] = tensor
    return merged


def lora_weights(
    adapters: Mapping[str, tuple[torch.Tensor, torch.Tensor]], replaced: Mapping[str, torch.Tensor]
) -> OrderedDict[str, torch.Tensor]:
    """The ``weight`` dict of a LoRA file (tensors as given, not yet fp16), in upstream's order.

    Args:
        adapters: adapted layer (merged-model name, ``cfm.estimator....attn.to_q``) -> (A [r, in],
            B [out, r]), in module order.
        replaced: every other trained tensor and every buffer under merged-model names
            (``ref_enc.*``, ``quantizer.*``, ``bridge.*``, ``wns1.*``, ``linear_mel.*``,
            ``cfm.estimator.rotary_embed.inv_freq``), in state-dict order.

    Returns:
        peft names, ordered as upstream's state dict: the tensors outside the CFM, then the
        CFM's other tensors, then ``lora_A``/``lora_B`` per layer.

    Raises:
        ValueError: an adapter on a layer upstream does not adapt, or a name that would collide.
    """
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for name, tensor in sorted(replaced.items(), key=lambda kv: kv[0].startswith("cfm.")):
        if _ADAPTER.match(name) or ".lora_" in name:
            template = "{name}: adapter matrices go in 'adapters', not among the replaced tensors"
            raise ValueError(Message("lorafile.err.replaced", template, name=name))
        out[_peft_name(name)] = tensor
    for layer, (a, b) in adapters.items():
        if layer.rsplit(".attn.", 1)[-1] not in LORA_TARGETS or not layer.startswith("cfm.estimator."):
            template = "adapter on {layer}; upstream adapts only {targets} of the DiT"
            raise ValueError(
                Message("lorafile.err.write_target", template, layer=layer, targets=str(LORA_TARGETS))
            )
        out[f"{_peft_name(layer)}.lora_A.default.weight"] = a
        out[f"{_peft_name(layer)}.lora_B.default.weight"] = b
    return out


def write_lora(
    path: str | os.PathLike,
    adapters: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
    replaced: Mapping[str, torch.Tensor],
    config: SoVITSConfig,
    *,
    rank: int,
    epoch: int,
    step: int,
) -> Path:
    """Write a LoRA export upstream's web UI loads (``SoVITS_weights_v3/v4``), atomically.

    Args:
        path: the target file (upstream: ``<exp>_e<epoch>_s<step>_l<rank>.pth``).
        adapters, replaced: what training changed, as :func:`lora_weights` takes them (the
            trainer's LoRA layers ``W + B @ A`` with scale 1, i.e. alpha = rank).
        config: the base model's v3/v4 config (its ``extra`` tree carries the run settings).
        rank: the adapters' rank; every A must be ``[rank, in]`` and every B ``[out, rank]``.
        epoch, step: written as ``info`` ``"<epoch>epoch_<step>iteration"``.

    Returns:
        The written path. :func:`read_lora` reads it back and :func:`merge_lora` merges it.

    Raises:
        ValueError: not a v3/v4 config, no adapters, or matrices that do not have ``rank``.
    """
    if config.version not in VERSION_LORA_HEADERS:
        raise ValueError(
            Message(
                "lorafile.err.write_version",
                "LoRA exports are v3/v4 files; the config is {version}",
                version=config.version,
            )
        )
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(
            Message(
                "lorafile.err.write_rank", "rank must be a positive whole number, got {rank!r}", rank=rank
            )
        )
    if not adapters:
        template = "no adapters to write: a LoRA export holds at least one lora_A/lora_B pair"
        raise ValueError(Message("lorafile.err.write_none", template))
    wrong = [
        f"{layer}: A {tuple(a.shape)}, B {tuple(b.shape)}"
        for layer, (a, b) in adapters.items()
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] != rank or b.shape[1] != rank
    ]
    if wrong:
        template = "adapters do not have rank {rank} ([{rank}, in] and [out, {rank}]): {wrong}"
        raise ValueError(Message("lorafile.err.write_shapes", template, rank=rank, wrong=str(wrong[:3])))
    target = Path(path)
    payload: OrderedDict[str, Any] = OrderedDict()
    payload["weight"] = {
        k: v.detach().to("cpu", torch.float16) for k, v in lora_weights(adapters, replaced).items()
    }
    hparams = _hparams_for(config, target.stem)
    hparams["train"]["lora_rank"] = str(rank)  # upstream's UI passes the radio's string
    payload["config"] = hparams
    payload["info"] = f"{epoch}epoch_{step}iteration"
    payload["lora_rank"] = rank
    with atomic_write(target, "wb") as f:
        save(payload, f)
        f.seek(0)
        f.write(VERSION_LORA_HEADERS[config.version])
    return target
