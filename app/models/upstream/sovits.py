"""GPT-SoVITS stage-2 (SoVITS) files: read, tell the version, build the model, write.

File kinds read here (all ``torch.save`` pickles, loaded through :mod:`safe_pickle`):

- exported weights ``SoVITS_weights*/<exp>_e<N>_s<step>.pth``: ``{"weight": fp16 state dict minus
  every ``enc_q`` key, "config": utils.HParams, "info": "<epoch>epoch_<step>iteration"}``; v2Pro and
  v2ProPlus files have their first two bytes ``PK`` replaced by ASCII ``05``/``06`` (v3/v4 LoRA: 03/04).
- v3/v4 base weights (``s2Gv3.pth``, ``gsv-v4-pretrained/s2Gv4.pth``) and non-LoRA v3/v4 exports:
  the same dict (leading bytes ``PK``, or ``02`` for v3) with the flow-matching synthesizer's
  weights (``cfm.*``, ``wns1.*``, ``bridge.*``, no ``enc_q``); built as :class:`CfmSoVITS`.
- pretrained generators (``s2G488k.pth``, ``gsv-v2final-pretrained/s2G2333k.pth``,
  ``v2Pro/s2Gv2Pro*.pth``): the same dict, ``enc_q`` kept; upstream's training loads their
  ``weight``.
- upstream training checkpoints (``logs/<exp>/logs_s2_*/G_<step>.pth``):
  ``{"model", "iteration", "optimizer", "learning_rate"}``, no config.
- pretrained discriminators (``s2D*.pth``): ``{"weight": MultiPeriodDiscriminator state dict}``.

The version comes from explicit rules on the contents (never from the file size, as upstream
does): the header bytes, the phoneme-embedding rows (322 = v1, 732 = v2), the presence of the
speaker-embedding layers (v2Pro*), and the decoder shape (v2ProPlus has a wider first stage);
every rule that applies must agree. Flow-matching weights (``cfm.*``) make a v3/v4 model, told
apart by :func:`detect_cfm_version` (v3 and v4 weights have identical shapes).

Which loader: :func:`load_sovits` builds the VITS-decoder :class:`SoVITS` (v1-v2ProPlus) and
refuses v3/v4 files with a pointer to :func:`load_cfm_sovits`; :func:`read_sovits` reads every
kind, so ``record.config.is_cfm`` picks the builder (:func:`build_cfm_sovits` takes the record's
state dict and config, which is also how a LoRA state merged onto its base is loaded).
The v3/v4 rules and builder live in :mod:`app.models.upstream.sovits_cfm`, the header tags in
:mod:`app.models.upstream.headers`.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from app.fileio import atomic_write
from app.messages import Message, said
from app.models.nn.discriminators import MultiPeriodDiscriminator
from app.models.nn.skip_init import shape_mismatch, state_shapes, without_init
from app.models.sovits.cfm_model import CfmSoVITS
from app.models.sovits.config import N_SYMBOLS, SV_EMB_DIM, SoVITSConfig, preset
from app.models.sovits.model import SoVITS, build_posterior_encoder
from app.models.upstream.headers import HEADER_VERSIONS, LORA_HEADERS, VERSION_HEADERS, ZIP_HEADER
from app.models.upstream.safe_pickle import CheckpointError, HParams, load, read_file, save
from app.models.upstream.sovits_cfm import (
    CFM_PREFIX,
    CFM_SIZE_FIELDS,
    HASH_BYTES,
    build_cfm_sovits,
    cfm_config,
    check_cfm_shapes,
    detect_cfm_version,
)

logger = logging.getLogger(__name__)

# v2ProPlus's first upsampling kernel (s2v2ProPlus.json); v2Pro uses 16.
PRO_PLUS_FIRST_KERNEL = 20


class FlowMatchingModel(CheckpointError):
    """A v3/v4 file was given to the VITS loader (:func:`load_sovits`); use :func:`load_cfm_sovits`."""


@dataclass(frozen=True)
class SoVITSFile:
    """A SoVITS generator file as read (weights not yet in a model)."""

    path: str  # where it came from
    kind: str  # "weights" (exported / v3-v4 base), "pretrained" (enc_q kept), or "training" (G_*.pth)
    version: str  # "v1", "v2", "v2Pro", "v2ProPlus", "v3" or "v4" (config.is_cfm for the last two)
    header: bytes  # the first two bytes of the file
    config: SoVITSConfig  # model shape (from the embedded HParams, else upstream's preset)
    state_dict: dict[str, torch.Tensor]  # tensors as stored (fp16 for exports)
    info: str | None  # "<epoch>epoch_<step>iteration" of exports, else None
    hparams: HParams | None  # the embedded config tree, if any


def _open(path: str | os.PathLike, what: str) -> tuple[bytes, Any, str]:
    """Read, restore the zip header, unpickle safely.

    Returns (original header, object, MD5 hex digest of the first 8192 bytes as stored).
    """
    data = read_file(path)
    source = str(path)
    if len(data) < 4:
        template = "{source}: {size} bytes is too short for {what}"
        raise CheckpointError(
            Message("sovfile.err.short", template, source=source, size=len(data), what=what)
        )
    digest = hashlib.md5(data[:HASH_BYTES], usedforsecurity=False).hexdigest()
    header = data[:2]
    if header != ZIP_HEADER:
        if header not in HEADER_VERSIONS:
            template = "{source}: not {what}: starts with {head!r}, expected a zip ('PK') or a GPT-SoVITS version header '00'..'06'"
            raise CheckpointError(
                Message("sovfile.err.header", template, source=source, what=what, head=data[:4])
            )
        data = ZIP_HEADER + data[2:]
    return header, load(data, source), digest


def _describe_foreign(obj: Any, source: str, expected: str) -> None:
    """Raise a clear error when the file is some other model's checkpoint."""
    if not isinstance(obj, Mapping):
        template = "{source}: expected {expected}, found a pickled {kind}"
        fields = {"source": source, "expected": expected, "kind": type(obj).__name__}
        raise CheckpointError(Message("sovfile.err.not_dict", template, **fields))
    if "state_dict" in obj and ("pytorch-lightning_version" in obj or "epoch" in obj):
        template = "{source}: this is a GPT (s1) Lightning checkpoint, expected {expected}"
        raise CheckpointError(
            Message("sovfile.err.gpt_lightning", template, source=source, expected=expected)
        )
    weights = obj.get("weight", obj.get("model"))
    if not isinstance(weights, Mapping):
        template = "{source}: expected {expected} (a dict with 'weight' or 'model'), found keys {keys}"
        fields = {"source": source, "expected": expected, "keys": str(sorted(obj)[:8])}
        raise CheckpointError(Message("sovfile.err.keys", template, **fields))
    keys = [str(k) for k in weights]
    if any(k.startswith("model.ar_") or k.startswith("model.h.") for k in keys):
        template = "{source}: this is a GPT (s1, text-to-semantic) checkpoint, expected {expected}"
        raise CheckpointError(Message("sovfile.err.gpt", template, source=source, expected=expected))
    if any(k.startswith(("enc_p.f0_emb", "emb_g.", "f0_decoder.", "emb_uv.")) for k in keys):
        template = "{source}: this is a so-vits-svc model (G_*.pth), expected {expected}"
        raise CheckpointError(Message("sovfile.err.svc", template, source=source, expected=expected))
    if "lora_rank" in obj or any(k.startswith("cfm.base_model.") for k in keys):
        template = (
            "{source}: this is a GPT-SoVITS v3/v4 LoRA file (rank {rank}): it holds only the trained adapters; "
            "merge it onto its base model (s2Gv3.pth / s2Gv4.pth) with sovits_lora.read_lora + merge_lora, "
            "then build_cfm_sovits"
        )
        raise CheckpointError(
            Message("sovfile.err.lora", template, source=source, rank=str(obj.get("lora_rank")))
        )


