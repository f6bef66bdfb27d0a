"""BS-/Mel-Band-RoFormer files as UVR and upstream GPT-SoVITS use them: ``<name>.ckpt`` + ``<name>.yaml``.

The ``.ckpt`` is a ``torch.save``'d state dict (read through :mod:`safe_pickle`); the ``.yaml``
is ZFTurbo's Music-Source-Separation-Training config, with ``!!python/tuple`` tags (read here
without PyYAML's unsafe loader) and four sections::

    audio:     chunk_size (samples per chunk), sample_rate, ...
    model:     the network's constructor arguments (RoformerConfig's fields, plus training-only ones)
    training:  instruments, target_instrument (the stem the network outputs), ...
    inference: batch_size, num_overlap (chunks overlapping each sample)

Upstream picks BS or Mel-Band from the file name, then from the config; the config decides here
(``freqs_per_bands`` is BS-RoFormer's, ``num_bands`` Mel-Band's), the name where it names neither.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from app.messages import Message, said
from app.models.roformer import Roformer, RoformerConfig
from app.models.upstream import safe_pickle

# Keys of the published ``model:`` sections that only training reads (dropout, flash attention,
# the multi-resolution STFT loss, gradient checkpointing) or that restate a derived value.
TRAINING_KEYS = frozenset(
    {
        "attn_dropout",
        "ff_dropout",
        "flash_attn",
        "dim_freqs_in",
        "multi_stft_resolution_loss_weight",
        "multi_stft_resolutions_window_sizes",
        "multi_stft_hop_size",
        "multi_stft_normalized",
        "use_torch_checkpoint",
        "match_input_audio_length",
    }
)


class RoformerFileError(ValueError):
    """A RoFormer checkpoint or config cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class RoformerFiles:
    """What a published model pair says beyond the network: how to run it."""

    config: RoformerConfig
    chunk_size: int  # samples per chunk (audio.chunk_size)
    num_overlap: int  # chunks covering each sample (inference.num_overlap; step = chunk_size // this)
    batch_size: int  # chunks per forward pass (inference.batch_size)
    stems: tuple[str, ...]  # what each output of the network is (target_instrument, or the instruments)


class _TupleLoader(yaml.SafeLoader):
    """PyYAML's safe loader plus the one Python tag the published configs use."""


_TupleLoader.add_constructor(
    "tag:yaml.org,2002:python/tuple",
    lambda loader, node: tuple(loader.construct_sequence(node)),  # type: ignore[arg-type]
)


def _section(data: dict, name: str, path: Path) -> dict:
    value = data.get(name)
    if not isinstance(value, dict):
        template = "{path}: no '{name}:' section; use the config published with the checkpoint"
        raise RoformerFileError(Message("roformer.err.section", template, path=str(path), name=name))
    return value


def _kind(model: dict, name: str, path: Path) -> str:
    if "freqs_per_bands" in model:
        return "bs_roformer"
    if "num_bands" in model:
        return "mel_band_roformer"
    lowered = name.lower()
    if "bs_roformer" in lowered or "bsroformer" in lowered:
        return "bs_roformer"
    if "mel_band_roformer" in lowered or "melbandroformer" in lowered:
        return "mel_band_roformer"
    template = "{path}: neither freqs_per_bands (BS-RoFormer) nor num_bands (Mel-Band) is set"
    raise RoformerFileError(Message("roformer.err.kind", template, path=str(path)))


