"""GPT-SoVITS GPT (s1) checkpoint files: read them safely, build our model, write files upstream loads.

Layouts read (all ``torch.save`` pickles, no magic bytes, opened with ``weights_only=True`` so a
file can only produce tensors and plain containers; nothing in it runs):

- exported weights, ``GPT_weights*/<exp>-e<N>.ckpt`` and the released pretrained files
  (``s1bert25hz-*.ckpt``, ``s1v3.ckpt``): ``{"weight": {"model.<name>": fp16 tensor}, "config": dict,
  "info": "GPT-e<N>"}``. Upstream opens both the same way (``dict_s1["weight"]``, ``dict_s1["config"]``);
  ``info`` is optional here.
- a Lightning training checkpoint from ``logs_s1*/ckpt/epoch=..-step=...ckpt``: weights under
  ``state_dict``, the config under ``hyper_parameters["config"]``. Its hyper-parameters hold
  ``pathlib`` paths, which are read back as plain strings (no class from the file is built).

The version is decided by an explicit rule on ``config["model"]["phoneme_vocab_size"]``: 512 -> v1
(322-symbol table), 732 -> v2 (also the GPT of v2Pro/v2ProPlus/v3/v4, which share its shape);
anything else is refused. The embedding rows in the weights must agree with the config.

Upstream's CPU inference builds the model in float32 and copies the fp16 values in; loading here
does the same, which is an exact upcast.
"""

from __future__ import annotations

import copy
import io
import logging
import os
import pathlib
import pickle
import re
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from app.fileio import atomic_write
from app.messages import Message, said
from app.models.gpt.config import GPTConfig, GPTConfigError
from app.models.gpt.model import GPT
from app.models.upstream.headers import HEADER_VERSIONS

logger = logging.getLogger(__name__)

# Upstream's Lightning module keeps the decoder as ``self.model``, so every weight name has this prefix.
KEY_PREFIX = "model."
# phoneme_vocab_size -> version of the symbol table the model was trained with.
VERSION_BY_PHONEME_VOCAB = {512: "v1", 732: "v2"}
# Folder upstream's web UI writes GPT weights to, by version.
WEIGHTS_DIR = {"v1": "GPT_weights", "v2": "GPT_weights_v2"}
# Pickled path classes allowed in Lightning hyper-parameters; they are rebuilt as strings.
_PATH_GLOBALS = (
    "pathlib.PosixPath",
    "pathlib.WindowsPath",
    "pathlib.PurePosixPath",
    "pathlib.PureWindowsPath",
    "pathlib._local.PosixPath",
    "pathlib._local.WindowsPath",
)


class GPTFileError(ValueError):
    """A file that is not a usable GPT-SoVITS GPT checkpoint; the message names the file."""


@dataclass(frozen=True)
class GPTFile:
    """What an upstream GPT checkpoint holds, with the model built from it (float32, eval mode)."""

    # The model with the file's weights.
    model: GPT
    # "v1" (322-symbol table) or "v2".
    version: str
    # The full upstream config dict stored in the file (train/data/model/... sections).
    config: dict[str, Any]
    # The "info" string ("GPT-e<N>"), None when the file has none.
    info: str | None
    # config["data"]["max_sec"]: upstream's early stop is 50 x max_sec steps (None if absent).
    max_sec: int | None


def gpt_version(model_config: dict[str, Any], where: str = "config") -> str:
    """The version rule: ``phoneme_vocab_size`` 512 -> "v1", 732 -> "v2", else an error."""
    rows = model_config.get("phoneme_vocab_size")
    if rows not in VERSION_BY_PHONEME_VOCAB:
        template = "{where}: phoneme_vocab_size {rows!r} matches no GPT-SoVITS version (expected 512 for v1 or 732 for v2)"
        raise GPTFileError(Message("gptfile.err.vocab", template, where=where, rows=rows))
    return VERSION_BY_PHONEME_VOCAB[rows]


