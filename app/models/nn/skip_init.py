"""Building a module whose weights are about to be loaded, without initialising them.

Models loaded from a file are first built and then filled with the file's tensors; a random
initialisation in between is wasted time (~0.35 s for a v2 SoVITS) and touches every weight's
memory. :func:`without_init` skips ``torch.nn.init``'s functions and the in-place random fills,
and turns random draws (``torch.randn``/``rand``) into ``torch.empty``: parameters hold
uninitialised memory, so they must all be overwritten (``load_state_dict(strict=True)``).

Why not ``torch.device("meta")``: on meta tensors ``normal_``, ``randn``, scalar arithmetic and
norms run through torch's Python reference implementations, which import ``torch._dynamo`` and
sympy — ~70 MB of Python objects that stay in the process for good (measured on a v2 SoVITS load).

The skip is a torch-function mode, i.e. thread-local: other threads building real modules at the
same time are untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

import torch
from torch.overrides import TorchFunctionMode

T = TypeVar("T")

# In-place random fills (what nn.init ends in).
_RANDOM_FILLS = frozenset(
    {
        torch.Tensor.normal_,
        torch.Tensor.uniform_,
        torch.Tensor.bernoulli_,
        torch.Tensor.exponential_,
        torch.Tensor.geometric_,
        torch.Tensor.log_normal_,
        torch.Tensor.cauchy_,
        torch.Tensor.random_,
    }
)
# Random factories (e.g. relative-position tables drawn with torch.randn) become torch.empty.
_RANDOM_FACTORIES = frozenset({torch.randn, torch.rand})


class _SkipInit(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        if func in _RANDOM_FILLS or getattr(func, "__module__", None) == "torch.nn.init":
            target = args[0] if args else kwargs.get("tensor")  # nn.init.* pass it as tensor=
            if isinstance(target, torch.Tensor):
                return target
        if func in _RANDOM_FACTORIES:
            return torch.empty(*args, **{k: v for k, v in kwargs.items() if k != "generator"})
        return func(*args, **kwargs)


def without_init(factory: Callable[[], T]) -> T:
    """``factory()`` with random initialisation skipped (see the module docstring)."""
    with _SkipInit():
        return factory()


def state_shapes(factory: Callable[[], torch.nn.Module]) -> dict[str, torch.Size]:
    """Key -> shape of the state dict of the module ``factory`` builds (built without init)."""
    return {key: value.shape for key, value in without_init(factory).state_dict().items()}


def shape_mismatch(expected: Mapping[str, torch.Size], state: Mapping[str, torch.Tensor]) -> str:
    """What keeps ``state`` from loading strictly into a module with ``expected`` shapes:
    "missing N keys (e.g. ...); unexpected ...; wrong shapes: ..." or "" when it fits."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {tuple(state[k].shape)} != {tuple(expected[k])}"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k])
    ]
    parts = []
    if missing:
        parts.append(f"missing {len(missing)} keys (e.g. {missing[:3]})")
    if unexpected:
        parts.append(f"unexpected {len(unexpected)} keys (e.g. {unexpected[:3]})")
    if wrong:
        parts.append(f"wrong shapes: {wrong[:3]}")
    return "; ".join(parts)
