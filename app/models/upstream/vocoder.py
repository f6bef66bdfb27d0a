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

from app.messages import Message
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

V4_EXPECTED = f"the GPT-SoVITS v4 vocoder ({V4_VOCODER_FILE}, a bare state dict without weight norm)"
BIGVGAN_EXPECTED = (
    f"BigVGAN generator weights ({BIGVGAN_WEIGHTS_FILE}, a dict {{'generator': state dict}}, "
    f"as in {BIGVGAN_DIR})"
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
    (("enc_p.", "dec.ups.", "ref_enc.", "cfm."), "a GPT-SoVITS SoVITS (s2) model's weights"),
    (("model.ar_", "ar_text_embedding.", "ar_audio_embedding."), "a GPT-SoVITS GPT (s1) model's weights"),
    (("layer1.", "conv1.weight"), "a speaker-verification (ERes2NetV2) model's weights"),
    (("feature_extractor.", "encoder.layers.", "feature_projection."), "a HuBERT content encoder's weights"),
    (("bert.", "embeddings.word_embeddings."), "a BERT model's weights"),
    (("emb_g.", "f0_decoder.", "enc_q."), "a so-vits-svc model's weights"),
    (("discriminators.",), "a discriminator's weights"),
)


def _describe(keys: list[str]) -> str | None:
    """What a state dict with these keys is, when it is a model file this app knows of."""
    if any(".activations." in k or k.startswith("activation_post.") for k in keys):
        return f"BigVGAN's weights (the v3 vocoder, {BIGVGAN_WEIGHTS_FILE})"
    for prefixes, what in _FOREIGN:
        if any(k.startswith(prefixes) for k in keys):
            return what
    if "conv_pre.weight" in keys or "conv_pre.weight_g" in keys:
        return "a HiFi-GAN-style vocoder's weights"
    return None


def _named_tensors(obj: Any, source: str, expected: str) -> dict[str, torch.Tensor]:
    """``obj`` as a name -> tensor dict, or a CheckpointError naming what it is instead."""
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(
            f"{source}: expected {expected}; found a dict whose entries {bad[:3]} are not named tensors"
        )
    return dict(obj)


def _refuse_wrappers(obj: Mapping, source: str, expected: str, allowed: str | None) -> None:
    """Name the file kind when ``obj`` is a wrapper dict other than ``allowed`` (e.g. SoVITS ``weight``)."""
    if "state_dict" in obj and ("pytorch-lightning_version" in obj or "epoch" in obj):
        raise CheckpointError(
            f"{source}: this is a Lightning training checkpoint (GPT s1?), expected {expected}"
        )
    for wrapper in ("weight", "model", "generator", "state_dict"):
        inner = obj.get(wrapper)
        if wrapper != allowed and isinstance(inner, Mapping) and not isinstance(inner, torch.Tensor):
            what = _describe([str(k) for k in inner]) or f"a model file with its weights under '{wrapper}'"
            raise CheckpointError(f"{source}: this is {what}, expected {expected}")


def _read_pickle(path: Path, expected: str) -> Any:
    """The unpickled object of a checkpoint file (SoVITS header bytes recognised)."""
    data = read_file(path)
    if len(data) < 4:
        raise CheckpointError(f"{path}: {len(data)} bytes is too short for {expected}")
    if data[:2] in HEADER_VERSIONS:
        raise CheckpointError(
            f"{path}: this is a GPT-SoVITS {HEADER_VERSIONS[data[:2]]} SoVITS model file "
            f"(header {data[:2].decode()!r}), expected {expected}"
        )
    return load(data, str(path))


