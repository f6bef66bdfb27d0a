"""Restricted unpickling for upstream checkpoint files, and the matching writer.

Checkpoints are pickles, and a pickle can call any importable function while it loads. Files
from the internet must therefore never go through plain ``pickle``/``torch.load(weights_only=False)``.
:func:`load` reads ``torch.save`` files (zip or legacy) through an unpickler that resolves only an
explicit allow-list of globals: tensor/storage rebuild functions, ``collections.OrderedDict`` and
upstream's ``utils.HParams`` config class (mapped to :class:`HParams` here). Any other global is
refused when the pickle names it, before anything is called, with :class:`UnsafePickleError`
naming the file and the global.

:func:`save` writes ``torch.save`` files in which :class:`HParams` is pickled under upstream's
global name ``utils.HParams``, so upstream's loader (which has that class on its path) reads them.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import types
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import torch
import torch._utils

from app.messages import Message

# Upstream pickles its config class as `utils.HParams` (GPT_SoVITS/ is on its sys.path).
HPARAMS_GLOBAL = ("utils", "HParams")


class CheckpointError(ValueError):
    """A checkpoint file cannot be used; the message names the file and what was expected."""


class UnsafePickleError(CheckpointError):
    """The file's pickle asks for a global outside the allow-list; nothing was called."""