def load_gpt(
    path: str | os.PathLike, expect_version: str | None = None, device: str | torch.device = "cpu"
) -> GPTFile:
    """Read an upstream GPT ``.ckpt`` and build the model (float32, ``eval()``) on ``device``.

    Raises :class:`GPTFileError` (naming the file) for a missing, truncated or corrupt file, a
    file of another kind (SoVITS ``.pth``, so-vits-svc ``G_*.pth``, our own checkpoints), a
    pickle that asks for anything but tensors and containers, weights that do not match the
    config, or a version other than ``expect_version``.
    """
    path = Path(path)
    weights, config, info = read_gpt_file(path)
    model_cfg = config.get("model")
    if not isinstance(model_cfg, dict):
        template = "{path}: config has no 'model' section; not a GPT-SoVITS GPT checkpoint"
        raise GPTFileError(Message("gptfile.err.no_model", template, path=str(path)))
    version = gpt_version(model_cfg, where=str(path))
    if expect_version is not None and version != expect_version:
        template = (
            "{path}: this is a {version} GPT (phoneme_vocab_size {rows}) but a {expected} GPT was expected; "
            "pick a {expected} file or switch version"
        )
        fields = {
            "path": str(path),
            "version": version,
            "rows": model_cfg["phoneme_vocab_size"],
            "expected": expect_version,
        }
        raise GPTFileError(Message("gptfile.err.version", template, **fields))
    try:
        gcfg = GPTConfig.from_upstream(model_cfg)
    except GPTConfigError as exc:
        raise GPTFileError(
            Message("gptfile.err.file", "{path}: {problem}", path=str(path), problem=said(exc))
        ) from exc
    rows = weights.get("ar_text_embedding.word_embeddings.weight")
    if rows is not None and rows.shape[0] != gcfg.phoneme_vocab_size:
        template = (
            "{path}: config says phoneme_vocab_size {size} but the phoneme embedding has {rows} rows; "
            "the file is inconsistent"
        )
        fields = {"path": str(path), "size": gcfg.phoneme_vocab_size, "rows": rows.shape[0]}
        raise GPTFileError(Message("gptfile.err.inconsistent", template, **fields))
    model = GPT(gcfg)
    _load_strict(model, weights, path)
    model.eval().to(device)
    data = config.get("data")
    max_sec = data.get("max_sec") if isinstance(data, dict) else None
    return GPTFile(model, version, config, info, int(max_sec) if isinstance(max_sec, (int, float)) else None)


def read_gpt_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any], str | None]:
    """Low-level read: (weights without the ``model.`` prefix, full config dict, info or None)."""
    path = Path(path)
    obj = _torch_load(path)
    if not isinstance(obj, dict):
        template = "{path}: holds a {kind}, expected a GPT checkpoint dict"
        raise GPTFileError(Message("gptfile.err.not_dict", template, path=str(path), kind=type(obj).__name__))
    _reject_other_kinds(obj, path)
    if "weight" in obj and "config" in obj:
        weights, config, info = obj["weight"], obj["config"], obj.get("info")
    elif "state_dict" in obj and isinstance(obj.get("hyper_parameters"), dict):
        weights, config, info = obj["state_dict"], obj["hyper_parameters"].get("config"), None
        if isinstance(obj.get("epoch"), int):
            info = f"GPT-e{obj['epoch'] + 1}"
    else:
        template = (
            "{path}: top-level keys {keys} are not those of a GPT-SoVITS GPT checkpoint (expected 'weight' + "
            "'config', or a Lightning 'state_dict' + 'hyper_parameters')"
        )
        keys = str(sorted(map(str, obj))[:8])
        raise GPTFileError(Message("gptfile.err.keys", template, path=str(path), keys=keys))
    if not isinstance(config, dict):
        template = "{path}: 'config' is a {kind}, expected a dict"
        raise GPTFileError(
            Message("gptfile.err.config", template, path=str(path), kind=type(config).__name__)
        )
    if not isinstance(weights, dict) or not all(isinstance(t, torch.Tensor) for t in weights.values()):
        template = "{path}: the weights are not a mapping of names to tensors"
        raise GPTFileError(Message("gptfile.err.weights", template, path=str(path)))
    stripped = {}
    for name, tensor in weights.items():
        if not isinstance(name, str) or not name.startswith(KEY_PREFIX):
            template = "{path}: weight {name!r} lacks the {prefix!r} prefix of GPT-SoVITS GPT files"
            raise GPTFileError(
                Message("gptfile.err.prefix", template, path=str(path), name=name, prefix=KEY_PREFIX)
            )
        stripped[name[len(KEY_PREFIX) :]] = tensor
    return stripped, config, info if isinstance(info, str) else None


