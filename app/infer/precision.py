"""What each precision mode of a pipeline runs in, per device.

- ``fp32`` (default): every model in float32. The GPT's linears use the packed oneDNN fp32
  kernels (exact float32, only the summation order differs from ``F.linear``); this is the path
  the upstream parity tests check.
- ``fast``: on CPU the GPT's linears run int8 (dynamic quantisation, a quarter of the weight
  traffic of each decoding step) and the SoVITS HiFi-GAN decoder, which holds almost all of the
  decode's arithmetic, runs bfloat16 when the CPU has native bf16 dot products (AVX512-BF16 /
  AMX); without them bf16 is emulated and slower, so the decoder stays fp32. On CUDA the GPT and
  the decoder run bf16. HuBERT, the prior encoder and the flow stay fp32 everywhere (cheap, and
  the prompt tokens then equal the fp32 path's).

The deviation of ``fast`` from ``fp32`` is measured by ``bench/tts_cpu.py`` and documented in the
README ("Text to speech").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from app.models.gpt.model import GPT
from app.models.gpt.packed import resolve_precision

# The GPT weights its packed kernels copy (per layer, plus bert_proj and ar_predict_layer).
_PACKED_LAYER_WEIGHTS = (
    "self_attn.in_proj_weight",
    "self_attn.out_proj.weight",
    "linear1.weight",
    "linear2.weight",
)


# GPT kernels of "fast" on CPU (app.models.gpt.packed): the fastest int8 kernel measured here.
FAST_CPU_GPT = "int8_dynamic"


@dataclass(frozen=True)
class PrecisionPlan:
    """The dtypes one precision mode uses on one device."""

    # GPT.set_precision value: "fp32", "int8" or "bf16".
    gpt: str
    # Compute dtype of the SoVITS HiFi-GAN decoder.
    decoder: torch.dtype


def native_bf16(device: torch.device) -> bool:
    """True when bf16 matrix products run natively (CUDA, or a CPU with AVX512-BF16 / AMX)."""
    if device.type == "cuda":
        return True
    if device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return False
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def plan_for(precision: str, device: torch.device) -> PrecisionPlan:
    """The :class:`PrecisionPlan` of ``precision`` ("fp32" or "fast") on ``device``."""
    if precision == "fp32":
        return PrecisionPlan(gpt="fp32", decoder=torch.float32)
    if precision != "fast":
        raise ValueError(f"unknown precision {precision!r}: use fp32 or fast")
    if device.type == "cuda":
        return PrecisionPlan(gpt="bf16", decoder=torch.bfloat16)
    return PrecisionPlan(gpt=FAST_CPU_GPT, decoder=torch.bfloat16 if native_bf16(device) else torch.float32)


def release_packed_weights(gpt: GPT) -> int:
    """Pack the GPT's decoding kernels now and free the float32 weights they copied; returns bytes freed.

    The packed kernels (oneDNN fp32, bf16, int8) hold their own copy of every linear weight, so a
    model that only decodes carries each weight twice (~300 MB for the full-size GPT). The copies
    freed here are the module's ``Parameter`` data, replaced by empty tensors without bumping the
    parameters' versions, so the kernels stay valid. Afterwards the model can only ``prefill`` /
    ``step``: training, saving or ``set_precision`` would need the weights again (reload the file).
    With ``reference`` kernels (GPU) nothing is copied and nothing is freed.
    """
    device = gpt.ar_predict_layer.weight.device
    if resolve_precision(gpt.precision, device) == "reference":
        return 0
    with torch.inference_mode():  # a one-token prefill packs the kernels
        gpt.prefill(gpt.new_cache(1, 2), torch.zeros(1, 1, dtype=torch.long, device=device),
                    torch.zeros(1, gpt.config.bert_dim, 1, device=device))  # fmt: skip
    weights = [gpt.bert_proj.weight, gpt.ar_predict_layer.weight]
    for layer in gpt.h.layers:
        weights += [layer.get_parameter(name) for name in _PACKED_LAYER_WEIGHTS]
    freed = 0
    for w in weights:
        freed += w.numel() * w.element_size()
        w.data = torch.empty(0, dtype=w.dtype, device=w.device)
    return freed


class CastDecoder(nn.Module):
    """Runs a decoder ``f(x, g)`` in another dtype; inputs are cast in, the output back to float32."""

    def __init__(self, decoder: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.inner = decoder.to(dtype)
        self.dtype = dtype

    def forward(self, x: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, C, T), g (B, gin, 1) -> (B, 1, T * hop) float32"""
        out = self.inner(x.to(self.dtype), g=None if g is None else g.to(self.dtype))
        return out.float()