def _state_dict(obj: Mapping[str, Any], source: str) -> tuple[str, dict[str, torch.Tensor]]:
    if "weight" in obj:
        raw = obj["weight"]
        kind = "weights"
    else:
        raw = obj["model"]
        kind = "training"
    bad = [k for k, v in raw.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        template = "{source}: weight entries must be named tensors; {bad} are not"
        raise CheckpointError(Message("sovfile.err.entries", template, source=source, bad=str(bad[:3])))
    return kind, dict(raw)


def detect_version(state: Mapping[str, torch.Tensor], header: bytes, source: str) -> str:
    """Tell v1 / v2 / v2Pro / v2ProPlus from the weights (and the header when it says more).

    Rules, each checked against the others:
      1. ``sv_emb.weight`` present -> a Pro model; absent -> v1 or v2.
      2. Non-Pro: ``enc_p.text_embedding.weight`` rows 322 -> v1, 732 -> v2.
      3. Pro: header ``05`` -> v2Pro, ``06`` -> v2ProPlus; a ``PK`` header (pretrained files) ->
         v2ProPlus when the first upsampling kernel is 20 wide, else v2Pro.
      4. Headers ``02``-``04`` (v3, v4, LoRA) are not supported.
    """
    header_version = HEADER_VERSIONS.get(header)
    if any(k.startswith(CFM_PREFIX) for k in state):
        template = (
            "{source}: flow-matching (cfm.*) weights: a v3/v4 model, not a v1/v2/v2Pro SoVITS generator"
        )
        raise CheckpointError(Message("sovfile.err.cfm", template, source=source))
    if header_version in ("v3", "v3 LoRA", "v4 LoRA"):
        template = (
            "{source}: header says GPT-SoVITS {version} but the weights have no flow-matching (cfm.*) layers"
        )
        raise CheckpointError(Message("sovfile.err.no_cfm", template, source=source, version=header_version))
    if "enc_p.text_embedding.weight" not in state:
        template = "{source}: no 'enc_p.text_embedding.weight'; not a v1/v2/v2Pro/v3/v4 SoVITS generator"
        raise CheckpointError(Message("sovfile.err.no_embedding", template, source=source))
    is_pro = "sv_emb.weight" in state
    rows = int(state["enc_p.text_embedding.weight"].shape[0])
    if not is_pro:
        if header_version in ("v2Pro", "v2ProPlus"):
            template = "{source}: header says {version} but the weights have no sv_emb layer"
            raise CheckpointError(
                Message("sovfile.err.no_sv", template, source=source, version=header_version)
            )
        by_rows = {n: v for v, n in N_SYMBOLS.items() if v in ("v1", "v2")}
        if rows not in by_rows:
            template = "{source}: phoneme embedding has {rows} rows; expected 322 (v1) or 732 (v2)"
            raise CheckpointError(Message("sovfile.err.rows", template, source=source, rows=rows))
        version = by_rows[rows]
        if header_version in ("v1", "v2") and header_version != version:
            # Upstream builds what the rows say, so do we; the header alone is not trusted.
            logger.warning(
                "%s: header says %s but the phoneme table is %s; using %s",
                source,
                header_version,
                version,
                version,
            )
        return version
    if rows != N_SYMBOLS["v2Pro"]:
        template = "{source}: a v2Pro model must have 732 phoneme rows, found {rows}"
        raise CheckpointError(Message("sovfile.err.pro_rows", template, source=source, rows=rows))
    if header_version in ("v1", "v2"):
        template = "{source}: header says {version} but the weights have v2Pro speaker layers"
        raise CheckpointError(
            Message("sovfile.err.pro_layers", template, source=source, version=header_version)
        )
    if header_version in ("v2Pro", "v2ProPlus"):
        return header_version
    first_up = state.get("dec.ups.0.weight_v")
    if first_up is not None and int(first_up.shape[-1]) == PRO_PLUS_FIRST_KERNEL:
        return "v2ProPlus"
    return "v2Pro"


@functools.lru_cache(maxsize=8)
def _expected_shapes(config: SoVITSConfig) -> dict[str, torch.Size]:
    """Key -> shape of the state dict a model of ``config`` has (built once per config)."""
    return state_shapes(lambda: SoVITS(config))


@functools.lru_cache(maxsize=2)
def _discriminator_shapes(periods: tuple[int, ...]) -> dict[str, torch.Size]:
    """Key -> shape of a discriminator with these periods (built once per period set)."""
    return state_shapes(lambda: MultiPeriodDiscriminator(periods))


def _check_shapes(
    config: SoVITSConfig, state: Mapping[str, torch.Tensor], source: str, need_enc_q: bool
) -> None:
    """The model this config builds must have exactly the file's keys and shapes."""
    expected = _expected_shapes(config)
    if not need_enc_q and not any(k.startswith("enc_q.") for k in state):
        expected = {k: v for k, v in expected.items() if "enc_q" not in k}
    mismatch = shape_mismatch(expected, state)
    if mismatch:
        template = "{source}: weights do not fit a {version} SoVITS model built from its config: {mismatch}"
        fields = {"source": source, "version": config.version, "mismatch": str(mismatch)}
        raise CheckpointError(Message("sovfile.err.mismatch", template, **fields))


def _expect_version(version: str, expected: str | None, source: str) -> None:
    """Refuse a file of another version than ``expected`` (None: any version)."""
    if expected is not None and version != expected:
        template = "{source}: this is a {version} SoVITS model, expected {expected}"
        message = Message("sovfile.err.version", template, source=source, version=version, expected=expected)
        raise CheckpointError(message)


def read_sovits(
    path: str | os.PathLike, expect_version: str | None = None, config: SoVITSConfig | None = None
) -> SoVITSFile:
    """Read a SoVITS generator file (exported, pretrained or upstream training checkpoint).

    v1-v2ProPlus files and non-LoRA v3/v4 files (``config.is_cfm``; version by
    :func:`detect_cfm_version`, DiT/wns1 sizes by :func:`cfm_config`) are read. For v3/v4 every
    key of :class:`CfmSoVITS` is required with its shape except the training-only
    ``linear_mel.*``, which upstream's files carry and which may be absent.

    Args:
        path: the ``.pth`` file.
        expect_version: raise unless the file is this version ("v1", "v2", "v2Pro", "v2ProPlus",
            "v3", "v4").
        config: shape to use when the file has no embedded config (upstream ``G_*.pth``); by
            default upstream's preset for the detected version.

    Raises:
        CheckpointError: unreadable, truncated, corrupt, another kind of model, a discriminator,
            a LoRA file, an unsupported or unexpected version, or weights that do not fit the config.
        UnsafePickleError: the pickle asks for code outside the allow-list (nothing was run).
    """
    source = str(path)
    what = Message("sovfile.what.generator", "a GPT-SoVITS SoVITS generator (.pth)")
    header, obj, digest = _open(path, what)
    _describe_foreign(obj, source, what)
    if header in LORA_HEADERS:
        template = (
            "{source}: header says GPT-SoVITS {version} LoRA; a LoRA file holds only the trained adapters: "
            "merge it onto its base model (sovits_lora.merge_lora) first"
        )
        raise CheckpointError(
            Message("sovfile.err.lora_header", template, source=source, version=LORA_HEADERS[header])
        )
    kind, state = _state_dict(obj, source)
    if any(k.startswith("discriminators.") for k in state):
        template = "{source}: this is a SoVITS discriminator (D) file, expected the generator (G)"
        raise CheckpointError(Message("sovfile.err.discriminator", template, source=source))
    raw_config = obj.get("config")
    hparams: HParams | None = None
    if isinstance(raw_config, Mapping):
        hparams = raw_config if isinstance(raw_config, HParams) else HParams.from_mapping(raw_config)
    info = obj.get("info") if isinstance(obj.get("info"), str) else None
    if any(k.startswith(CFM_PREFIX) for k in state):
        version = detect_cfm_version(header, digest, hparams, source)
        _expect_version(version, expect_version, source)
        cfg = cfm_config(state, hparams, version, source)
        check_cfm_shapes(cfg, state, source)
        return SoVITSFile(source, kind, version, header, cfg, state, info, hparams)
    version = detect_version(state, header, source)
    _expect_version(version, expect_version, source)
    if hparams is not None:
        try:
            cfg = SoVITSConfig.from_hparams(hparams, version=version)
        except ValueError as exc:
            template = "{source}: embedded config is not usable: {problem}"
            raise CheckpointError(
                Message("sovfile.err.config", template, source=source, problem=said(exc))
            ) from None
        # Upstream's loader forces 25 Hz tokens whatever the file says; so do we.
        cfg = replace(cfg, semantic_frame_rate="25hz")
    elif config is not None:
        cfg = replace(config, version=version)
    else:
        cfg = preset(version)
    if cfg.is_pro:
        # The speaker-embedding width is the file's (20480 for upstream's models).
        cfg = replace(cfg, sv_dim=int(state["sv_emb.weight"].shape[1]))
    has_enc_q = any(k.startswith("enc_q.") for k in state)
    if kind == "weights" and has_enc_q:
        kind = "pretrained"
    _check_shapes(cfg, state, source, need_enc_q=kind == "training")
    return SoVITSFile(source, kind, version, header, cfg, state, info, hparams)


def load_sovits(
    path: str | os.PathLike,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    for_inference: bool = True,
    expect_version: str | None = None,
    config: SoVITSConfig | None = None,
) -> tuple[SoVITS, SoVITSFile]:
    """Read a generator file and return the model with its weights (and the file record).

    ``for_inference`` drops the posterior encoder, switches to eval and folds weight norm;
    otherwise the model is in training mode with ``enc_q`` from the file when present (exported
    weights have none: it keeps its fresh initialisation, as upstream's fine-tuning does).
    ``config`` is used for files without an embedded config (see :func:`read_sovits`).
    v3/v4 files are refused here: they build another model (:func:`load_cfm_sovits`).
    """
    record = read_sovits(path, expect_version=expect_version, config=config)
    if record.config.is_cfm:
        template = (
            "{path}: this is a GPT-SoVITS {version} model (flow-matching mel decoder + vocoder), which this "
            "loader does not build; load it with load_cfm_sovits"
        )
        raise FlowMatchingModel(
            Message("sovfile.err.cfm_loader", template, path=str(record.path), version=record.version)
        )
    # Built without random initialisation and filled with the file's tensors.
    model = without_init(lambda: SoVITS(record.config))
    state = {k: v.to(dtype) for k, v in record.state_dict.items()}
    if for_inference:
        del model.enc_q
        state = {k: v for k, v in state.items() if not k.startswith("enc_q.")}
    elif not any(k.startswith("enc_q.") for k in state):
        # Exported weights lack the posterior encoder: start it fresh, as upstream's fine-tuning does.
        fresh = build_posterior_encoder(record.config)
        state.update({f"enc_q.{k}": v.to(dtype) for k, v in fresh.state_dict().items()})
    model.load_state_dict(state, strict=True, assign=True)
    model = model.to(device=device)
    if for_inference:
        model.prepare_for_inference()
    else:
        model.train()
    return model, record


def load_cfm_sovits(
    path: str | os.PathLike,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    expect_version: str | None = None,
) -> tuple[CfmSoVITS, SoVITSFile]:
    """Read a non-LoRA v3/v4 file (``s2Gv3.pth``, ``s2Gv4.pth`` or an export) and return the
    model ready for inference with the file record; see :func:`read_sovits` for the rules."""
    record = read_sovits(path, expect_version=expect_version)
    if not record.config.is_cfm:
        template = "{path}: this is a {version} SoVITS model (VITS decoder); load it with load_sovits"
        raise CheckpointError(
            Message("sovfile.err.vits_loader", template, path=str(record.path), version=record.version)
        )
    return build_cfm_sovits(record.state_dict, record.config, device, dtype, record.path), record


def read_discriminator(path: str | os.PathLike) -> tuple[tuple[int, ...], dict[str, torch.Tensor]]:
    """Read a pretrained or training discriminator file -> (periods, state dict)."""
    source = str(path)
    what = Message("sovfile.what.discriminator", "a GPT-SoVITS SoVITS discriminator (s2D*.pth)")
    _, obj, _ = _open(path, what)
    _describe_foreign(obj, source, what)
    _, state = _state_dict(obj, source)
    if not any(k.startswith("discriminators.") for k in state):
        if "enc_p.text_embedding.weight" in state:
            template = "{source}: this is a SoVITS generator (G) file, expected the discriminator (D)"
            raise CheckpointError(Message("sovfile.err.generator", template, source=source))
        template = "{source}: expected {what}; no 'discriminators.*' weights inside"
        raise CheckpointError(Message("sovfile.err.no_discriminators", template, source=source, what=what))
    count = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("discriminators."))
    # Discriminator 0 is the scale discriminator; the rest are period discriminators in order.
    for periods in (preset("v2").mpd_periods, preset("v2Pro").mpd_periods):
        if len(periods) + 1 == count:
            break
    else:
        template = "{source}: {count} discriminators; expected 6 (v1/v2) or 8 (v2Pro*)"
        raise CheckpointError(
            Message("sovfile.err.discriminator_count", template, source=source, count=count)
        )
    expected = _discriminator_shapes(tuple(periods))
    wrong = sorted(set(expected) ^ set(state)) or [
        k for k in expected if tuple(expected[k]) != tuple(state[k].shape)
    ]
    if wrong:
        template = "{source}: discriminator weights do not fit the upstream layout (e.g. {wrong})"
        raise CheckpointError(
            Message("sovfile.err.discriminator_layout", template, source=source, wrong=str(wrong[:3]))
        )
    return periods, state


