"""GPT-SoVITS's v3/v4 vocoder files: ``gsv-v4-pretrained/vocoder.pth`` and the BigVGAN v2 folder.

- v4 (``pretrained_models/`` + :data:`~app.models.vocoders.hifigan.V4_VOCODER_FILE`): a bare
  ``torch.save`` of the generator's state dict with plain ``weight``/``bias`` tensors (upstream
  removes weight norm before loading it strictly); no config, upstream hard-codes the
  constructor, so the widths are read from the tensors.
- v3 (``pretrained_models/`` + :data:`~app.models.vocoders.bigvgan.BIGVGAN_DIR`): ``config.json``
  (generator hyper-parameters plus training keys) and ``bigvgan_generator.pt`` =
  ``{"generator": state dict}`` with weight norm (``weight_g``/``weight_v``). Upstream's loader
  also accepts a state dict saved without weight norm (it retries after ``remove_weight_norm``),
  and so does :func:`read_bigvgan`. The loaded network runs with weight norm folded away
  (upstream's ``remove_weight_norm``), in eval mode.

Files are read through the restricted unpickler (:mod:`safe_pickle`): nothing in them runs. Every
error names the file and what was expected.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from app.messages import Message, said
from app.models.nn.norm import fold_weight_norm_state
from app.models.nn.skip_init import shape_mismatch, state_shapes, without_init
from app.models.upstream.headers import HEADER_VERSIONS
from app.models.upstream.safe_pickle import CheckpointError, load, read_file
from app.models.vocoders import VOCODER_PATHS
from app.models.vocoders.bigvgan import (
    BIGVGAN_CONFIG_FILE,
    BIGVGAN_DIR,
    BIGVGAN_WEIGHTS_FILE,
    BigVGAN,
    BigVGANConfig,
    BigVGANConfigError,
)
from app.models.vocoders.hifigan import (
    V4_VOCODER_FILE,
    HiFiGANVocoder,
    HiFiGANVocoderConfig,
    HiFiGANVocoderConfigError,
)

logger = logging.getLogger(__name__)

V4_EXPECTED = Message(
    "vocfile.expected_v4",
    "the GPT-SoVITS v4 vocoder ({file}, a bare state dict without weight norm)",
    file=str(V4_VOCODER_FILE),
)
BIGVGAN_EXPECTED = Message(
    "vocfile.expected_bigvgan",
    "BigVGAN generator weights ({file}, a dict {{'generator': state dict}}, as in {folder})",
    file=BIGVGAN_WEIGHTS_FILE,
    folder=str(BIGVGAN_DIR),
)

# config.json keys the generator is built from (BigVGAN.__init__ / AMPBlock reads them unconditionally),
# plus the output rate and hop our Vocoder interface reports.
_BIGVGAN_REQUIRED = (
    "num_mels",
    "upsample_rates",
    "upsample_kernel_sizes",
    "upsample_initial_channel",
    "resblock",
    "resblock_kernel_sizes",
    "resblock_dilation_sizes",
    "activation",
    "snake_logscale",
    "sampling_rate",
    "hop_size",
)
# Optional generator keys and the value upstream uses when they are absent (h.get(..., True)).
_BIGVGAN_OPTIONAL = {"use_tanh_at_final": True, "use_bias_at_final": True}
# Training / discriminator / feature keys of NVIDIA's BigVGAN configs; the generator ignores them.
_BIGVGAN_TRAINING_KEYS = frozenset(
    {
        "num_gpus",
        "batch_size",
        "learning_rate",
        "adam_b1",
        "adam_b2",
        "lr_decay",
        "seed",
        "use_cqtd_instead_of_mrd",
        "cqtd_filters",
        "cqtd_max_filters",
        "cqtd_filters_scale",
        "cqtd_dilations",
        "cqtd_hop_lengths",
        "cqtd_n_octaves",
        "cqtd_bins_per_octaves",
        "mpd_reshapes",
        "resolutions",
        "use_spectral_norm",
        "discriminator_channel_mult",
        "use_multiscale_melloss",
        "lambda_melloss",
        "clip_grad_norm",
        "segment_size",
        "num_freq",
        "n_fft",
        "win_size",
        "fmin",
        "fmax",
        "fmax_for_loss",
        "normalize_volume",
        "num_workers",
        "dist_config",
    }
)

# Key prefixes/fragments of the other model files a user might point at a vocoder path, and what they are.
_FOREIGN = (
    (
        ("enc_p.", "dec.ups.", "ref_enc.", "cfm."),
        Message("vocfile.what.sovits", "a GPT-SoVITS SoVITS (s2) model's weights"),
    ),
    (
        ("model.ar_", "ar_text_embedding.", "ar_audio_embedding."),
        Message("vocfile.what.gpt", "a GPT-SoVITS GPT (s1) model's weights"),
    ),
    (
        ("layer1.", "conv1.weight"),
        Message("vocfile.what.sv", "a speaker-verification (ERes2NetV2) model's weights"),
    ),
    (
        ("feature_extractor.", "encoder.layers.", "feature_projection."),
        Message("vocfile.what.hubert", "a HuBERT content encoder's weights"),
    ),
    (("bert.", "embeddings.word_embeddings."), Message("vocfile.what.bert", "a BERT model's weights")),
    (("emb_g.", "f0_decoder.", "enc_q."), Message("vocfile.what.svc", "a so-vits-svc model's weights")),
    (("discriminators.",), Message("vocfile.what.discriminator", "a discriminator's weights")),
)


HIFIGAN_WEIGHTS = Message("vocfile.what.hifigan", "a HiFi-GAN-style vocoder's weights")


def _describe(keys: list[str]) -> str | None:
    """What a state dict with these keys is, when it is a model file this app knows of."""
    if any(".activations." in k or k.startswith("activation_post.") for k in keys):
        template = "BigVGAN's weights (the v3 vocoder, {file})"
        return Message("vocfile.what.bigvgan", template, file=BIGVGAN_WEIGHTS_FILE)
    for prefixes, what in _FOREIGN:
        if any(k.startswith(prefixes) for k in keys):
            return what
    if "conv_pre.weight" in keys or "conv_pre.weight_g" in keys:
        return HIFIGAN_WEIGHTS
    return None


def _named_tensors(obj: Any, source: str, expected: str) -> dict[str, torch.Tensor]:
    """``obj`` as a name -> tensor dict, or a CheckpointError naming what it is instead."""
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        template = "{source}: expected {expected}; found a dict whose entries {bad} are not named tensors"
        raise CheckpointError(
            Message("vocfile.err.entries", template, source=source, expected=expected, bad=str(bad[:3]))
        )
    return dict(obj)


def _refuse_wrappers(obj: Mapping, source: str, expected: str, allowed: str | None) -> None:
    """Name the file kind when ``obj`` is a wrapper dict other than ``allowed`` (e.g. SoVITS ``weight``)."""
    if "state_dict" in obj and ("pytorch-lightning_version" in obj or "epoch" in obj):
        template = "{source}: this is a Lightning training checkpoint (GPT s1?), expected {expected}"
        raise CheckpointError(Message("vocfile.err.lightning", template, source=source, expected=expected))
    for wrapper in ("weight", "model", "generator", "state_dict"):
        inner = obj.get(wrapper)
        if wrapper != allowed and isinstance(inner, Mapping) and not isinstance(inner, torch.Tensor):
            what = _describe([str(k) for k in inner]) or Message(
                "vocfile.what.wrapped", "a model file with its weights under '{wrapper}'", wrapper=wrapper
            )
            raise CheckpointError(_is_other(source, what, expected))


def _is_other(source: str, what: str, expected: str) -> Message:
    """ "``source``: this is ``what``, expected ``expected``"."""
    return Message(
        "vocfile.err.other",
        "{source}: this is {what}, expected {expected}",
        source=source,
        what=what,
        expected=expected,
    )


def _pickled(source: str, expected: str, obj: object) -> Message:
    template = "{source}: expected {expected}, found a pickled {kind}"
    return Message("vocfile.err.pickled", template, source=source, expected=expected, kind=type(obj).__name__)


def read_model_pickle(path: Path, expected: str) -> Any:
    """The unpickled object of a checkpoint file expected to hold ``expected`` (the vocoders', the
    speaker model's): refused when too short or when its header says it is a SoVITS file."""
    data = read_file(path)
    if len(data) < 4:
        template = "{path}: {size} bytes is too short for {expected}"
        raise CheckpointError(
            Message("vocfile.err.short", template, path=str(path), size=len(data), expected=expected)
        )
    if data[:2] in HEADER_VERSIONS:
        template = (
            "{path}: this is a GPT-SoVITS {version} SoVITS model file (header {header}), expected {expected}"
        )
        fields = {
            "version": HEADER_VERSIONS[data[:2]],
            "header": repr(data[:2].decode()),
            "expected": expected,
        }
        raise CheckpointError(Message("vocfile.err.sovits", template, path=str(path), **fields))
    return load(data, str(path))


def _check_floats(state: Mapping[str, torch.Tensor], source: str) -> None:
    not_float = [k for k, v in state.items() if not v.is_floating_point()]
    if not_float:
        template = "{source}: weights must be floating point; {names} are not"
        raise CheckpointError(
            Message("vocfile.err.not_float", template, source=source, names=str(not_float[:3]))
        )


def _to(state: Mapping[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {k: v.to(dtype) for k, v in state.items()}


# ------------------------------------------------------------------------------------------- v4


@functools.lru_cache(maxsize=4)
def v4_expected_shapes(config: HiFiGANVocoderConfig) -> dict[str, torch.Size]:
    """Key -> shape of the v4 vocoder's state dict for ``config`` (built once per config, no init)."""
    return state_shapes(lambda: HiFiGANVocoder(config))


def read_v4_vocoder(path: str | os.PathLike) -> tuple[HiFiGANVocoderConfig, dict[str, torch.Tensor]]:
    """Read upstream's v4 vocoder file -> (network shape, state dict as stored, on the CPU).

    Raises:
        CheckpointError: missing (the message says where the file belongs), unreadable, truncated or
            corrupt, another model's file (the message says which), weight-normalised weights, or
            keys/shapes that do not form upstream's v4 ``Generator``.
        UnsafePickleError: the pickle asks for code outside the allow-list (nothing was run).
    """
    p = Path(path)
    source = str(p)
    if not p.exists():
        template = (
            "{source}: no such file; GPT-SoVITS v4 synthesis needs its vocoder at pretrained_models/{file} "
            "(from the GPT-SoVITS pretrained models)"
        )
        raise CheckpointError(
            Message("vocoder.err.v4_missing", template, source=source, file=V4_VOCODER_FILE.as_posix())
        )
    obj = read_model_pickle(p, V4_EXPECTED)
    if not isinstance(obj, Mapping):
        raise CheckpointError(_pickled(source, V4_EXPECTED, obj))
    _refuse_wrappers(obj, source, V4_EXPECTED, allowed=None)
    state = _named_tensors(obj, source, V4_EXPECTED)
    keys = list(state)
    if any(k.endswith((".weight_g", ".weight_v")) for k in keys):
        what = _describe(keys)
        if what is not None and what.startswith("BigVGAN"):
            raise CheckpointError(_is_other(source, what, V4_EXPECTED))
        template = (
            "{source}: the weights are weight-normalised (weight_g/weight_v); expected {expected}: "
            "upstream saves it after remove_weight_norm and loads it strictly"
        )
        raise CheckpointError(
            Message("vocfile.err.weight_norm", template, source=source, expected=V4_EXPECTED)
        )
    what = _describe(keys)
    if what is not None and what != HIFIGAN_WEIGHTS:
        raise CheckpointError(_is_other(source, what, V4_EXPECTED))
    try:
        config = HiFiGANVocoderConfig.from_state_dict(state)
    except HiFiGANVocoderConfigError as exc:
        template = "{source}: not {expected}: {problem} (first keys: {keys})"
        fields = {"expected": V4_EXPECTED, "problem": said(exc), "keys": str(keys[:4])}
        raise CheckpointError(Message("vocfile.err.not_v4", template, source=source, **fields)) from None
    mismatch = shape_mismatch(v4_expected_shapes(config), state)
    if mismatch:
        template = (
            "{source}: weights do not fit upstream's v4 vocoder (num_mels {mels}, "
            "upsample_initial_channel {channels}): {mismatch}"
        )
        fields = {"mels": config.num_mels, "channels": config.upsample_initial_channel, "mismatch": mismatch}
        raise CheckpointError(Message("vocfile.err.v4_shapes", template, source=source, **fields))
    _check_floats(state, source)
    return config, state


def load_v4_vocoder(
    path: str | os.PathLike, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> HiFiGANVocoder:
    """The v4 vocoder from ``path`` (``pretrained_models/`` + ``V4_VOCODER_FILE``), eval mode, frozen.

    Args:
        path: the state-dict file.
        device, dtype: where it runs and in which precision (upstream: float16 on GPUs when half).

    Raises:
        CheckpointError, UnsafePickleError: see :func:`read_v4_vocoder`.
    """
    config, state = read_v4_vocoder(path)
    model = without_init(lambda: HiFiGANVocoder(config))
    model.load_state_dict(_to(state, dtype), strict=True, assign=True)
    return model.to(device).eval().requires_grad_(False)


# ------------------------------------------------------------------------------------------- v3


@dataclass(frozen=True)
class BigVGANFile:
    """A BigVGAN folder as read: hyper-parameters and the generator state dict as stored."""

    config: BigVGANConfig  # from config.json
    state_dict: dict[str, torch.Tensor]  # the file's tensors, on the CPU
    weight_norm: bool  # True when stored as weight_g/weight_v (NVIDIA's release), False when plain


def read_bigvgan_config(path: str | os.PathLike) -> BigVGANConfig:
    """Read BigVGAN's ``config.json`` -> generator hyper-parameters.

    Generator keys must be present (``use_tanh_at_final``/``use_bias_at_final`` default to true
    when absent, as upstream's ``h.get(..., True)``); NVIDIA's training keys are ignored; keys
    known to neither are ignored with a warning (upstream's loader ignores them too).

    Raises:
        CheckpointError: missing or unreadable file, not JSON, not an object, missing generator
            keys (all named), or values that do not form a BigVGAN generator.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        template = "{path}: no such file; a BigVGAN folder holds {config} beside its weights"
        raise CheckpointError(
            Message("vocoder.err.no_config", template, path=str(p), config=BIGVGAN_CONFIG_FILE)
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        template = "{path}: cannot read the BigVGAN config ({problem})"
        raise CheckpointError(
            Message("vocfile.err.config_read", template, path=str(p), problem=str(exc))
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        template = "{path}: not valid JSON ({problem}); expected BigVGAN's {file}"
        fields = {"path": str(p), "problem": str(exc), "file": BIGVGAN_CONFIG_FILE}
        raise CheckpointError(Message("vocfile.err.config_json", template, **fields)) from None
    if not isinstance(data, dict):
        template = "{path}: expected a JSON object of BigVGAN hyper-parameters, found {kind}"
        raise CheckpointError(
            Message("vocfile.err.config_object", template, path=str(p), kind=type(data).__name__)
        )
    missing = [k for k in _BIGVGAN_REQUIRED if k not in data]
    if missing:
        hint = Message("vocfile.hint.hifigan", " (a HiFi-GAN config, not BigVGAN?)")
        template = "{path}: not a BigVGAN generator config{hint}: missing keys {missing}"
        hint = hint if "activation" in missing and "resblock" in data else ""
        raise CheckpointError(
            Message("vocfile.err.config_keys", template, path=str(p), hint=hint, missing=str(missing))
        )
    unknown = sorted(
        k
        for k in data
        if k not in _BIGVGAN_REQUIRED and k not in _BIGVGAN_OPTIONAL and k not in _BIGVGAN_TRAINING_KEYS
    )
    if unknown:
        logger.warning("%s: ignoring keys BigVGAN's generator does not use: %s", p, unknown)
    values = {k: data[k] for k in _BIGVGAN_REQUIRED}
    values.update({k: data.get(k, default) for k, default in _BIGVGAN_OPTIONAL.items()})
    try:
        return BigVGANConfig(**values)
    except (BigVGANConfigError, TypeError) as exc:
        template = "{path}: invalid BigVGAN config: {problem}"
        raise CheckpointError(
            Message("vocfile.err.config_invalid", template, path=str(p), problem=said(exc))
        ) from None


@functools.lru_cache(maxsize=4)
def bigvgan_expected_shapes(config: BigVGANConfig, weight_norm: bool) -> dict[str, torch.Size]:
    """Key -> shape of BigVGAN's state dict for ``config`` in either layout (built once, no init)."""
    return state_shapes(lambda: BigVGAN(config, weight_norm=weight_norm))


def _bigvgan_state(obj: Any, source: str) -> dict[str, torch.Tensor]:
    """The generator state dict inside a ``bigvgan_generator.pt`` object, or a clear refusal."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(_pickled(source, BIGVGAN_EXPECTED, obj))
    _refuse_wrappers(obj, source, BIGVGAN_EXPECTED, allowed="generator")
    inner = obj.get("generator")
    if not isinstance(inner, Mapping):
        keys = [str(k) for k in obj]
        what = _describe(keys)
        if what is not None:
            template = "{source}: this is {what} as a bare state dict, expected {expected}"
            fields = {"source": source, "what": what, "expected": BIGVGAN_EXPECTED}
            raise CheckpointError(Message("vocfile.err.bare", template, **fields))
        template = "{source}: expected {expected}; the file has no 'generator' (keys: {keys})"
        fields = {"source": source, "expected": BIGVGAN_EXPECTED, "keys": str(keys[:4])}
        raise CheckpointError(Message("vocfile.err.no_generator", template, **fields))
    state = _named_tensors(inner, source, BIGVGAN_EXPECTED)
    what = _describe(list(state))
    if what is not None and not what.startswith(("BigVGAN", "a HiFi-GAN")):
        template = "{source}: its 'generator' holds {what}, expected {expected}"
        fields = {"source": source, "what": what, "expected": BIGVGAN_EXPECTED}
        raise CheckpointError(Message("vocfile.err.generator_holds", template, **fields))
    return state


def read_bigvgan(folder: str | os.PathLike) -> BigVGANFile:
    """Read a BigVGAN folder (``config.json`` + ``bigvgan_generator.pt``) -> :class:`BigVGANFile`.

    Raises:
        CheckpointError: missing folder or file (the message says where the v3 vocoder belongs),
            invalid config (see :func:`read_bigvgan_config`), truncated/corrupt/foreign weights,
            or keys/shapes that do not form the generator config.json describes.
        UnsafePickleError: the pickle asks for code outside the allow-list (nothing was run).
    """
    d = Path(folder)
    if not d.is_dir():
        template = (
            "{folder}: {state}; expected a BigVGAN folder with {config} and {weights} "
            "(GPT-SoVITS v3 uses pretrained_models/{standard})"
        )
        fields = {"folder": str(d), "config": BIGVGAN_CONFIG_FILE, "weights": BIGVGAN_WEIGHTS_FILE}
        state = (
            Message("vocoder.what.file", "is a file")
            if d.exists()
            else Message("vocoder.what.no_folder", "no such folder")
        )
        raise CheckpointError(
            Message("vocoder.err.v3_folder", template, **fields, state=state, standard=BIGVGAN_DIR.as_posix())
        )
    config = read_bigvgan_config(d / BIGVGAN_CONFIG_FILE)
    weights = d / BIGVGAN_WEIGHTS_FILE
    source = str(weights)
    if not weights.exists():
        template = "{source}: no such file; the BigVGAN folder needs its generator weights"
        raise CheckpointError(Message("vocoder.err.v3_weights", template, source=source))
    state = _bigvgan_state(read_model_pickle(weights, BIGVGAN_EXPECTED), source)
    weight_norm = any(k.endswith(".weight_g") for k in state)
    mismatch = shape_mismatch(bigvgan_expected_shapes(config, weight_norm), state)
    if mismatch:
        with_norm = Message("vocfile.with_norm", "with weight norm")
        layout = with_norm if weight_norm else Message("vocfile.without_norm", "without weight norm")
        template = (
            "{source}: weights ({layout}) do not fit the BigVGAN generator {config} describes: {mismatch}. "
            "Check that config.json and the weights belong together."
        )
        fields = {"layout": layout, "config": str(d / BIGVGAN_CONFIG_FILE), "mismatch": mismatch}
        raise CheckpointError(Message("vocfile.err.v3_shapes", template, source=source, **fields))
    _check_floats(state, source)
    return BigVGANFile(config, state, weight_norm)


def load_bigvgan(
    folder: str | os.PathLike, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> BigVGAN:
    """BigVGAN from a folder (``pretrained_models/`` + ``BIGVGAN_DIR``), weight norm removed, eval, frozen.

    The kernels ``g * v / ||v||`` are folded in the file's precision before the cast to ``dtype``,
    in upstream's order (``remove_weight_norm`` on the float32 model, then ``.half()``).

    Raises:
        CheckpointError, UnsafePickleError: see :func:`read_bigvgan`.
    """
    file = read_bigvgan(folder)
    state = fold_weight_norm_state(file.state_dict) if file.weight_norm else file.state_dict
    model = without_init(lambda: BigVGAN(file.config, weight_norm=False))
    model.load_state_dict(_to(state, dtype), strict=True, assign=True)
    return model.to(device).eval().requires_grad_(False)


def load_vocoder(
    version: str,
    pretrained_dir: str | os.PathLike,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> HiFiGANVocoder | BigVGAN:
    """The vocoder of a CFM SoVITS version from upstream's place under ``pretrained_dir``.

    ``"v3"`` -> :func:`load_bigvgan` on ``pretrained_dir / BIGVGAN_DIR``, ``"v4"`` ->
    :func:`load_v4_vocoder` on ``pretrained_dir / V4_VOCODER_FILE``.
    """
    if version not in VOCODER_PATHS:
        template = "only SoVITS v3 and v4 use a separate vocoder; got version {version!r}"
        raise ValueError(Message("vocfile.err.version", template, version=version))
    path = Path(pretrained_dir) / VOCODER_PATHS[version]
    if version == "v3":
        return load_bigvgan(path, device, dtype)
    return load_v4_vocoder(path, device, dtype)
