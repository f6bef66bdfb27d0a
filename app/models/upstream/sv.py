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
from app.messages import Message, said
from app.models.encoders.sv_net import SV_ASSET, SV_FILE, ERes2NetV2, SVConfig, SVConfigError
from app.models.nn.skip_init import shape_mismatch, state_shapes
from app.models.upstream.safe_pickle import CheckpointError
from app.models.upstream.vocoder import read_model_pickle

EXPECTED = Message(
    "sv.expected",
    "the ERes2NetV2 speaker-verification weights ({file}, a bare state dict)",
    file=SV_FILE.name,
)
# Key prefixes of the other models a user might point at this file by mistake, and what they are.
_FOREIGN_PREFIXES = (
    (
        ("model.ar_", "ar_text_embedding.", "ar_audio_embedding."),
        Message("vocfile.what.gpt", "a GPT-SoVITS GPT (s1) model's weights"),
    ),
    (
        ("enc_p.", "dec.ups.", "ref_enc."),
        Message("vocfile.what.sovits", "a GPT-SoVITS SoVITS (s2) model's weights"),
    ),
    (("discriminators.",), Message("sv.what.discriminator", "a SoVITS discriminator's weights")),
    (
        ("feature_extractor.", "encoder.layers.", "feature_projection."),
        Message("vocfile.what.hubert", "a HuBERT content encoder's weights"),
    ),
    (("bert.", "embeddings.word_embeddings."), Message("vocfile.what.bert", "a BERT model's weights")),
    (("conv_pre.", "resblocks.", "ups."), Message("sv.what.vocoder", "a vocoder's weights")),
    (("emb_g.", "f0_decoder."), Message("vocfile.what.svc", "a so-vits-svc model's weights")),
)


def _kind_of(keys: list[str]) -> str | None:
    for prefixes, what in _FOREIGN_PREFIXES:
        if any(k.startswith(prefixes) for k in keys):
            return what
    return None


def _is_other(source: str, what: str) -> Message:
    template = "{source}: this is {what}, expected {expected}"
    return Message("vocfile.err.other", template, source=source, what=what, expected=EXPECTED)


def _refuse_foreign(obj: Any, source: str) -> dict[str, torch.Tensor]:
    """The file's object as a state dict, or a CheckpointError saying what it is instead."""
    if not isinstance(obj, Mapping):
        template = "{source}: expected {expected}, found a pickled {kind}"
        raise CheckpointError(
            Message(
                "vocfile.err.pickled", template, source=source, expected=EXPECTED, kind=type(obj).__name__
            )
        )
    if "state_dict" in obj and ("pytorch-lightning_version" in obj or "epoch" in obj):
        template = "{source}: this is a Lightning training checkpoint (GPT s1?), expected {expected}"
        raise CheckpointError(Message("vocfile.err.lightning", template, source=source, expected=EXPECTED))
    for wrapper in ("weight", "model", "generator", "state_dict"):
        inner = obj.get(wrapper)
        if isinstance(inner, Mapping) and not isinstance(inner, torch.Tensor):
            what = _kind_of([str(k) for k in inner]) or Message(
                "vocfile.what.wrapped", "a model file with its weights under '{wrapper}'", wrapper=wrapper
            )
            raise CheckpointError(_is_other(source, what))
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        template = "{source}: expected {expected}; found a dict whose entries {bad} are not named tensors"
        raise CheckpointError(
            Message("vocfile.err.entries", template, source=source, expected=EXPECTED, bad=str(bad[:3]))
        )
    keys = list(obj)
    if "conv1.weight" not in obj or not any(k.startswith("layer1.") for k in keys):
        what = _kind_of(keys)
        if what is not None:
            raise CheckpointError(_is_other(source, what))
        template = "{source}: not {expected}: no 'conv1.weight' / 'layer1.*' (first keys: {keys})"
        raise CheckpointError(
            Message("sv.err.no_conv1", template, source=source, expected=EXPECTED, keys=str(keys[:4]))
        )
    return dict(obj)


@functools.lru_cache(maxsize=4)
def expected_shapes(config: SVConfig) -> dict[str, torch.Size]:
    """Key -> shape of the state dict of the network ``config`` builds (built once per config)."""
    return state_shapes(lambda: ERes2NetV2(config))


def _check_shapes(config: SVConfig, state: Mapping[str, torch.Tensor], source: str) -> None:
    mismatch = shape_mismatch(expected_shapes(config), state)
    if mismatch:
        template = "{source}: weights do not fit the ERes2NetV2 their shapes describe ({config}): {mismatch}"
        fields = {"source": source, "config": str(config), "mismatch": mismatch}
        raise CheckpointError(Message("sv.err.shapes", template, **fields))
    not_float = [k for k, v in state.items() if not v.is_floating_point() and "num_batches_tracked" not in k]
    if not_float:
        template = "{source}: weights must be floating point; {names} are not"
        raise CheckpointError(
            Message("vocfile.err.not_float", template, source=source, names=str(not_float[:3]))
        )


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
    state = _refuse_foreign(read_model_pickle(p, EXPECTED), source)
    try:
        config = SVConfig.from_state_dict(state)
    except SVConfigError as exc:
        template = "{source}: not {expected}: {problem}"
        raise CheckpointError(
            Message("sv.err.not_sv", template, source=source, expected=EXPECTED, problem=said(exc))
        ) from None
    _check_shapes(config, state, source)
    return config, state
