"""bshall's HuBERT-Soft checkpoint (``hubert-soft-0d54a1f4.pt``) -> a transformers HuBERT folder.

so-vits-svc's ``hubertsoft`` encoder and innnky's 32k models read soft units from bshall's
``HubertSoft`` (github.com/bshall/hubert, release v0.1). Its file is ``torch.save({"hubert":
state_dict, ...})`` with DDP's ``module.`` prefix; the network is HuBERT base in other names:

| bshall | transformers ``HubertModel`` |
|---|---|
| ``feature_extractor.conv{i}.weight``, ``norm0`` (GroupNorm) | ``feature_extractor.conv_layers.{i}.conv.weight``, ``conv_layers.0.layer_norm`` |
| ``feature_projection.norm`` / ``.projection`` | ``feature_projection.layer_norm`` / ``.projection`` |
| ``positional_embedding.conv`` (weight norm over dim 2) | ``encoder.pos_conv_embed.conv`` |
| ``norm`` (after adding positions) | ``encoder.layer_norm`` |
| ``encoder.layers.{i}``: ``nn.TransformerEncoderLayer`` (post-norm, GELU): ``self_attn.in_proj_*`` = [q; k; v], ``self_attn.out_proj``, ``linear1``, ``linear2``, ``norm1``, ``norm2`` | ``encoder.layers.{i}.attention.{q,k,v,out}_proj``, ``feed_forward.intermediate_dense`` / ``output_dense``, ``layer_norm``, ``final_layer_norm`` |
| ``proj`` (768 -> 256, the soft units) | ``final_proj`` (:mod:`app.models.encoders.content`) |
| ``masked_spec_embed`` | ``masked_spec_embed`` |
| ``label_embedding`` (training only) | dropped |

``units(wav)`` pads 40 samples each side, runs every layer and applies ``proj``: the
``hubertsoft`` :class:`~app.models.encoders.content.EncoderSpec`. Sizes are read from the weights;
only the head count (12 in bshall's model) cannot be, hence ``num_heads``.

    python -m app.models.upstream.hubert_soft [IN.pt] [OUT_DIR]
    (defaults: pretrained_models/hubert-soft-0d54a1f4.pt -> pretrained_models/hubert-soft-transformers)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from app.models.encoders.content import ENCODER_ASSETS, _hubert_class
from app.models.upstream import safe_pickle
from app.models.upstream.safe_pickle import CheckpointError

SOURCE_FILE = "hubert-soft-0d54a1f4.pt"
TARGET_FOLDER = ENCODER_ASSETS["hubertsoft"][1]
_CONV_STRIDES = (5, 2, 2, 2, 2, 2, 2)  # bshall's FeatureExtractor
_LAYER_NAMES = {
    "self_attn.out_proj": "attention.out_proj",
    "linear1": "feed_forward.intermediate_dense",
    "linear2": "feed_forward.output_dense",
    "norm1": "layer_norm",
    "norm2": "final_layer_norm",
}


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The network weights of a HuBERT-Soft file (restricted unpickler), ``module.`` prefix removed."""
    loaded = safe_pickle.load(safe_pickle.read_file(path), str(path))
    state = loaded.get("hubert", loaded) if isinstance(loaded, Mapping) else None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: not a HuBERT-Soft checkpoint (expected {{'hubert': state_dict}})")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    for key in ("feature_extractor.conv0.weight", "feature_projection.projection.weight", "proj.weight"):
        if key not in state:
            raise CheckpointError(f"{path}: not a HuBERT-Soft checkpoint ({key} is missing)")
    return state


def _config(state: Mapping[str, torch.Tensor], num_heads: int):  # type: ignore[no-untyped-def]
    from transformers import HubertConfig

    n_conv = 1 + max(int(k.split(".")[1][4:]) for k in state if k.startswith("feature_extractor.conv"))
    convs = [state[f"feature_extractor.conv{i}.weight"] for i in range(n_conv)]
    hidden, _ = state["feature_projection.projection.weight"].shape
    n_layers = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.layers."))
    pos = _pos_conv_weights(state)
    return HubertConfig(
        hidden_size=hidden,
        num_hidden_layers=n_layers,
        num_attention_heads=num_heads,
        intermediate_size=state["encoder.layers.0.linear1.weight"].shape[0],
        conv_dim=tuple(int(w.shape[0]) for w in convs),
        conv_kernel=tuple(int(w.shape[2]) for w in convs),
        conv_stride=_CONV_STRIDES[:n_conv],
        conv_bias=False,
        feat_extract_norm="group",
        do_stable_layer_norm=False,
        feat_proj_layer_norm=True,
        num_conv_pos_embeddings=int(pos[1].shape[2]),
        num_conv_pos_embedding_groups=hidden // int(pos[1].shape[1]),
        classifier_proj_size=state["proj.weight"].shape[0],
        hidden_act="gelu",
        feat_extract_activation="gelu",
        layer_norm_eps=1e-5,
    )


