"""GPT-SoVITS's speaker-verification file ``pretrained_models/sv/pretrained_eres2netv2w24s4ep4.ckpt``.

Layout: a bare ``torch.save`` of an ERes2NetV2 state dict (name -> float32 tensor, plus the
BatchNorms' int64 ``num_batches_tracked``), with no wrapper dict and no config; upstream hard-codes
the constructor arguments and passes the loaded object straight to ``load_state_dict``. The shape
is therefore read from the tensors (:meth:`SVConfig.from_state_dict`) and the file must then hold
exactly the keys and shapes of the network that shape builds.

Files are read through the restricted unpickler (:mod:`safe_pickle`): nothing in them runs.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from app.assets.registry import DOWNLOAD_COMMAND
from app.messages import Message
from app.models.encoders.sv_net import SV_ASSET, SV_FILE, ERes2NetV2, SVConfig, SVConfigError
from app.models.nn.skip_init import shape_mismatch, state_shapes
from app.models.upstream.headers import HEADER_VERSIONS
from app.models.upstream.safe_pickle import CheckpointError, load, read_file

EXPECTED = f"the ERes2NetV2 speaker-verification weights ({SV_FILE.name}, a bare state dict)"
# Key prefixes of the other models a user might point at this file by mistake, and what they are.
_FOREIGN_PREFIXES = (
    (("model.ar_", "ar_text_embedding.", "ar_audio_embedding."), "a GPT-SoVITS GPT (s1) model's weights"),
    (("enc_p.", "dec.ups.", "ref_enc."), "a GPT-SoVITS SoVITS (s2) model's weights"),
    (("discriminators.",), "a SoVITS discriminator's weights"),
    (("feature_extractor.", "encoder.layers.", "feature_projection."), "a HuBERT content encoder's weights"),
    (("bert.", "embeddings.word_embeddings."), "a BERT model's weights"),
    (("conv_pre.", "resblocks.", "ups."), "a vocoder's weights"),
    (("emb_g.", "f0_decoder."), "a so-vits-svc model's weights"),
)


def _kind_of(keys: list[str]) -> str | None:
    for prefixes, what in _FOREIGN_PREFIXES:
        if any(k.startswith(prefixes) for k in keys):
            return what
    return None


def _refuse_foreign(obj: Any, source: str) -> dict[str, torch.Tensor]:
    """The file's object as a state dict, or a CheckpointError saying what it is instead."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{source}: expected {EXPECTED}, found a pickled {type(obj).__name__}")
    if "state_dict" in obj and ("pytorch-lightning_version" in obj or "epoch" in obj):
        raise CheckpointError(
            f"{source}: this is a Lightning training checkpoint (GPT s1?), expected {EXPECTED}"
        )
    for wrapper in ("weight", "model", "generator", "state_dict"):
        inner = obj.get(wrapper)
        if isinstance(inner, Mapping) and not isinstance(inner, torch.Tensor):
            what = _kind_of([str(k) for k in inner]) or f"a model file with its weights under '{wrapper}'"
            raise CheckpointError(f"{source}: this is {what}, expected {EXPECTED}")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(
            f"{source}: expected {EXPECTED}; found a dict whose entries {bad[:3]} are not named tensors"
        )
    keys = list(obj)
    if "conv1.weight" not in obj or not any(k.startswith("layer1.") for k in keys):
        what = _kind_of(keys)
        if what is not None:
            raise CheckpointError(f"{source}: this is {what}, expected {EXPECTED}")
        raise CheckpointError(
            f"{source}: not {EXPECTED}: no 'conv1.weight' / 'layer1.*' (first keys: {keys[:4]})"
        )
    return dict(obj)


@functools.lru_cache(maxsize=4)
def expected_shapes(config: SVConfig) -> dict[str, torch.Size]:
    """Key -> shape of the state dict of the network ``config`` builds (built once per config)."""
    return state_shapes(lambda: ERes2NetV2(config))


def _check_shapes(config: SVConfig, state: Mapping[str, torch.Tensor], source: str) -> None:
    mismatch = shape_mismatch(expected_shapes(config), state)
    if mismatch:
        raise CheckpointError(
            f"{source}: weights do not fit the ERes2NetV2 their shapes describe ({config}): {mismatch}"
        )
    not_float = [k for k, v in state.items() if not v.is_floating_point() and "num_batches_tracked" not in k]
    if not_float:
        raise CheckpointError(f"{source}: weights must be floating point; {not_float[:3]} are not")


def read_sv(path: str | os.PathLike) -> tuple[SVConfig, dict[str, torch.Tensor]]:
    """Read upstream's speaker-verification file -> (network shape, state dict as stored, on the CPU).

    Raises:
        CheckpointError: missing (the message gives the download command), unreadable, truncated or
            corrupt, another model's file (the message says which), or weights whose keys/shapes do
            not form an ERes2NetV2.
        UnsafePickleError: the pickle asks for code outside the allow-list (nothing was run).
    """
    p = Path(path)
    source = str(p)
    if not p.exists():
        template = (
            "{source}: no such file; the speaker-verification model v2Pro/v2ProPlus need ({file} under "
            "pretrained_models/) is downloaded with: {command} {asset}"
        )
        fields = {"source": source, "file": str(SV_FILE), "command": DOWNLOAD_COMMAND, "asset": SV_ASSET}
        raise CheckpointError(Message("sv.err.missing", template, **fields))
    data = read_file(p)
    if len(data) < 4:
        raise CheckpointError(f"{source}: {len(data)} bytes is too short for {EXPECTED}")
    if data[:2] in HEADER_VERSIONS:
        raise CheckpointError(
            f"{source}: this is a GPT-SoVITS {HEADER_VERSIONS[data[:2]]} SoVITS model file "
            f"(header {data[:2].decode()!r}), expected {EXPECTED}"
        )
    state = _refuse_foreign(load(data, source), source)
    try:
        config = SVConfig.from_state_dict(state)
    except SVConfigError as exc:
        raise CheckpointError(f"{source}: not {EXPECTED}: {exc}") from None
    _check_shapes(config, state, source)
    return config, state
