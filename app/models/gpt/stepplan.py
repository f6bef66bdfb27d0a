"""The decoding step's native whole-stack kernel (csrc/step.cpp ``DecodePlan``) and the buffer its
weights live in.

:func:`decode_plan` builds the plan from a GPT's packed layer kernels
(``engine.LayerKernels``); :func:`gather_weights` moves their packed weights
into one buffer on 2 MB pages first.
"""

from __future__ import annotations

from typing import Protocol

import torch

from app.devices import hugepage_buffer
from app.models.gpt.layers import LAYER_NORM_EPS
from app.models.gpt.packed import LinearFn, NativeLinear

# Rows up to which the decoding step runs through the plan (batched segments): it reads each block
# once and keeps it in cache for every row. Measured at 2 threads (ms per step, plan / per-op
# GEMMs): int8 10 rows 25 / 38, 16 rows 39 / 48, 24 rows 58 / 61, 32 rows 75 / 70; fp32 16 rows
# 52 / 60, 24 rows 78 / 76.
PLAN_ROWS = 20


class PlanLayer(Protocol):
    """What a plan takes of one layer (an :class:`app.models.gpt.engine.LayerKernels`)."""

    qkv: LinearFn
    out: LinearFn
    ffn_in: LinearFn
    ffn_out: LinearFn
    norm1: tuple[torch.Tensor, torch.Tensor]
    norm2: tuple[torch.Tensor, torch.Tensor]
    gemv: tuple[LinearFn, LinearFn, LinearFn, LinearFn] | None


def gather_weights(linears: list[LinearFn]) -> None:
    """Move the native linears' packed weights into one buffer on 2 MB pages, in the order the
    decoding step reads them (:func:`app.devices.hugepage_buffer`). The step streams every weight
    once per token (~75 MB int8, ~150 MB fp32); with 4 KB pages each 4 KB is a TLB miss: measured
    at 1 thread, 12.5 -> 10.3 ms per token (int8) and 20.4 -> 17.5 ms (fp32). Each kernel keeps its
    tensor object, which is repointed (``set_``) at its place in the buffer.
    """
    packs = [f.spec[0] for f in linears if isinstance(f, NativeLinear)]
    if not packs:
        return
    sizes = [t.numel() * t.element_size() for t in packs]
    buffer = hugepage_buffer(sum(sizes))
    at = 0
    for tensor, size in zip(packs, sizes, strict=True):
        place = buffer[at : at + size].view(tensor.dtype).view(tensor.shape)
        place.copy_(tensor)
        tensor.set_(place)  # type: ignore[call-overload]
        at += size


class DecodePlanLike(Protocol):
    """csrc/step.cpp's ``DecodePlan``: ``run(x (B, D), k_layers, v_layers, n, valid)`` -> (B, D)."""

    def run(
        self,
        x: torch.Tensor,
        k_layers: list[torch.Tensor],
        v_layers: list[torch.Tensor],
        n: int,
        valid: torch.Tensor | None,
    ) -> torch.Tensor: ...


def decode_plan(layers: list[PlanLayer], n_head: int) -> DecodePlanLike | None:
    """The native whole-stack step over ``layers`` when every layer's linears are native kernels
    (CPU, ``fp32`` on float16-exact weights or ``int8``; the caller checks the attention is native
    too), else None."""
    if any(lk.gemv is None for lk in layers):
        return None
    from app.models.gpt.native import decode_plan_class  # here: `python -m` runs that module

    plan = decode_plan_class()
    if plan is None:
        return None
    specs = []
    for lk in layers:
        norms = [t.float().contiguous() for t in (*lk.norm1, *lk.norm2)]
        specs.append((*(f.spec for f in (lk.qkv, lk.out, lk.ffn_in, lk.ffn_out)), *norms))  # type: ignore[attr-defined]
    return plan(specs, n_head, LAYER_NORM_EPS)
