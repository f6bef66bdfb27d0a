"""so-vits-svc 4.1 feature files beside each training wav, and its cluster model file.

Formats (4.1 ``preprocess_hubert_f0.py``, ``data_utils.py``, ``cluster/train_cluster.py``):

| file | contents | we write |
|---|---|---|
| ``x.wav.soft.pt`` | ``torch.save`` of content features, float32 ``(1, C, T50)`` | the same |
| ``x.wav.f0.npy`` | ``np.save`` of ``np.asanyarray((f0, uv), dtype=object)``: a *pickled* object array ``(2, T)`` | a plain float32 ``(2, T)`` array: 4.1 reads it with ``f0, uv = np.load(p, allow_pickle=True)`` just the same, and it holds no pickle |
| ``x.spec.pt`` (note: ``.wav`` replaced) | ``torch.save`` of the linear spectrogram ``(F, T)`` | the same |
| ``x.wav.vol.npy`` | ``np.save`` of frame RMS ``(T,)`` float32 | the same |
| ``logs/44k/kmeans_10000.pt`` | ``torch.save({speaker name: {"n_features_in_": C, "_n_threads": n, "cluster_centers_": ndarray (K, C)}})`` | the same (numpy centres, as 4.1's sklearn reader expects) |

Reading never runs a general unpickler: ``.f0.npy`` object arrays written by 4.1 go through a
restricted unpickler that admits only numpy's array/scalar rebuild functions, torch files load
with ``weights_only=True`` or through :mod:`app.models.upstream.safe_pickle` with the same numpy
admissions.
"""

from __future__ import annotations

import codecs
import io
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.fileio import atomic_write
from app.messages import Message
from app.models.upstream.safe_pickle import CheckpointError, UnsafePickleError
from app.models.upstream.safe_pickle import load as safe_load

CONTENT_SUFFIX = ".soft.pt"  # appended to the wav name
F0_SUFFIX = ".f0.npy"  # appended to the wav name
VOLUME_SUFFIX = ".vol.npy"  # appended to the wav name
SPEC_SUFFIX = ".spec.pt"  # replaces ".wav"
CLUSTER_FILE = "kmeans_10000.pt"  # 4.1's name in logs/44k (10000 centres per speaker there)

# numpy's pickling entry points (numpy 1.x names them numpy.core, 2.x numpy._core): they only
# rebuild arrays and scalars from a dtype and raw bytes.
_NUMPY_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _NUMPY_GLOBALS[(_module, "_reconstruct")] = np._core.multiarray._reconstruct
    _NUMPY_GLOBALS[(_module, "scalar")] = np._core.multiarray.scalar
# Protocol-2 pickles (torch.save's default) carry array bytes as latin-1 text re-encoded by this.
_NUMPY_GLOBALS[("_codecs", "encode")] = codecs.encode


class FeatureFileError(CheckpointError):
    """A feature file that cannot be used; the message names the file and what to do."""


def feature_paths(wav: Path) -> dict[str, Path]:
    """Where 4.1 keeps each feature of ``wav`` (keys: content, f0, volume, spec)."""
    wav = Path(wav)
    return {
        "content": wav.with_name(wav.name + CONTENT_SUFFIX),
        "f0": wav.with_name(wav.name + F0_SUFFIX),
        "volume": wav.with_name(wav.name + VOLUME_SUFFIX),
        "spec": wav.with_name(wav.name.removesuffix(".wav") + SPEC_SUFFIX),
    }


def _atomic(path: Path, write) -> Path:  # type: ignore[no-untyped-def]
    """Write through :func:`app.fileio.atomic_write` (a killed run leaves no half file)."""
    path = Path(path)
    with atomic_write(path, "wb") as fh:
        write(fh)
    return path


# -- content, spectrogram, volume ------------------------------------------------------------------
def write_content(path: Path, features: torch.Tensor) -> Path:
    """Save content features ``(C, T)`` or ``(1, C, T)`` as 4.1's ``(1, C, T)`` float32 tensor."""
    c = features.detach().float().cpu()
    c = c.unsqueeze(0) if c.dim() == 2 else c
    if c.dim() != 3 or c.size(0) != 1:
        template = "content features must be (C, T) or (1, C, T), got {shape}"
        raise ValueError(Message("svcfile.err.content_write", template, shape=tuple(features.shape)))
    return _atomic(path, lambda fh: torch.save(c.contiguous(), fh))