def gpt_weights(model: GPT) -> OrderedDict[str, torch.Tensor]:
    """The ``weight`` entry upstream expects: ``model.``-prefixed names, fp16, in state-dict order."""
    return OrderedDict(
        (KEY_PREFIX + name, t.detach().to(torch.float16).contiguous())
        for name, t in model.state_dict().items()
    )


def default_config(model_config: GPTConfig, exp_name: str = "") -> dict[str, Any]:
    """A complete upstream config dict (``s1longer(-v2).yaml`` + the keys the web UI adds)."""
    version = VERSION_BY_PHONEME_VOCAB.get(model_config.phoneme_vocab_size, "v2")
    return {
        "train": {
            "seed": 1234,
            "epochs": 20,
            "batch_size": 8,
            "save_every_n_epoch": 1,
            "precision": "32",
            "gradient_clip": 1.0,
            "if_save_every_weights": True,
            "if_save_latest": True,
            "if_dpo": False,
            "half_weights_save_dir": WEIGHTS_DIR[version],
            "exp_name": exp_name,
        },
        "optimizer": {
            "lr": 0.01,
            "lr_init": 1e-05,
            "lr_end": 0.0001,
            "warmup_steps": 2000,
            "decay_steps": 40000,
        },
        "data": {"max_eval_sample": 8, "max_sec": 54, "num_workers": 4, "pad_val": model_config.eos},
        "model": model_config.to_upstream(),
        # upstream's v1 yaml samples with top_k 5, v2 with 15
        "inference": {"top_k": 5 if version == "v1" else 15},
        "pretrained_s1": "",
        "train_semantic_path": "",
        "train_phoneme_path": "",
        "output_dir": "",
    }


def save_gpt(
    model: GPT,
    path: str | os.PathLike,
    epoch: int,
    config: dict[str, Any] | None = None,
    exp_name: str = "",
) -> Path:
    """Write ``model`` as an upstream GPT ``.ckpt`` (fp16 weights, config dict, ``info`` "GPT-e<epoch>").

    ``config`` is a full upstream config dict (for example the one of the file the model was
    fine-tuned from); its ``model`` section is replaced by the model's own shape. Without it a
    default config is written. The file is written to a temporary name and renamed, so a crash
    never leaves a half-written checkpoint.
    """
    path = Path(path)
    cfg = copy.deepcopy(config) if config is not None else default_config(model.config, exp_name)
    cfg["model"] = model.config.to_upstream()
    payload = OrderedDict(weight=gpt_weights(model), config=cfg, info=f"GPT-e{int(epoch)}")
    with atomic_write(path, "wb") as fh:
        torch.save(payload, fh)
    logger.info("wrote GPT checkpoint %s (%s)", path, payload["info"])
    return path


def _path_as_text(*parts: object) -> str:
    """Stand-in for pickled ``pathlib`` paths: returns the joined text, builds no path object."""
    if not all(isinstance(p, str) for p in parts):
        raise pickle.UnpicklingError(Message("gptfile.err.path_parts", "path parts must be strings"))
    return str(pathlib.PurePosixPath(*parts))