def _pos_conv_weights(state: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(g, v) of the weight-normed positional conv: the 2021 file's ``weight_g``/``weight_v`` or the
    ``parametrizations.weight.original0/1`` of files saved by newer torch."""
    p = "positional_embedding.conv."
    for g, v in (
        ("weight_g", "weight_v"),
        ("parametrizations.weight.original0", "parametrizations.weight.original1"),
    ):
        if p + g in state and p + v in state:
            return state[p + g], state[p + v]
    raise CheckpointError("HuBERT-Soft checkpoint: the positional convolution's weights are missing")


def convert_state_dict(
    state: Mapping[str, torch.Tensor], target_keys: Sequence[str]
) -> dict[str, torch.Tensor]:
    """bshall's names -> transformers' (``target_keys``: the model's own, for the weight-norm naming)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("feature_extractor.conv"):
            i = int(key.split(".")[1][4:])
            out[f"feature_extractor.conv_layers.{i}.conv.weight"] = value
        elif key.startswith("feature_extractor.norm0."):
            out["feature_extractor.conv_layers.0.layer_norm." + key.rsplit(".", 1)[1]] = value
        elif key.startswith("feature_projection.norm."):
            out["feature_projection.layer_norm." + key.rsplit(".", 1)[1]] = value
        elif key.startswith("feature_projection.projection."):
            out[key] = value
        elif key.startswith("norm."):
            out["encoder.layer_norm." + key.split(".", 1)[1]] = value
        elif key.startswith("proj."):
            out["final_proj." + key.split(".", 1)[1]] = value
        elif key == "masked_spec_embed":
            out[key] = value
        elif key.startswith("encoder.layers."):
            _, _, i, rest = key.split(".", 3)
            prefix = f"encoder.layers.{i}."
            if rest.startswith("self_attn.in_proj_"):
                kind = rest.rsplit("_", 1)[1]  # weight / bias
                for name, part in zip(("q", "k", "v"), value.chunk(3, dim=0), strict=True):
                    out[f"{prefix}attention.{name}_proj.{kind}"] = part.clone()
            else:
                module, param = rest.rsplit(".", 1)
                if module not in _LAYER_NAMES:
                    raise CheckpointError(f"HuBERT-Soft checkpoint: unexpected weight {key}")
                out[f"{prefix}{_LAYER_NAMES[module]}.{param}"] = value
        elif key.startswith(("positional_embedding.", "label_embedding.")):
            continue  # positions below; label embeddings only serve training
        else:
            raise CheckpointError(f"HuBERT-Soft checkpoint: unexpected weight {key}")
    g, v = _pos_conv_weights(state)
    base = "encoder.pos_conv_embed.conv."
    if base + "parametrizations.weight.original0" in target_keys:
        out[base + "parametrizations.weight.original0"], out[base + "parametrizations.weight.original1"] = (
            g,
            v,
        )
    else:
        out[base + "weight_g"], out[base + "weight_v"] = g, v
    out[base + "bias"] = state["positional_embedding.conv.bias"]
    return out


def convert(source: Path, target: Path, num_heads: int = 12) -> Path:
    """Write ``target``/ (config.json + model.safetensors) from bshall's ``source`` file."""
    state = read_state_dict(source)
    model = _hubert_class()(_config(state, num_heads))
    mapped = convert_state_dict(state, list(model.state_dict()))
    result = model.load_state_dict(mapped, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"{source}: weights do not fit HuBERT (missing {result.missing_keys[:4]}, "
            f"unexpected {result.unexpected_keys[:4]})"
        )
    target.mkdir(parents=True, exist_ok=True)
    model.eval().save_pretrained(str(target))
    return target


def main(argv: Sequence[str] | None = None) -> int:
    from app.settings import load_settings

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    pretrained = load_settings().pretrained
    parser.add_argument("source", nargs="?", type=Path, default=pretrained / SOURCE_FILE)
    parser.add_argument("target", nargs="?", type=Path, default=pretrained / TARGET_FOLDER)
    parser.add_argument("--num-heads", type=int, default=12)
    args = parser.parse_args(argv)
    if not args.source.is_file():
        print(
            f"{args.source} not found: download it with `python tools/download_models.py hubert-soft` "
            "(or from https://github.com/bshall/hubert/releases/tag/v0.1) and run this again",
            file=sys.stderr,
        )
        return 2
    try:
        out = convert(args.source, args.target, args.num_heads)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"HuBERT-Soft written to {out}/ (the so-vits-svc hubertsoft content encoder)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