def load_discriminator(
    path: str | os.PathLike, device: torch.device | str = "cpu"
) -> MultiPeriodDiscriminator:
    """A :class:`MultiPeriodDiscriminator` with the file's weights (float32, training mode)."""
    periods, state = read_discriminator(path)
    disc = MultiPeriodDiscriminator(periods)
    disc.load_state_dict({k: v.float() for k, v in state.items()})
    return disc.to(device)


# Run options of upstream's s2 json and the keys its web UI adds before training; written when the
# config did not come from an upstream file, so our files carry the same tree upstream's do.
_TRAIN_DEFAULTS: dict[str, Any] = {
    "log_interval": 100,
    "eval_interval": 500,
    "seed": 1234,
    "epochs": 8,
    "learning_rate": 0.0001,
    "betas": [0.8, 0.99],
    "eps": 1e-09,
    "batch_size": 4,
    "fp16_run": False,
    "lr_decay": 0.999875,
    "segment_size": 20480,
    "init_lr_ratio": 1,
    "warmup_epochs": 0,
    "c_mel": 45,
    "c_kl": 1.0,
    "text_low_lr_rate": 0.4,
    "grad_ckpt": False,
    "pretrained_s2G": "",
    "pretrained_s2D": "",
    "if_save_latest": True,
    "if_save_every_weights": True,
    "save_every_epoch": 4,
    "gpu_numbers": "0",
    "lora_rank": "32",
}
_DATA_DEFAULTS: dict[str, Any] = {
    "max_wav_value": 32768.0,
    "add_blank": True,
    "n_speakers": 300,  # read by upstream's loader, unused by the model
    "cleaned_text": True,
}
_MODEL_DEFAULTS: dict[str, Any] = {"n_layers_q": 3, "use_spectral_norm": False}