def _load_tensor(path: Path, what: Message) -> torch.Tensor:
    try:
        value = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        template = "{path}: missing {what}; run the SVC preprocessing again"
        raise FeatureFileError(Message("svcfile.err.missing", template, path=str(path), what=what)) from None
    except Exception as exc:
        template = "{path}: unreadable {what} ({kind}); delete it and run the preprocessing again"
        fields = {"path": str(path), "what": what, "kind": type(exc).__name__}
        raise FeatureFileError(Message("svcfile.err.unreadable_feature", template, **fields)) from None
    if not isinstance(value, torch.Tensor):
        template = "{path}: expected a tensor of {what}, found {kind}"
        fields = {"path": str(path), "what": what, "kind": type(value).__name__}
        raise FeatureFileError(Message("svcfile.err.not_tensor", template, **fields))
    return value


def read_content(path: Path) -> torch.Tensor:
    """Content features as ``(C, T)`` float32."""
    c = _load_tensor(path, Message("svcfile.what.content", "content features"))
    if c.dim() == 3 and c.size(0) == 1:
        c = c[0]
    if c.dim() != 2:
        template = "{path}: content features of shape {shape}; expected (1, C, T)"
        raise FeatureFileError(
            Message("svcfile.err.content_shape", template, path=str(path), shape=tuple(c.shape))
        )
    return c.float()


def write_spec(path: Path, spec: torch.Tensor) -> Path:
    """Save a linear spectrogram ``(F, T)``."""
    s = spec.detach().float().cpu()
    s = s[0] if s.dim() == 3 else s
    return _atomic(path, lambda fh: torch.save(s.contiguous(), fh))


def read_spec(path: Path) -> torch.Tensor:
    """A linear spectrogram ``(F, T)`` float32."""
    s = _load_tensor(path, Message("svcfile.what.spec", "spectrogram"))
    s = s[0] if s.dim() == 3 and s.size(0) == 1 else s
    if s.dim() != 2:
        template = "{path}: spectrogram of shape {shape}; expected (F, T)"
        raise FeatureFileError(
            Message("svcfile.err.spec_shape", template, path=str(path), shape=tuple(s.shape))
        )
    return s.float()


def write_volume(path: Path, volume: np.ndarray | torch.Tensor) -> Path:
    """Save frame volume ``(T,)`` float32."""
    v = np.asarray(volume, dtype=np.float32).reshape(-1)
    return _atomic(path, lambda fh: np.save(fh, v, allow_pickle=False))


def read_volume(path: Path) -> np.ndarray:
    """Frame volume ``(T,)`` float32."""
    try:
        v = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        what = Message("svcfile.what.volume", "volume")
        template = "{path}: missing {what}; run the SVC preprocessing again"
        raise FeatureFileError(Message("svcfile.err.missing", template, path=str(path), what=what)) from None
    except ValueError as exc:
        template = "{path}: unreadable volume file ({problem})"
        raise FeatureFileError(
            Message("svcfile.err.volume", template, path=str(path), problem=str(exc))
        ) from None
    return np.asarray(v, dtype=np.float32).reshape(-1)


# -- f0 --------------------------------------------------------------------------------------------
def write_f0(path: Path, f0: np.ndarray, uv: np.ndarray) -> Path:
    """Save ``(f0, uv)`` as a float32 ``(2, T)`` array (see module docstring)."""
    f0 = np.asarray(f0, dtype=np.float32).reshape(-1)
    uv = np.asarray(uv, dtype=np.float32).reshape(-1)
    if f0.shape != uv.shape:
        template = "f0 and uv differ in length: {f0} vs {uv}"
        raise ValueError(Message("svcfile.err.f0_write", template, f0=f0.shape, uv=uv.shape))
    return _atomic(path, lambda fh: np.save(fh, np.stack([f0, uv]), allow_pickle=False))


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def __init__(self, fh: io.BufferedIOBase, source: str) -> None:
        super().__init__(fh)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _NUMPY_GLOBALS[(module, name)]
        except KeyError:
            template = (
                "{source}: refused to load: its pickle asks for '{module}.{name}', which is not a "
                "numpy array. Nothing from the file was run; delete it and run the preprocessing again."
            )
            fields = {"source": self.source, "module": module, "name": name}
            raise UnsafePickleError(Message("svcfile.err.unsafe", template, **fields)) from None


