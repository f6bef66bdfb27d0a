"""What each precision mode of a pipeline runs in, per device.

- ``fp32`` (default): every model in float32. The GPT's linears hold a GPT file's float16 weights
  for the native float16 kernel (float32 maths) or use oneDNN's packed fp32 kernels (exact float32,
  only the summation order differs from ``F.linear``); this is the path the upstream parity tests
  check.
- ``fast``: on CPU the GPT's linears run int8 weights (a quarter of the weight traffic of each
  decoding step): the native int8 kernel with float32 activations, or fbgemm's dynamic
  quantisation where the native kernels are not built; HuBERT and the SoVITS HiFi-GAN decoder (almost all
  of the decode's arithmetic) run bfloat16 when the CPU has native bf16 dot products
  (AVX512-BF16 / AMX); without them bf16 is emulated and slower, so those stay fp32. Where bf16 is
  native the HiFi-GAN decoders' residual blocks (SoVITS v1-v2ProPlus, so-vits-svc's NSF) run int8
  convolutions on uint8 codes with one scale per block of samples instead (oneDNN's VNNI/AMX
  kernels, twice bf16's rate: :mod:`app.models.nn.qconv`), once their self-check passes. On CUDA the
  GPT, HuBERT and the decoder run bf16. The prior encoder and the flow (v1-v2ProPlus) run bf16 on
  such a CPU too (~10 % of a decode there); on CUDA they stay fp32 (not measured there).

The deviation of ``fast`` from ``fp32`` is measured by ``bench/tts_cpu.py`` and documented in the
README ("Text to speech").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from app.models.gpt.model import GPT
from app.models.nn.qconv import int8_convolutions


def fast_cpu_gpt() -> str:
    """The GPT precision of "fast" on CPU (app.models.gpt.packed): the native int8 kernel (faster
    than fbgemm's here, and its activations are not quantised), else fbgemm's dynamic int8."""
    from app.models.gpt import native

    return "int8" if native.linear_int8_kernel() is not None else "int8_dynamic"


@dataclass(frozen=True)
class PrecisionPlan:
    """The dtypes one precision mode uses on one device."""

    # GPT.set_precision value: "fp32", "int8" or "bf16".
    gpt: str
    # Compute dtype of the SoVITS HiFi-GAN decoder.
    decoder: torch.dtype
    # Weights and compute dtype of HuBERT (the reference's prompt tokens).
    hubert: torch.dtype = torch.float32
    # Weights and compute dtype of v2Pro*'s speaker-verification model (ERes2NetV2; its fbank is
    # float32 always). bf16 on a 2-core Zen 4: 1.2 -> 0.52 s per new 5 s reference, the embedding's
    # cosine similarity to float32's 0.999995.
    speaker: torch.dtype = torch.float32
    # Weights and compute dtype of the VITS prior encoder (enc_p) and flow of v1-v2ProPlus. bf16 on
    # a 2-core Zen 4, 1 thread, 10 s of audio: 0.27 -> 0.15 s, the latent z 42.7 dB from float32's.
    prior: torch.dtype = torch.float32
    # The HiFi-GAN decoders' residual-block convolutions as int8 weights x block-scaled uint8
    # activations (oneDNN's VNNI/AMX kernels, app.models.nn.qconv) in the bf16 channels-last
    # decoder. A 2-core Zen 4, 1 thread, the v2 workload: the SoVITS stage 2.30 -> 1.82 s; on a
    # trained decoder (bench/decoder_quality.py) DNSMOS within 0.05 of float32's.
    decoder_int8: bool = False

    @property
    def decoder_label(self) -> str:
        """What the VITS decoder computes in, for reports: "bfloat16", "bfloat16 + int8 residual blocks"."""
        name = str(self.decoder).removeprefix("torch.")
        return f"{name} + int8 residual blocks" if self.decoder_int8 else name


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
        return PrecisionPlan(
            gpt="bf16", decoder=torch.bfloat16, hubert=torch.bfloat16, speaker=torch.bfloat16
        )
    low = torch.bfloat16 if native_bf16(device) else torch.float32
    int8 = low == torch.bfloat16 and int8_convolutions()
    return PrecisionPlan(
        gpt=fast_cpu_gpt(), decoder=low, hubert=low, speaker=low, prior=low, decoder_int8=int8
    )


def pack_gpt(gpt: GPT, precision: str) -> int:
    """Decode with ``precision`` kernels, packed now, their float32 weights freed; returns bytes freed.

    A model already packed at ``precision`` is left as it is (its weights are gone: repacking
    would need the file again).
    """
    if gpt.precision == precision and gpt.engine.kernels is not None:
        return 0
    gpt.set_precision(precision)
    return release_packed_weights(gpt)


def release_packed_weights(gpt: GPT) -> int:
    """Pack the GPT's decoding kernels now and free the float32 weights they copied; returns bytes freed.

    Only for a model that will decode and nothing else: see :meth:`DecodingEngine.release_weights
    <app.models.gpt.engine.DecodingEngine.release_weights>`.
    """
    return gpt.engine.release_weights(gpt)