def _hparams_for(config: SoVITSConfig, name: str) -> HParams:
    """The config tree upstream expects: the original one when known, with the shape keys set."""
    tree: dict[str, Any] = {k: dict(v) if isinstance(v, Mapping) else v for k, v in config.extra.items()}
    weights_dir = "SoVITS_weights" if config.version == "v1" else f"SoVITS_weights_{config.version}"
    train = {**_TRAIN_DEFAULTS, **tree.get("train", {})}
    data = {**_DATA_DEFAULTS, "exp_dir": f"logs/{name}", **tree.get("data", {})}
    model = {**_MODEL_DEFAULTS, **tree.get("model", {})}
    train.update(segment_size=config.segment_size, c_mel=config.c_mel, c_kl=config.c_kl)
    data.update(
        sampling_rate=config.sampling_rate,
        filter_length=config.filter_length,
        hop_length=config.hop_length,
        win_length=config.win_length,
        n_mel_channels=config.n_mel_channels,
        mel_fmin=config.mel_fmin,
        mel_fmax=config.mel_fmax,
    )
    model.update(
        inter_channels=config.inter_channels,
        hidden_channels=config.hidden_channels,
        filter_channels=config.filter_channels,
        n_heads=config.n_heads,
        n_layers=config.n_layers,
        kernel_size=config.kernel_size,
        p_dropout=config.p_dropout,
        resblock=config.resblock,
        resblock_kernel_sizes=list(config.resblock_kernel_sizes),
        resblock_dilation_sizes=[list(d) for d in config.resblock_dilation_sizes],
        upsample_rates=list(config.upsample_rates),
        upsample_initial_channel=config.upsample_initial_channel,
        upsample_kernel_sizes=list(config.upsample_kernel_sizes),
        gin_channels=config.gin_channels,
        semantic_frame_rate=config.semantic_frame_rate,
        freeze_quantizer=config.freeze_quantizer,
        version=config.version,
    )
    if config.is_pro and config.sv_dim != SV_EMB_DIM:
        model["sv_dim"] = config.sv_dim  # a small model of ours; upstream's are always 20480
    full = preset(config.version) if config.is_cfm else None
    if full is not None and any(getattr(config, k) != getattr(full, k) for k in CFM_SIZE_FIELDS):
        # A small v3/v4 model (tests): upstream hard-codes the DiT and wns1 sizes, so they travel
        # in the config as the upstream fixtures carry them.
        model["fixture_dit"] = {
            "dim": config.dit_dim, "depth": config.dit_depth, "heads": config.dit_heads,
            "dim_head": config.dit_dim_head, "ff_mult": config.dit_ff_mult, "conv_layers": config.dit_conv_layers,
        }  # fmt: skip
        model["fixture_wns1"] = {"hidden_channels": config.wns1_hidden, "n_layers": config.wns1_layers}
    # Section order as upstream: train, data, model, then the run-level keys.
    out: dict[str, Any] = {"train": train, "data": data, "model": model}
    out["s2_ckpt_dir"] = tree.get("s2_ckpt_dir", f"logs/{name}")
    out["content_module"] = tree.get("content_module", "cnhubert")
    out["save_weight_dir"] = tree.get("save_weight_dir", weights_dir)
    out["name"] = tree.get("name", name)
    out["version"] = config.version
    out["pretrain"] = tree.get("pretrain")
    out["resume_step"] = tree.get("resume_step")
    for key, value in tree.items():
        out.setdefault(key, value)
    return HParams.from_mapping(out)


def write_sovits(
    path: str | os.PathLike,
    state_dict: Mapping[str, torch.Tensor],
    config: SoVITSConfig,
    epoch: int,
    step: int,
) -> Path:
    """Write exported weights upstream's web UI loads (``SoVITS_weights*/``), atomically.

    fp16 tensors without ``enc_q``, the config as ``utils.HParams``, info
    ``"<epoch>epoch_<step>iteration"``, and the ``05``/``06`` header for v2Pro/v2ProPlus. v3/v4
    (whole models, as ``s2Gv3.pth``/``s2Gv4.pth``) keep the zip's ``PK``, as upstream's exporter
    does; LoRA exports are written by :mod:`app.models.upstream.sovits_lora`.
    """
    target = Path(path)
    weights = {k: v.detach().to("cpu", torch.float16) for k, v in state_dict.items() if "enc_q" not in k}
    payload: OrderedDict[str, Any] = OrderedDict()
    payload["weight"] = weights
    payload["config"] = _hparams_for(config, target.stem)
    payload["info"] = f"{epoch}epoch_{step}iteration"
    with atomic_write(target, "wb") as f:
        save(payload, f)
        header = VERSION_HEADERS.get(config.version)
        if header is not None:
            f.seek(0)
            f.write(header)
    return target