def _check_floats(state: Mapping[str, torch.Tensor], source: str) -> None:
    not_float = [k for k, v in state.items() if not v.is_floating_point()]
    if not_float:
        raise CheckpointError(f"{source}: weights must be floating point; {not_float[:3]} are not")


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
    obj = _read_pickle(p, V4_EXPECTED)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{source}: expected {V4_EXPECTED}, found a pickled {type(obj).__name__}")
    _refuse_wrappers(obj, source, V4_EXPECTED, allowed=None)
    state = _named_tensors(obj, source, V4_EXPECTED)
    keys = list(state)
    if any(k.endswith((".weight_g", ".weight_v")) for k in keys):
        what = _describe(keys)
        if what is not None and what.startswith("BigVGAN"):
            raise CheckpointError(f"{source}: this is {what}, expected {V4_EXPECTED}")
        raise CheckpointError(
            f"{source}: the weights are weight-normalised (weight_g/weight_v); expected {V4_EXPECTED}: "
            "upstream saves it after remove_weight_norm and loads it strictly"
        )
    what = _describe(keys)
    if what is not None and what != "a HiFi-GAN-style vocoder's weights":
        raise CheckpointError(f"{source}: this is {what}, expected {V4_EXPECTED}")
    try:
        config = HiFiGANVocoderConfig.from_state_dict(state)
    except HiFiGANVocoderConfigError as exc:
        raise CheckpointError(f"{source}: not {V4_EXPECTED}: {exc} (first keys: {keys[:4]})") from None
    mismatch = shape_mismatch(v4_expected_shapes(config), state)
    if mismatch:
        raise CheckpointError(
            f"{source}: weights do not fit upstream's v4 vocoder (num_mels {config.num_mels}, "
            f"upsample_initial_channel {config.upsample_initial_channel}): {mismatch}"
        )
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
        raise CheckpointError(f"{p}: cannot read the BigVGAN config ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CheckpointError(
            f"{p}: not valid JSON ({exc}); expected BigVGAN's {BIGVGAN_CONFIG_FILE}"
        ) from None
    if not isinstance(data, dict):
        raise CheckpointError(
            f"{p}: expected a JSON object of BigVGAN hyper-parameters, found {type(data).__name__}"
        )
    missing = [k for k in _BIGVGAN_REQUIRED if k not in data]
    if missing:
        hint = " (a HiFi-GAN config, not BigVGAN?)" if "activation" in missing and "resblock" in data else ""
        raise CheckpointError(f"{p}: not a BigVGAN generator config{hint}: missing keys {missing}")
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
        raise CheckpointError(f"{p}: invalid BigVGAN config: {exc}") from None


@functools.lru_cache(maxsize=4)
def bigvgan_expected_shapes(config: BigVGANConfig, weight_norm: bool) -> dict[str, torch.Size]:
    """Key -> shape of BigVGAN's state dict for ``config`` in either layout (built once, no init)."""
    return state_shapes(lambda: BigVGAN(config, weight_norm=weight_norm))


def _bigvgan_state(obj: Any, source: str) -> dict[str, torch.Tensor]:
    """The generator state dict inside a ``bigvgan_generator.pt`` object, or a clear refusal."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{source}: expected {BIGVGAN_EXPECTED}, found a pickled {type(obj).__name__}")
    _refuse_wrappers(obj, source, BIGVGAN_EXPECTED, allowed="generator")
    inner = obj.get("generator")
    if not isinstance(inner, Mapping):
        keys = [str(k) for k in obj]
        what = _describe(keys)
        if what is not None:
            raise CheckpointError(
                f"{source}: this is {what} as a bare state dict, expected {BIGVGAN_EXPECTED}"
            )
        raise CheckpointError(
            f"{source}: expected {BIGVGAN_EXPECTED}; the file has no 'generator' (keys: {keys[:4]})"
        )
    state = _named_tensors(inner, source, BIGVGAN_EXPECTED)
    what = _describe(list(state))
    if what is not None and not what.startswith(("BigVGAN", "a HiFi-GAN")):
        raise CheckpointError(f"{source}: its 'generator' holds {what}, expected {BIGVGAN_EXPECTED}")
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
    state = _bigvgan_state(_read_pickle(weights, BIGVGAN_EXPECTED), source)
    weight_norm = any(k.endswith(".weight_g") for k in state)
    mismatch = shape_mismatch(bigvgan_expected_shapes(config, weight_norm), state)
    if mismatch:
        layout = "with weight norm" if weight_norm else "without weight norm"
        raise CheckpointError(
            f"{source}: weights ({layout}) do not fit the BigVGAN generator {d / BIGVGAN_CONFIG_FILE} "
            f"describes: {mismatch}. Check that config.json and the weights belong together."
        )
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
        raise ValueError(f"only SoVITS v3 and v4 use a separate vocoder; got version {version!r}")
    path = Path(pretrained_dir) / VOCODER_PATHS[version]
    if version == "v3":
        return load_bigvgan(path, device, dtype)
    return load_v4_vocoder(path, device, dtype)
