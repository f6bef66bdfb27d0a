"""Normalisation layers: LayerNorm over channels and weight-normalised convolutions.

Upstream files store weight-normalised convolutions the way torch's legacy
``torch.nn.utils.weight_norm`` names them: a ``weight_g`` magnitude (one value per output
channel, shape ``(out, 1, ...)``) and a ``weight_v`` direction (the full kernel), registered after
``bias``. The classes here keep exactly those parameters, so state dicts load and save with
upstream's key names and order, without the deprecated hook machinery.

For inference the effective kernel ``g * v / ||v||`` can be computed once
(:func:`fold_weight_norm`) instead of on every call; loading new weights or switching to training
mode drops the folded kernel, so it can never go stale. ``in_place=True`` saves the second copy
of every kernel (~100 MB for a v2 SoVITS): the pair is rewritten as ``v = w``, ``g = ||w||`` (``w``
the effective kernel) and the folded kernel *is* ``v``. The layer computes the same function and
can still be trained or saved, but a saved file then holds the rescaled ``v`` rather than the
bytes it was loaded from, so file round trips (SVC export) fold without it.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of (B, C, T) tensors; parameters ``gamma``/``beta``.

    Args:
        channels: C.
        eps: variance epsilon (upstream uses 1e-5).
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, ...) -> (B, C, ...)"""
        x = x.transpose(1, -1)
        x = F.layer_norm(x, (self.channels,), self.gamma, self.beta, self.eps)
        return x.transpose(1, -1)


def _norm_except_dim0(v: torch.Tensor) -> torch.Tensor:
    """L2 norm over every dim but 0, kept as (out, 1, 1, ...) for broadcasting."""
    return torch.linalg.vector_norm(v, dim=tuple(range(1, v.dim())), keepdim=True)


class _WeightNorm:
    """Mixin turning a conv's ``weight`` into ``weight_g`` and ``weight_v`` (dim 0)."""

    weight_g: nn.Parameter
    weight_v: nn.Parameter
    folded_weight: torch.Tensor | None

    def _split_weight(self) -> None:
        weight = self.weight.detach()  # type: ignore[has-type]
        del self.weight  # type: ignore[has-type]
        # g = ||w|| and v = w reproduce the initial kernel exactly.
        self.weight_g = nn.Parameter(_norm_except_dim0(weight))
        self.weight_v = nn.Parameter(weight)
        # Not persistent: the file holds g and v only; a buffer follows .to(device/dtype).
        self.register_buffer("folded_weight", None, persistent=False)  # type: ignore[attr-defined]

    def normed_weight(self) -> torch.Tensor:
        """The effective kernel ``g * v / ||v||``."""
        if self.folded_weight is not None:
            return self.folded_weight
        return self.weight_v * (self.weight_g / _norm_except_dim0(self.weight_v))

    def fold(self, in_place: bool = False) -> None:
        """Compute the kernel once for inference (dropped again by train() or a state-dict load).

        ``in_place``: rewrite ``v`` as the kernel (and ``g`` as its norm) so no copy is added.
        """
        with torch.no_grad():
            self.folded_weight = None
            kernel = self.normed_weight().detach()
            if in_place:
                self.weight_v.data = kernel
                self.weight_g.data = _norm_except_dim0(kernel).to(self.weight_g.dtype)
            self.folded_weight = kernel

    def unfold(self) -> None:
        """Go back to computing the kernel from g and v on every call."""
        self.folded_weight = None

    def train(self, mode: bool = True):  # type: ignore[no-untyped-def]
        if mode:
            self.unfold()
        return super().train(mode)  # type: ignore[misc]

    def _load_from_state_dict(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.unfold()
        super()._load_from_state_dict(*args, **kwargs)  # type: ignore[misc]


class WNConv1d(_WeightNorm, nn.Conv1d):
    """``nn.Conv1d`` with weight normalisation; same arguments as ``nn.Conv1d``.

    Input (B, C_in, T) -> output (B, C_out, T').
    """

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self._split_weight()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.normed_weight(), self.bias)


class WNConv2d(_WeightNorm, nn.Conv2d):
    """``nn.Conv2d`` with weight normalisation; (B, C_in, H, W) -> (B, C_out, H', W')."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self._split_weight()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.normed_weight(), self.bias)


class WNConvTranspose1d(_WeightNorm, nn.ConvTranspose1d):
    """``nn.ConvTranspose1d`` with weight normalisation over dim 0 (the input channels, as upstream).

    Input (B, C_in, T) -> output (B, C_out, T * stride) for the usual padding.
    """

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self._split_weight()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose1d(
            x,
            self.normed_weight(),
            self.bias,
            self.stride,
            self.padding,  # type: ignore[arg-type]
            self.output_padding,
            self.groups,
            self.dilation,
        )


def fold_weight_norm(module: nn.Module, in_place: bool = False) -> int:
    """Fold every weight-normalised conv inside ``module`` for inference; returns how many.

    ``in_place``: no second copy of the kernels (see the module docstring for the trade).
    """
    count = 0
    for sub in module.modules():
        if isinstance(sub, _WeightNorm):
            sub.fold(in_place)
            count += 1
    return count


def unfold_weight_norm(module: nn.Module) -> None:
    """Undo :func:`fold_weight_norm` everywhere inside ``module``."""
    for sub in module.modules():
        if isinstance(sub, _WeightNorm):
            sub.unfold()


def fold_weight_norm_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict with every ``<name>.weight_g``/``<name>.weight_v`` pair replaced by ``<name>.weight``.

    The file-level twin of :func:`fold_weight_norm`, for networks run without weight norm (what
    upstream's ``remove_weight_norm`` leaves): the kernel is ``g * v / ||v||`` (norm over every dim
    but 0), computed by the same torch op as ``remove_weight_norm``, so the kernels equal upstream's
    bit for bit. Order is kept (the kernel takes the place of ``weight_g``); other entries are
    passed through; a ``weight_g`` without its ``weight_v`` (or the reverse) raises ``KeyError``.
    """
    folded: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.endswith(".weight_v"):
            if key.removesuffix("_v") + "_g" not in state:
                raise KeyError(f"{key} has no matching weight_g")
            continue
        if key.endswith(".weight_g"):
            base = key.removesuffix(".weight_g")
            v = state.get(f"{base}.weight_v")
            if v is None:
                raise KeyError(f"{key} has no matching weight_v")
            folded[f"{base}.weight"] = torch._weight_norm(v, value, 0)
            continue
        folded[key] = value
    return folded
