"""GPT-SoVITS v3/v4 SoVITS files: the flow-matching (CFM) half of :mod:`app.models.upstream.sovits`.

v3 and v4 files hold the same layers (``cfm.*``: the DiT mel decoder, ``wns1.*``, ``bridge.*``) and
differ only in the mel the CFM was trained on, so the version comes from rules on the file
(:func:`detect_cfm_version`) and the DiT/wns1 sizes, which upstream hard-codes, from the weights
(:func:`cfm_config`). :func:`build_cfm_sovits` builds :class:`CfmSoVITS` strictly from a state dict
(a file's, or a LoRA merged onto its base). Reading the file itself (:func:`read_sovits`,
:func:`load_cfm_sovits`) is shared with v1-v2ProPlus in :mod:`app.models.upstream.sovits`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import torch

from app.messages import Message, said
from app.models.nn.skip_init import shape_mismatch, state_shapes, without_init
from app.models.sovits.cfm_model import CfmSoVITS
from app.models.sovits.config import CFM_VERSIONS, SoVITSConfig, preset
from app.models.upstream.headers import HEADER_VERSIONS
from app.models.upstream.safe_pickle import CheckpointError

logger = logging.getLogger(__name__)

# Upstream recognises its official v3/v4 base files by the MD5 of their first 8192 bytes
# (process_ckpt.hash_pretrained_dict); the same content rule, for files whose config may not say.
HASH_BYTES = 8192
PRETRAINED_CFM_HASHES = {
    "43797be674a37c1c83ee81081941ed0f": "v3",  # s2Gv3.pth
    "4f26b9476d0c5033e04162c486074374": "v4",  # gsv-v4-pretrained/s2Gv4.pth
}
# Prefix of every flow-matching weight (the DiT is cfm.estimator.*).
CFM_PREFIX = "cfm."
# Training-only head of v3/v4 files: loaded when present, not required.
OPTIONAL_CFM_PREFIX = "linear_mel."
# Config fields of the DiT and wns1 sizes (hard-coded upstream; in the config of small test files).
CFM_SIZE_FIELDS = (
    "dit_dim", "dit_depth", "dit_heads", "dit_dim_head", "dit_ff_mult", "dit_conv_layers", "wns1_hidden",
    "wns1_layers",
)  # fmt: skip


def _config_tree_version(tree: Mapping[str, Any] | None) -> Any:
    """``model.version`` of an upstream config tree, else its top-level ``version`` (None if neither)."""
    if tree is None:
        return None
    model = tree.get("model")
    if isinstance(model, Mapping) and model.get("version") is not None:
        return model.get("version")
    return tree.get("version")


def detect_cfm_version(header: bytes, digest: str, tree: Mapping[str, Any] | None, source: str) -> str:
    """Tell v3 from v4 for a file with flow-matching (``cfm.*``) weights.

    The weights cannot tell (v3 and v4 have the same layers and shapes; they differ in the mel
    the CFM was trained on: 24 kHz hop 256 vs 32 kHz hop 320). Rules, in order:
      1. header ``02`` -> v3 (upstream's v3 header; ``03``/``04`` are LoRA files, not read here);
      2. the MD5 of the first 8192 bytes equals upstream's official ``s2Gv3.pth`` / ``s2Gv4.pth``
         -> that version (upstream's own rule for its base files);
      3. the embedded config's ``model.version`` (else its top-level ``version``): "v3" or "v4".
    A rule that applies but disagrees with the config is logged and wins (as upstream, which
    never reads the config's version). With none of them usable the file is refused.
    """
    header_version = HEADER_VERSIONS.get(header)
    if header_version is not None and header_version != "v3":
        template = (
            "{source}: header says GPT-SoVITS {version} but the weights are a v3/v4 flow-matching model"
        )
        raise CheckpointError(Message("cfmfile.err.header", template, source=source, version=header_version))
    said = _config_tree_version(tree)
    by_header = "v3" if header == b"02" else None
    decided = by_header or PRETRAINED_CFM_HASHES.get(digest)
    if decided is not None:
        if said in CFM_VERSIONS and said != decided:
            logger.warning(
                "%s: config says %s but the file is upstream's %s; using %s", source, said, decided, decided
            )
        return decided
    if said in CFM_VERSIONS:
        return str(said)
    template = (
        "{source}: flow-matching (cfm.*) weights of a GPT-SoVITS v3/v4 model, but no usable version: "
        "the config's model.version is {said!r} (v3 and v4 weights look the same; set model.version "
        "to 'v3' or 'v4' in the file's config, or use upstream's s2Gv3.pth / s2Gv4.pth)"
    )
    raise CheckpointError(Message("cfmfile.err.version", template, source=source, said=said))


def _count_indexed(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    """Number of ``<prefix>N.`` sub-modules (N = 0, 1, ...) with weights in ``state``."""
    indices = {key[len(prefix) :].split(".", 1)[0] for key in state if key.startswith(prefix)}
    return len({int(i) for i in indices if i.isdigit()})


def cfm_config(
    state: Mapping[str, torch.Tensor], tree: Mapping[str, Any] | None, version: str, source: str
) -> SoVITSConfig:
    """The v3/v4 config of a flow-matching state dict: the embedded config tree for the text
    encoder (upstream's ``s2.json``; preset when absent) and the DiT/wns1 sizes, which upstream
    hard-codes, from the weights:

    - DiT depth = number of ``transformer_blocks.N``, width = ``proj_out``'s input, ConvNeXt
      blocks = number of ``text_embed.text_blocks.N``, FFN factor = FFN width / width;
    - heads x dim_head from the config's ``model.fixture_dit`` (tiny test files) when present,
      else from the rotary table (``rotary_embed.inv_freq`` has dim_head / 2 entries; the full
      size is 16 x 64);
    - wns1 width = ``wns1.pre``'s output, depth = number of ``wns1.enc.in_layers.N``.
    """
    dit = "cfm.estimator."
    needed = (
        f"{dit}proj_out.weight",
        f"{dit}rotary_embed.inv_freq",
        f"{dit}transformer_blocks.0.attn.to_q.weight",
        f"{dit}transformer_blocks.0.ff.ff.0.0.weight",
        "wns1.pre.weight",
    )
    missing = [k for k in needed if k not in state]
    if missing:
        template = "{source}: flow-matching weights without {missing}; not a v3/v4 SoVITS file"
        raise CheckpointError(
            Message("cfmfile.err.missing", template, source=source, missing=str(missing[:3]))
        )
    dim = int(state[f"{dit}proj_out.weight"].shape[1])
    inner = int(state[f"{dit}transformer_blocks.0.attn.to_q.weight"].shape[0])
    model = tree.get("model") if tree is not None else None
    fixture = model.get("fixture_dit") if isinstance(model, Mapping) else None
    if isinstance(fixture, Mapping) and "dim_head" in fixture:
        dim_head = int(fixture["dim_head"])
        heads = int(fixture.get("heads", inner // dim_head))
    else:
        dim_head = 2 * int(state[f"{dit}rotary_embed.inv_freq"].numel())
        heads = inner // dim_head
    sizes = {
        "dit_dim": dim,
        "dit_depth": _count_indexed(state, f"{dit}transformer_blocks."),
        "dit_heads": heads,
        "dit_dim_head": dim_head,
        "dit_ff_mult": int(state[f"{dit}transformer_blocks.0.ff.ff.0.0.weight"].shape[0]) // dim,
        "dit_conv_layers": _count_indexed(state, f"{dit}text_embed.text_blocks."),
        "wns1_hidden": int(state["wns1.pre.weight"].shape[0]),
        "wns1_layers": _count_indexed(state, "wns1.enc.in_layers."),
    }
    try:
        base = SoVITSConfig.from_hparams(tree, version=version) if tree is not None else preset(version)
        # Upstream's loader forces 25 Hz tokens whatever the file says; so do we.
        return replace(base, semantic_frame_rate="25hz", **sizes)
    except ValueError as exc:
        template = "{source}: embedded config is not usable for a {version} model: {problem}"
        message = Message("cfmfile.err.config", template, source=source, version=version, problem=said(exc))
        raise CheckpointError(message) from None


@functools.lru_cache(maxsize=4)
def _cfm_expected_shapes(config: SoVITSConfig) -> dict[str, torch.Size]:
    """Key -> shape of a :class:`CfmSoVITS` of ``config`` (built once per config, without init)."""
    return state_shapes(lambda: CfmSoVITS(config))


def check_cfm_shapes(config: SoVITSConfig, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Every key of the model but ``linear_mel.*`` (training only) must be in ``state`` with its
    shape, and nothing else; ``linear_mel.*``, when present, must fit too."""
    expected = _cfm_expected_shapes(config)
    if not any(k.startswith(OPTIONAL_CFM_PREFIX) for k in state):
        expected = {k: v for k, v in expected.items() if not k.startswith(OPTIONAL_CFM_PREFIX)}
    mismatch = shape_mismatch(expected, state)
    if mismatch:
        template = "{source}: weights do not fit a {version} (flow-matching) SoVITS model: {mismatch}"
        message = Message(
            "cfmfile.err.mismatch", template, source=source, version=config.version, mismatch=str(mismatch)
        )
        raise CheckpointError(message)


def build_cfm_sovits(
    state: Mapping[str, torch.Tensor],
    config: SoVITSConfig,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    source: str = "state dict",
) -> CfmSoVITS:
    """A v3/v4 :class:`CfmSoVITS` ready for inference from a state dict and its config.

    The state must fit the config strictly (every key but the optional ``linear_mel.*``, same
    shapes, nothing else); tensors are cast to ``dtype`` (fp16 files are upcast exactly). For a
    file use :func:`load_cfm_sovits`; this entry point also takes a LoRA state already merged
    onto its base (``config`` = the base file's).

    Raises:
        CheckpointError: the config is not v3/v4 or the weights do not fit it (names ``source``).
    """
    if not config.is_cfm:
        template = "{source}: build_cfm_sovits needs a v3/v4 config, got {version}"
        raise CheckpointError(Message("cfmfile.err.build", template, source=source, version=config.version))
    check_cfm_shapes(config, state, source)
    # Built without random initialisation and filled with the given tensors.
    model = without_init(lambda: CfmSoVITS(config))
    del model.linear_mel  # training only
    weights = {k: v.to(dtype) for k, v in state.items() if not k.startswith(OPTIONAL_CFM_PREFIX)}
    model.load_state_dict(weights, strict=True, assign=True)
    return model.to(device=device).prepare_for_inference()
