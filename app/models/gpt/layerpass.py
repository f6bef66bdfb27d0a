"""One transformer layer of the GPT over many columns (the prefill's pass, and the float32 one of
several new columns), the prefill's attention mask, and the mask as key ranges for the native
attention. Split out of :mod:`app.models.gpt.engine`, which schedules the passes and the decoding
loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from app.models.gpt.cache import KVCache
from app.models.gpt.layers import LAYER_NORM_EPS
from app.models.gpt.packed import LinearFn

if TYPE_CHECKING:
    from app.models.gpt.native import PrefillAttentionFn


@dataclass
class LayerKernels:
    """One layer's packed linears and the LayerNorm parameters the decoding loop needs."""

    qkv: LinearFn
    out: LinearFn
    ffn_in: LinearFn  # linear1 with the ReLU fused
    ffn_out: LinearFn
    norm1: tuple[torch.Tensor, torch.Tensor]
    norm2: tuple[torch.Tensor, torch.Tensor]
    # The four native kernels' direct GEMVs (qkv, out, ffn_in, ffn_out) for the step's rows, or None.
    gemv: tuple[LinearFn, LinearFn, LinearFn, LinearFn] | None = None


def run_layer(
    x: torch.Tensor,
    lk: LayerKernels,
    cache: KVCache,
    i: int,
    mask: torch.Tensor | None,
    end: int,
    n_head: int,
    attend: PrefillAttentionFn | None = None,
    ranges: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """One layer on the newest ``T`` columns ``x (B, T, D)``, keys/values written at ``[end-T, end)``.
    ``attend`` and ``ranges`` (:func:`key_ranges` of ``mask``): the native bf16 attention of a
    prefill that fills a bf16 cache."""
    B, T, D = x.shape
    if end == T and cache.k_layers[i].dtype == torch.bfloat16 and low_linears(lk) is not None:
        native = None if attend is None or ranges is None else (attend, ranges)
        return layer_low(x, lk, cache, i, mask, n_head, native)
    q, k, v = lk.qkv(x).view(B, T, 3, n_head, D // n_head).transpose(1, 3).unbind(2)  # 3 x (B, H, T, hd)
    k_layer, v_layer = cache.k_layers[i], cache.v_layers[i]  # (B, H, S, hd)
    k_layer.narrow(2, end - T, T).copy_(k)
    v_layer.narrow(2, end - T, T).copy_(v)
    if k_layer.dtype == q.dtype:
        att = F.scaled_dot_product_attention(q, k_layer.narrow(2, 0, end), v_layer.narrow(2, 0, end), mask)
    elif end == T:
        # A bf16 cache (an approximate precision) filled by this pass: attend in bf16 what the
        # decoding step will read (CPU flash attention: ~3x faster than float32 on these shapes).
        low = k_layer.dtype
        att = F.scaled_dot_product_attention(q.to(low), k.to(low), v.to(low), mask).float()
    else:
        raise RuntimeError("a low-precision KV cache is only read by the decoding step")
    x = F.layer_norm(x + lk.out(att.transpose(1, 2).reshape(B, T, D)), (D,), *lk.norm1, LAYER_NORM_EPS)
    return F.layer_norm(x + lk.ffn_out(lk.ffn_in(x)), (D,), *lk.norm2, LAYER_NORM_EPS)


def key_ranges(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Each query's allowed keys of a ``(B, 1, T, T)`` bool mask as ``[lo, hi)`` ((B, T) int32 each),
    or None where some query's keys are not one non-empty range."""
    rows = mask[:, 0]
    T = rows.shape[-1]
    lo = rows.int().argmax(dim=-1)
    hi = T - rows.flip(-1).int().argmax(dim=-1)
    if not bool((rows.sum(dim=-1) == hi - lo).all()) or not bool(rows.any(dim=-1).all()):
        return None
    return lo.int().contiguous(), hi.int().contiguous()


def low_linears(lk: LayerKernels) -> tuple[LinearFn, LinearFn, LinearFn, LinearFn] | None:
    """The layer's four bf16-in, bf16-out products (packed.NativeLinear.low), or None."""
    lows = tuple(getattr(f, "low", None) for f in (lk.qkv, lk.out, lk.ffn_in, lk.ffn_out))
    return None if any(f is None for f in lows) else lows  # type: ignore[return-value]


def layer_low(
    x: torch.Tensor,
    lk: LayerKernels,
    cache: KVCache,
    i: int,
    mask: torch.Tensor | None,
    n_head: int,
    native: tuple[PrefillAttentionFn, tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> torch.Tensor:
    """:func:`run_layer` filling a bf16 cache from scratch (an approximate precision): between the
    residual stream's float32 LayerNorms every product and the attention take and give bf16 (the
    cache's and the GEMMs' own type), so no float32 copy of q/k/v, of the attention's output or
    of the FFN's hidden layer is made. With ``native`` (the kernel and each query's key range) the
    attention is csrc/attention.cpp's (float32 products and softmax over each query's own keys:
    ~2.5x torch's flash kernel here, which computes every masked score)."""
    qkv, out, ffn_in, ffn_out = low_linears(lk)  # type: ignore[misc]
    B, T, D = x.shape
    rows = qkv(x.reshape(B * T, D).bfloat16())
    q, k, v = rows.view(B, T, 3, n_head, D // n_head).transpose(1, 3).unbind(2)  # 3 x (B, H, T, hd)
    cache.k_layers[i].narrow(2, 0, T).copy_(k)
    cache.v_layers[i].narrow(2, 0, T).copy_(v)
    if native is not None:
        attend, (lo, hi) = native
        att = attend(q, k, v, lo, hi).view(B * T, D)  # (B, T, H * hd) bf16
    else:
        att = F.scaled_dot_product_attention(q, k, v, mask).transpose(1, 2).reshape(B * T, D)  # bf16
    att = out(att).view(B, T, D)
    x = F.layer_norm(x + att, (D,), *lk.norm1, LAYER_NORM_EPS)
    hidden = ffn_out(ffn_in(x.reshape(B * T, D).bfloat16())).view(B, T, D)
    return F.layer_norm(x + hidden, (D,), *lk.norm2, LAYER_NORM_EPS)


def prefill_mask(offsets: list[int], x_lens: list[int], width: int, device: torch.device) -> torch.Tensor:
    """``(B, 1, P, P)`` bool mask of right-aligned rows; padding queries see only themselves."""
    off = torch.tensor(offsets, device=device)[:, None]
    text_end = off + torch.tensor(x_lens, device=device)[:, None]
    col = torch.arange(width, device=device)[None]
    is_pad = col < off  # (B, P)
    is_text = ~is_pad & (col < text_end)
    q, k = col[:, :, None], col[:, None, :]
    key_text = is_text[:, None, :]
    audio_row = (~is_pad & ~is_text)[:, :, None]
    allowed = (is_text[:, :, None] & key_text) | (audio_row & ~is_pad[:, None, :] & (k <= q))
    allowed |= is_pad[:, :, None] & (k == q)
    return allowed[:, None]