def read_f0(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(f0 Hz, uv)`` float32 ``(T,)`` each, from our files or 4.1's pickled object arrays."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
            if dtype.hasobject:
                array = _NumpyOnlyUnpickler(fh, str(path)).load()
            else:
                fh.seek(0)
                array = np.load(fh, allow_pickle=False)
    except FileNotFoundError:
        what = Message("svcfile.what.f0", "f0")
        template = "{path}: missing {what}; run the SVC preprocessing again"
        raise FeatureFileError(Message("svcfile.err.missing", template, path=str(path), what=what)) from None
    except UnsafePickleError:
        raise
    except (ValueError, EOFError, pickle.UnpicklingError, TypeError) as exc:
        template = "{path}: not a readable f0 file ({problem}); run the preprocessing again"
        raise FeatureFileError(
            Message("svcfile.err.f0", template, path=str(path), problem=str(exc))
        ) from None
    try:
        array = np.asarray(array)
        if array.dtype.hasobject:  # 4.1: (2, T) objects (floats), or 2 arrays of T
            f0 = np.asarray(array[0], dtype=np.float32).reshape(-1)
            uv = np.asarray(array[1], dtype=np.float32).reshape(-1)
        else:
            f0, uv = (np.asarray(row, dtype=np.float32) for row in array)
    except (TypeError, ValueError, IndexError):
        template = (
            "{path}: expected (f0, uv) rows, found an array of shape {shape}; run the preprocessing again"
        )
        raise FeatureFileError(
            Message("svcfile.err.f0_rows", template, path=str(path), shape=shape)
        ) from None
    if f0.shape != uv.shape or f0.ndim != 1:
        template = "{path}: f0 and uv rows differ ({f0} vs {uv})"
        raise FeatureFileError(
            Message("svcfile.err.f0_differ", template, path=str(path), f0=f0.shape, uv=uv.shape)
        )
    return f0, uv


# -- cluster model ----------------------------------------------------------------------------------
def write_cluster(path: Path, centers: Mapping[str, np.ndarray]) -> Path:
    """Write per-speaker k-means centres ``(K, C)`` in 4.1's ``kmeans_10000.pt`` layout."""
    payload = {}
    for speaker, value in centers.items():
        array = np.ascontiguousarray(np.asarray(value, dtype=np.float32))
        if array.ndim != 2:
            template = "centres of {speaker!r} must be (K, C), got {shape}"
            raise ValueError(
                Message("svcfile.err.centres_write", template, speaker=speaker, shape=array.shape)
            )
        payload[str(speaker)] = {
            "n_features_in_": int(array.shape[1]),
            "_n_threads": 1,
            "cluster_centers_": array,
        }
    return _atomic(path, lambda fh: torch.save(payload, fh))


def read_cluster(path: Path) -> dict[str, np.ndarray]:
    """Per-speaker centres ``(K, C)`` float32 from a ``kmeans_10000.pt`` (ours or 4.1's)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        template = "{path}: no such cluster model; build it from the training features first"
        raise FeatureFileError(Message("svcfile.err.no_cluster", template, path=str(path))) from None
    obj = safe_load(data, str(path), extra_globals=_NUMPY_GLOBALS)
    if not isinstance(obj, Mapping) or not obj:
        template = "{path}: expected {{speaker: {{'cluster_centers_': ...}}}}, found {kind}"
        raise FeatureFileError(
            Message("svcfile.err.cluster", template, path=str(path), kind=type(obj).__name__)
        )
    out = {}
    for speaker, entry in obj.items():
        centers = entry.get("cluster_centers_") if isinstance(entry, Mapping) else None
        if centers is None:
            template = "{path}: speaker {speaker!r} has no 'cluster_centers_'; not a 4.1 cluster model"
            raise FeatureFileError(
                Message("svcfile.err.no_centres", template, path=str(path), speaker=speaker)
            )
        array = np.asarray(
            centers.numpy() if isinstance(centers, torch.Tensor) else centers, dtype=np.float32
        )
        if array.ndim != 2:
            template = "{path}: centres of {speaker!r} have shape {shape}; expected (K, C)"
            fields = {"path": str(path), "speaker": speaker, "shape": array.shape}
            raise FeatureFileError(Message("svcfile.err.centres", template, **fields))
        out[str(speaker)] = array
    return out