class HParams:
    """Attribute bag standing in for upstream's ``utils.HParams`` (nested sections are HParams too).

    Supports attribute access, ``bag["key"]``, ``in``, ``keys()/items()/values()`` and ``get``,
    like upstream's class, so code written against the file's config reads it unchanged.
    """

    def __init__(self, **kwargs: Any) -> None:
        for key, value in kwargs.items():
            setattr(self, key, HParams(**value) if isinstance(value, dict) else value)

    def __setstate__(self, state: Any) -> None:
        # Protocol-2 pickles rebuild the object with __new__ and then hand over its __dict__.
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise UnsafePickleError(
                Message("pickle.err.hparams", "utils.HParams state is not a dict of attribute names")
            )
        self.__dict__.update(state)

    def __getitem__(self, key: str) -> Any:
        return self.__dict__[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.__dict__[key] = value

    def __contains__(self, key: object) -> bool:
        return key in self.__dict__

    def __len__(self) -> int:
        return len(self.__dict__)

    def __iter__(self) -> Iterator[str]:
        return iter(self.__dict__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HParams) and self.__dict__ == other.__dict__

    def __repr__(self) -> str:
        return f"HParams({self.__dict__!r})"

    def keys(self):  # type: ignore[no-untyped-def]
        return self.__dict__.keys()

    def items(self):  # type: ignore[no-untyped-def]
        return self.__dict__.items()

    def values(self):  # type: ignore[no-untyped-def]
        return self.__dict__.values()

    def get(self, key: str, default: Any = None) -> Any:
        return self.__dict__.get(key, default)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dicts."""
        return {k: v.to_dict() if isinstance(v, HParams) else v for k, v in self.__dict__.items()}

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> HParams:
        """Nested mappings -> nested HParams."""
        bag = cls()
        for key, value in data.items():
            bag[key] = cls.from_mapping(value) if isinstance(value, Mapping) else value
        return bag


Mapping.register(HParams)


# The only globals a checkpoint pickle may name. Storage types ("FloatStorage", ...) are resolved
# by torch itself before reaching find_class.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch", "Size"): torch.Size,
    HPARAMS_GLOBAL: HParams,
}


def _make_unpickler(source: str, extra: Mapping[tuple[str, str], Any]) -> type[pickle.Unpickler]:
    allowed = {**_ALLOWED, **extra}

    class RestrictedUnpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            try:
                return allowed[(module, name)]
            except KeyError:
                template = (
                    "{source}: refused to load: its pickle asks for '{module}.{name}', which is not a tensor, container "
                    "or upstream config class. Nothing from the file was run. Only load checkpoint files from sources "
                    "you trust."
                )
                raise UnsafePickleError(
                    Message("pickle.err.unsafe", template, source=source, module=module, name=name)
                ) from None

    return RestrictedUnpickler


def _check_container(data: bytes, source: str) -> None:
    """Fail early, with a clear message, on files that are not torch.save archives at all."""
    if data[:2] == b"PK":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                names = zf.namelist()
                bad = zf.testzip()
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            template = "{source}: the file is truncated or corrupt (broken zip archive: {problem})"
            raise CheckpointError(
                Message("pickle.err.zip", template, source=source, problem=str(exc))
            ) from None
        if bad is not None:
            template = "{source}: the file is corrupt (zip member {member} fails its checksum)"
            raise CheckpointError(Message("pickle.err.checksum", template, source=source, member=bad))
        if not any(n.endswith("data.pkl") for n in names):
            template = "{source}: a zip archive but not a PyTorch checkpoint (no data.pkl inside)"
            raise CheckpointError(Message("pickle.err.no_data", template, source=source))
    elif data[:1] != b"\x80":
        template = "{source}: not a PyTorch checkpoint (starts with {head!r})"
        raise CheckpointError(Message("pickle.err.not_torch", template, source=source, head=data[:4]))


def load(
    data: bytes,
    source: str,
    extra_globals: Mapping[tuple[str, str], Any] | None = None,
) -> Any:
    """Unpickle a ``torch.save`` payload through the allow-list; tensors land on the CPU.

    Args:
        data: file bytes (already with ``PK`` at the start for zip archives).
        source: name used in error messages (the file path).
        extra_globals: further ``(module, name) -> object`` admissions a caller vouches for.

    Raises:
        UnsafePickleError: the pickle names a global outside the allow-list.
        CheckpointError: truncated, corrupt or not a checkpoint.
    """
    _check_container(data, source)
    pickle_module = types.SimpleNamespace(
        Unpickler=_make_unpickler(source, extra_globals or {}),
        load=lambda f, **kw: _make_unpickler(source, extra_globals or {})(f, **kw).load(),
        __name__="app.models.upstream.safe_pickle",
    )
    try:
        return torch.load(
            io.BytesIO(data), map_location="cpu", pickle_module=pickle_module, weights_only=False
        )
    except CheckpointError:
        raise
    except (
        pickle.UnpicklingError,
        EOFError,
        RuntimeError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
    ) as exc:
        template = "{source}: the file is truncated or corrupt ({kind}: {problem})"
        fields = {"source": source, "kind": type(exc).__name__, "problem": str(exc)}
        raise CheckpointError(Message("pickle.err.corrupt", template, **fields)) from None


def read_file(path: str | os.PathLike, max_bytes: int = 4 << 30) -> bytes:
    """Read a checkpoint file's bytes, with errors that name it."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > max_bytes:
            template = "{path}: {size} bytes is larger than any checkpoint this app reads"
            raise CheckpointError(Message("pickle.err.too_large", template, path=str(p), size=size))
        return p.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(Message("pickle.err.no_file", "{path}: no such file", path=str(p))) from None
    except IsADirectoryError:
        template = "{path}: is a folder, expected a checkpoint file"
        raise CheckpointError(Message("pickle.err.folder", template, path=str(p))) from None
    except OSError as exc:
        template = "{path}: cannot read ({problem})"
        raise CheckpointError(
            Message("pickle.err.read", template, path=str(p), problem=str(exc.strerror or exc))
        ) from None


class _UpstreamPickler(pickle._Pickler):  # type: ignore[name-defined]
    """Pure-Python pickler that writes :class:`HParams` as upstream's ``utils.HParams`` global."""

    def save_global(self, obj: Any, name: str | None = None) -> None:
        if obj is HParams:
            module, qualname = HPARAMS_GLOBAL
            self.write(pickle.GLOBAL + f"{module}\n{qualname}\n".encode())
            self.memoize(obj)
            return
        super().save_global(obj, name)

    # pickle._Pickler dispatches classes through this table entry.
    dispatch: ClassVar[dict] = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]
    dispatch[type] = save_global


def save(obj: Any, target: BinaryIO) -> None:
    """``torch.save`` ``obj`` (zip format, pickle protocol 2) with HParams as ``utils.HParams``."""
    pickle_module = types.SimpleNamespace(
        Pickler=_UpstreamPickler, __name__="app.models.upstream.safe_pickle"
    )
    torch.save(obj, target, pickle_module=pickle_module, pickle_protocol=2)