def _torch_load(path: Path) -> Any:
    if not path.is_file():
        template = "{path}: no such file; expected a GPT-SoVITS GPT .ckpt"
        raise GPTFileError(Message("gptfile.err.no_file", template, path=str(path)))
    with open(path, "rb") as fh:
        head = fh.read(4)
    if not head:
        template = "{path}: the file is empty; expected a GPT-SoVITS GPT .ckpt"
        raise GPTFileError(Message("gptfile.err.empty", template, path=str(path)))
    if head[:2] in HEADER_VERSIONS:
        template = (
            "{path}: starts with the version tag {tag!r} of an upstream SoVITS .pth; "
            "this is a SoVITS model, expected a GPT .ckpt"
        )
        raise GPTFileError(Message("gptfile.err.sovits_tag", template, path=str(path), tag=head[:2].decode()))
    if head[:2] == b"PK" and not zipfile.is_zipfile(path):
        template = "{path}: the zip container is truncated or corrupt; download or copy it again"
        raise GPTFileError(Message("gptfile.err.zip", template, path=str(path)))
    if head[:2] != b"PK" and head[:1] != b"\x80":  # zip, or a legacy torch.save pickle (PROTO opcode)
        template = "{path}: not a torch checkpoint (starts with {head!r}); expected a GPT .ckpt"
        raise GPTFileError(Message("gptfile.err.not_torch", template, path=str(path), head=head))
    globals_ = [(_path_as_text, name) for name in _PATH_GLOBALS]
    try:
        with torch.serialization.safe_globals(globals_):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "HParams" in text:
            template = "{path}: holds an upstream HParams config, i.e. a SoVITS .pth; expected a GPT .ckpt"
            raise GPTFileError(Message("gptfile.err.hparams", template, path=str(path))) from None
        if "GLOBAL" in text or "global" in text:
            template = (
                "{path}: refused to load: the pickle asks for objects other than tensors and containers "
                "({problem}); nothing from it was run. A GPT .ckpt holds only weights and a plain config"
            )
            raise GPTFileError(
                Message("gptfile.err.unsafe", template, path=str(path), problem=_first_line(text))
            ) from None
        template = "{path}: cannot be unpickled (corrupt?): {problem}"
        raise GPTFileError(
            Message("gptfile.err.unpickle", template, path=str(path), problem=_first_line(text))
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, io.UnsupportedOperation) as exc:
        template = "{path}: cannot be read as a torch checkpoint (truncated or corrupt?): {problem}"
        message = Message("gptfile.err.unreadable", template, path=str(path), problem=_first_line(str(exc)))
        raise GPTFileError(message) from None


def _first_line(text: str) -> str:
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return f"it names the global {found.group(1)!r}"
    for line in text.splitlines():
        if "Unsupported" in line:
            return line.strip()[:200]
    return text.strip().splitlines()[0][:200] if text.strip() else "no details"


def _reject_other_kinds(obj: dict[Any, Any], path: Path) -> None:
    """Name the kind of file when it is a known non-GPT checkpoint."""
    weights = obj.get("weight")
    if isinstance(weights, dict) and any(str(k).startswith(("enc_p.", "dec.", "flow.")) for k in weights):
        template = "{path}: holds SoVITS (s2) weights (enc_p/dec/flow); expected a GPT .ckpt"
        raise GPTFileError(Message("gptfile.err.sovits_weights", template, path=str(path)))
    if "model" in obj and "iteration" in obj:
        template = (
            "{path}: looks like a so-vits-svc / VITS training checkpoint (G_*.pth or D_*.pth: "
            "'model' + 'iteration'); expected a GPT-SoVITS GPT .ckpt"
        )
        raise GPTFileError(Message("gptfile.err.svc", template, path=str(path)))
    if "format" in obj and "model_config" in obj:
        template = (
            "{path}: is a SoVITS Studio training checkpoint; load it with app.models.checkpoint, "
            "or export it as an upstream .ckpt first"
        )
        raise GPTFileError(Message("gptfile.err.studio", template, path=str(path)))


def _listed(names: list[str]) -> str:
    """The first five of ``names`` as a list, then " ..." when there are more."""
    return f"{names[:5]}{' ...' if len(names) > 5 else ''}"


def _load_strict(model: GPT, weights: dict[str, torch.Tensor], path: Path) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    if missing or unexpected:
        template = (
            "{path}: weights do not match a GPT of this config: missing {missing}, unexpected {unexpected}"
        )
        fields = {"path": str(path), "missing": _listed(missing), "unexpected": _listed(unexpected)}
        raise GPTFileError(Message("gptfile.err.mismatch", template, **fields))
    for name, tensor in weights.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            template = "{path}: weight {prefix}{name} has shape {shape}, the config implies {expected}"
            fields = {
                "path": str(path),
                "prefix": KEY_PREFIX,
                "name": name,
                "shape": str(tuple(tensor.shape)),
            }
            message = Message(
                "gptfile.err.shape", template, **fields, expected=str(tuple(expected[name].shape))
            )
            raise GPTFileError(message)
        if not tensor.is_floating_point():
            template = "{path}: weight {prefix}{name} is {dtype}, expected floating point"
            fields = {"path": str(path), "prefix": KEY_PREFIX, "name": name, "dtype": str(tensor.dtype)}
            raise GPTFileError(Message("gptfile.err.dtype", template, **fields))
    # load_state_dict copies into the float32 parameters: the same exact fp16 -> fp32 upcast as upstream.
    model.load_state_dict(weights, strict=True)