def read_config(path: Path) -> RoformerFiles:
    """Parse a published ``.yaml``; unknown model keys and unsupported settings are refused."""
    path = Path(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_TupleLoader)  # a SafeLoader plus tuples
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        template = "{path}: not a readable YAML config ({problem})"
        raise RoformerFileError(
            Message("roformer.err.yaml", template, path=str(path), problem=str(exc))
        ) from exc
    if not isinstance(data, dict):
        raise RoformerFileError(
            Message("roformer.err.no_sections", "{path}: not a RoFormer config (no sections)", path=str(path))
        )
    model = dict(_section(data, "model", path))
    audio, training = _section(data, "audio", path), _section(data, "training", path)
    inference = data.get("inference") or {}
    if model.pop("linear_transformer_depth", 0):
        template = "{path}: linear_transformer_depth > 0 (linear attention) is not supported"
        raise RoformerFileError(Message("roformer.err.linear", template, path=str(path)))
    known = {f.name for f in fields(RoformerConfig)} - {"kind"}
    unknown = sorted(set(model) - known - TRAINING_KEYS)
    if unknown:
        template = "{path}: unknown model settings {names}"
        raise RoformerFileError(
            Message("roformer.err.unknown", template, path=str(path), names=", ".join(unknown))
        )
    values: dict[str, Any] = {k: v for k, v in model.items() if k in known}
    if "freqs_per_bands" in values:
        values["freqs_per_bands"] = tuple(int(n) for n in values["freqs_per_bands"])
    rate = int(audio.get("sample_rate", values.get("sample_rate", 44100)))
    if values.setdefault("sample_rate", rate) != rate:
        template = "{path}: audio.sample_rate {rate} differs from model.sample_rate"
        raise RoformerFileError(Message("roformer.err.rate", template, path=str(path), rate=rate))
    try:
        config = RoformerConfig(kind=_kind(model, path.stem, path), **values)
    except (TypeError, ValueError) as exc:
        raise RoformerFileError(_config_refusal(path, exc)) from exc
    if "dim_freqs_in" in model and model["dim_freqs_in"] != config.stft_n_fft // 2 + 1:
        template = "{path}: dim_freqs_in {value} does not match stft_n_fft"
        raise RoformerFileError(
            Message("roformer.err.dim_freqs", template, path=str(path), value=model["dim_freqs_in"])
        )
    target = training.get("target_instrument")
    stems = (str(target),) if target else tuple(str(s) for s in training.get("instruments") or ())
    if len(stems) != config.num_stems:
        template = "{path}: {count} stem(s) in the model, training names {stems}"
        raise RoformerFileError(
            Message("roformer.err.stems", template, path=str(path), count=config.num_stems, stems=list(stems))
        )
    files = RoformerFiles(
        config=config,
        chunk_size=int(audio.get("chunk_size", 0)),
        num_overlap=int(inference.get("num_overlap", 2)),
        batch_size=int(inference.get("batch_size", 1)),
        stems=stems,
    )
    if files.chunk_size < config.stft_n_fft or files.num_overlap < 1 or files.batch_size < 1:
        template = "{path}: audio.chunk_size, inference.num_overlap and batch_size must be positive"
        raise RoformerFileError(Message("roformer.err.positive", template, path=str(path)))
    return files


def _config_refusal(path: Path, exc: Exception) -> Message:
    """What was wrong with ``path`` in plain words: a refusal of our own (a Message) nested as it is;
    a missing constructor argument named as a lacking setting; any other library text kept as a
    trailing detail."""
    problem = said(exc)
    if isinstance(problem, Message):
        return Message("roformer.err.config", "{path}: {problem}", path=str(path), problem=problem)
    missing = re.findall(r"'(\w+)'", problem) if isinstance(exc, TypeError) else []
    if missing:
        template = "{path}: the model section lacks required settings: {fields} (detail: {detail})"
        return Message(
            "roformer.err.lacks", template, path=str(path), fields=", ".join(missing), detail=problem
        )
    if isinstance(exc, OSError):
        template = "{path}: the file cannot be read; check that it is there and readable (detail: {detail})"
        return Message("roformer.err.unreadable", template, path=str(path), detail=problem)
    template = "{path}: a model setting has a value the network cannot use; use the .yaml published with the checkpoint (detail: {detail})"
    return Message("roformer.err.value", template, path=str(path), detail=problem)


def load_model(checkpoint: Path, files: RoformerFiles) -> Roformer:
    """The network of ``files.config`` with the ``.ckpt`` state dict loaded strict, in eval mode."""
    checkpoint = Path(checkpoint)
    try:
        state = safe_pickle.load(safe_pickle.read_file(checkpoint), str(checkpoint))
    except (OSError, safe_pickle.CheckpointError) as exc:
        raise RoformerFileError(_config_refusal(checkpoint, exc)) from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]  # a training checkpoint: the weights are inside
    if not isinstance(state, dict):
        raise RoformerFileError(
            Message("roformer.err.not_state", "{path}: not a state dict", path=str(checkpoint))
        )
    model = Roformer(files.config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        head = str(exc).splitlines()[1:3]
        template = "{path} does not fit its config ({problem}); use the .yaml published with this checkpoint"
        problem = " ".join(h.strip() for h in head)[:300]
        raise RoformerFileError(
            Message("roformer.err.fit", template, path=str(checkpoint), problem=problem)
        ) from exc
    return model.eval()
