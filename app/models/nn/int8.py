"""Int8 weights times int8 rows: the fast mode's compute-bound products on CPU.

On CPUs without AMX (AMD Zen 4, Intel before Sapphire Rapids) an int8 GEMM (VNNI) runs at about
twice the rate of a bfloat16 one (AVX512-BF16): measured on a 2-core Zen 4, oneDNN's bf16 GEMMs
reach ~390 GFLOP/s on HuBERT's and the GPT prefill's shapes, its int8 ones ~800 GOP/s. Where a
product is compute-bound (many rows: a reference clip's HuBERT pass, the GPT's prefill) the fast
mode quantises the weight once per output row (symmetric, max|w| -> 127) and each input row per
call with its own scale, sums exactly in int32 and applies both scales and the bias in float32
(``linear_w8a8`` of the native kernels, ``app/models/gpt/csrc/linear.cpp``). A product's relative
error is then ~0.8 % (bf16's ~0.3 %), the weights take half of bf16's memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from app.models.gpt import native  # the project's native CPU kernels
from app.models.gpt.native import LinearW8A8Fn as W8A8Fn


def int8_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 codes of a weight of any float dtype and shape, one float32 scale per output
    (dim 0: its largest |w| -> 127; rounded to nearest, codes in [-127, 127], an all-zero output
    gets codes 0): ``(codes int8 of weight's shape, scale (out,))``."""
    w = weight.detach().float()
    scale = (w.flatten(1).abs().amax(dim=1) / 127).clamp_min(torch.finfo(torch.float32).tiny)
    codes = torch.round(w / scale.view(-1, *[1] * (w.dim() - 1))).clamp_(-127, 127).to(torch.int8)
    return codes, scale


def w8a8_kernel() -> W8A8Fn | None:
    """The native int8 x int8 product, or None (kernels switched off or not buildable here)."""
    return native.linear_w8a8_kernel()


@dataclass(frozen=True)
class Int8Product:
    """``rows @ W^T + bias`` with ``W`` held as int8 codes and one float32 scale per output."""

    weight_t: torch.Tensor  # (K, N) int8: W^T, the GEMM's layout
    scale: torch.Tensor  # (N,) float32
    bias: torch.Tensor | None  # (N,) float32
    kernel: W8A8Fn

    @classmethod
    def of(cls, weight: torch.Tensor, bias: torch.Tensor | None, kernel: W8A8Fn) -> Int8Product:
        """From a ``(N, K)`` weight of any float dtype (rounded to nearest, codes in [-127, 127];
        an all-zero row gets codes 0)."""
        codes, scale = int8_rows(weight)
        b = None if bias is None else bias.detach().float().contiguous()
        return cls(codes.t().contiguous(), scale.contiguous(), b, kernel)

    @property
    def out_features(self) -> int:
        return self.weight_t.shape[1]

    def __call__(self, rows: torch.Tensor) -> torch.Tensor:
        """``rows (M, K)`` bf16 or float32 -> ``(M, N)`` bf16."""
        return self.kernel(rows.contiguous(), self.weight_t, self.scale, self.bias, False)
