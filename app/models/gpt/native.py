"""Native CPU kernels of the decoding step: single-query attention over the KV cache, and the
float16-weight GEMV of the linears.

At batch 1 the generic ``scaled_dot_product_attention`` reaches about half the memory bandwidth
on the GPT's shapes (16 heads of 32, a few hundred cached columns), and attention is then ~40 % of
a decoding step. ``csrc/attention.cpp`` reads each head's keys and values once, in order, on
ATen's own threads, and also reads a bfloat16 cache (half the bytes). On CPU ``fp32`` uses it
on its float32 cache (float32 maths in another summation order: logits within 1e-6 of upstream,
as with SDPA), the approximate precisions (``int8_dynamic``, ``int8``, ``bf16``) on a bfloat16
cache; ``reference`` keeps SDPA, the yardstick of the tests.

``csrc/linear.cpp`` holds the step's linears, weights packed in blocks of 64 outputs and widened
to float32 in registers: float16 weights (a GPT file's weights are float16; upstream computes
with their exact float32 upcast), so every product and sum is float32 and the numbers are the
float32 weight's up to summation order, for half the bytes read per token; and int8 weights with
one scale per output (the fast mode), float32 activations, a quarter of the bytes
(:mod:`app.models.gpt.packed`). ``linear_w8a8`` is the compute-bound counterpart for many rows
(the prefill, HuBERT's linears: :mod:`app.models.nn.int8`): rows quantised to int8 per row, one
int8 GEMM (oneDNN's VNNI kernels through ``at::_int_mm``), scales and bias in float32.

``csrc/quantize.cpp`` (``quantize_blocks``, ``finish_blocks``) turns an activation into uint8 codes
with one scale per block of samples, and finishes the int8 convolution's output, for the fast
mode's int8 HiFi-GAN convolutions (:mod:`app.models.nn.qconv`).

``csrc/step.cpp`` (``DecodePlan``) runs the whole decoding step of the layer stack in one call with
those inner loops (``csrc/kernels.h``): one OpenMP region per token, threads taking work items
phase by phase (:mod:`app.models.gpt.stepplan` builds it).

The kernels are compiled on first use with ``torch.utils.cpp_extension`` (a C++ compiler and
``ninja``; ~30 s once, then cached under ``$TORCH_EXTENSIONS_DIR`` or
``~/.cache/torch_extensions``). Where that is impossible (no compiler, e.g. a stock Windows
machine) :func:`attention_kernel` returns None after one logged warning and decoding uses SDPA
with a float32 cache: the same results to float rounding, only slower.
``STUDIO_NATIVE_KERNELS=0`` turns the kernel off. ``python -m app.models.gpt.native`` builds it
ahead of time (``make`` does).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from app.settings import NATIVE_KERNELS_VAR, native_kernels_enabled, prepend_to_path

log = logging.getLogger(__name__)

SOURCES = tuple(sorted(Path(__file__).with_name("csrc").glob("*.cpp")))
# Sources and the header they share: the build's name hashes all of them.
_HASHED = tuple(sorted(Path(__file__).with_name("csrc").glob("*.[ch]*")))
# A build lock older than this was left by a build that was killed (a build takes ~30-120 s);
# torch would wait on it forever.
STALE_LOCK_SECONDS = 15 * 60
# Head sizes the kernel is instantiated for (the released models use 32).
HEAD_DIMS = (8, 16, 32, 64, 128)

# (qkv (B, 3D), k_cache (B, H, S, hd), v_cache, column n, valid (B, > n) bool or None) -> (B, D):
# writes the step's keys/values at column n, then attends columns [0, n].
AttentionFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int, torch.Tensor | None], torch.Tensor]


def _arch_flags() -> tuple[str, list[str]]:
    """A build tag and compiler flags for this CPU's vector level (a shared cache dir stays valid).

    The level comes from ATen's own CPU detection, so the module uses the instructions torch
    itself uses here; ``-march=native`` is avoided because a home directory may be shared by
    machines of different generations.
    """
    capability = torch.backends.cpu.get_cpu_capability()
    if capability.startswith("AVX512"):
        return "avx512", ["-march=x86-64-v4", "-mtune=generic"]
    if capability == "AVX2":
        return "avx2", ["-march=x86-64-v3", "-mtune=generic"]
    return "generic", []


def _module_name(tag: str) -> str:
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in _HASHED)).hexdigest()[:10]
    return f"sovits_gpt_attention_{tag}_{digest}"


def clear_stale_lock(name: str, now: float | None = None) -> bool:
    """Remove the build lock of extension ``name`` when a killed build left it; True if removed.

    torch's builder waits while ``<build dir>/lock`` exists; a process stopped mid-build (an outer
    ``timeout``, Ctrl-C) leaves it behind, and every later process would hang on first decode.
    """
    from torch.utils import cpp_extension

    lock = Path(cpp_extension._get_build_directory(name, False)) / "lock"
    try:
        age = (time.time() if now is None else now) - lock.stat().st_mtime
    except FileNotFoundError:
        return False
    if _builder_gone(lock):
        log.warning("removing %s, left by a build whose process has ended", lock)
    elif age < STALE_LOCK_SECONDS:
        return False  # another process may be building right now
    else:
        log.warning("removing %s, left %.0f min ago by a build that did not finish", lock, age / 60)
    lock.unlink(missing_ok=True)
    return True


def _owner_file(lock: Path) -> Path:
    """Beside torch's build lock: ``host pid`` of the process that started the build."""
    return lock.with_name("lock.owner")


def _builder_gone(lock: Path) -> bool:
    """True when this host's process that started the build (its owner file) no longer exists."""
    try:
        host, pid = _owner_file(lock).read_text(encoding="utf-8").split()
    except (FileNotFoundError, ValueError):
        return False  # no owner recorded: only the lock's age can tell
    if host != socket.gethostname():
        return False  # a build on another machine sharing this cache: its processes are not visible
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False


def _claim_build(name: str) -> None:
    """Record this process as the builder when no build is under way (see :func:`clear_stale_lock`)."""
    from torch.utils import cpp_extension

    folder = Path(cpp_extension._get_build_directory(name, False))
    if not (folder / "lock").exists():
        folder.mkdir(parents=True, exist_ok=True)
        _owner_file(folder / "lock").write_text(f"{socket.gethostname()} {os.getpid()}", encoding="utf-8")


def build():
    """Compile (or load the cached build of) the extension module; raises when that fails."""
    from torch.utils import cpp_extension

    tag, flags = _arch_flags()
    clear_stale_lock(_module_name(tag))
    _claim_build(_module_name(tag))
    # The ninja of this interpreter's environment (PyPI `ninja`) is found even when the venv is
    # not activated.
    prepend_to_path(str(Path(sys.executable).parent))
    return cpp_extension.load(
        name=_module_name(tag),
        sources=[str(p) for p in SOURCES],
        # -ffast-math lets the compiler vectorise the reductions and exp; the kernel uses no
        # infinities or NaNs (masked columns get a large finite negative score).
        extra_cflags=["-O3", "-ffast-math", "-fopenmp", *flags],
        # Resolves to the libgomp torch already loaded (same soname): one OpenMP thread pool.
        extra_ldflags=["-fopenmp"],
        verbose=False,
    )


# (x (M, K) float32, weight packed (ceil(N / 64), K, 64) float16, N, bias (N,) float32 or None,
# relu) -> (M, N) float32; the packing is :func:`app.models.gpt.packed.pack_linear`'s.
LinearF16Fn = Callable[[torch.Tensor, torch.Tensor, int, torch.Tensor | None, bool], torch.Tensor]


def attention_kernel() -> AttentionFn | None:
    """The native single-query attention, or None when switched off or not buildable here."""
    module = _module()
    return None if module is None else module.decode_attention


def linear_f16_kernel() -> LinearF16Fn | None:
    """The float16-weight linear of the decoding step, or None when switched off or not buildable."""
    module = _module()
    return None if module is None else module.linear_f16


# (x (M, K) float32, weight packed (ceil(N / 64), K, 64) int8, scale (N,) float32, bias (N,) float32
# or None, relu) -> (M, N) float32.
LinearInt8Fn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, bool], torch.Tensor]


def linear_int8_kernel() -> LinearInt8Fn | None:
    """The int8-weight linear of the decoding step, or None when switched off or not buildable."""
    module = _module()
    return None if module is None else module.linear_int8


def decode_plan_class():  # type: ignore[no-untyped-def]
    """``DecodePlan`` (csrc/step.cpp): the decoding step of a whole layer stack in one native call,
    or None when the kernels are switched off or not buildable here."""
    module = _module()
    return None if module is None else module.DecodePlan


# (packed (ceil(N / 64), K, 64) float16 or int8, N, dtype float32 or bfloat16[, scales (N,) of an
# int8 weight, applied before rounding to dtype]; or an int8 weight as int8, unscaled) -> W^T, (K, N).
UnpackFn = Callable[..., torch.Tensor]


def unpack_cols_kernel() -> UnpackFn | None:
    """The packed weights as W^T (K, N) for the prefill's GEMMs, or None when switched off."""
    module = _module()
    return None if module is None else module.unpack_cols


# (x (M, K) bfloat16 or float32, W^T (K, N) int8, scales (N,), bias (N,) float32 or None, relu)
# -> (M, N) bfloat16: x quantised per row to int8, one int8 GEMM.
LinearW8A8Fn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, bool], torch.Tensor]


def linear_w8a8_kernel() -> LinearW8A8Fn | None:
    """The prefill's int8 x int8 product (csrc/linear.cpp), or None when switched off or not buildable."""
    module = _module()
    return None if module is None else module.linear_w8a8


# (q, k, v (B, H, T, hd) bfloat16, lo, hi (B, T) int32: each query's keys [lo, hi)) -> (B, T, H * hd)
# bfloat16; float32 products and softmax (csrc/attention.cpp).
PrefillAttentionFn = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor
]
# Head sizes prefill_attention is built for.
PREFILL_HEAD_DIMS = (16, 32, 64, 128)


def prefill_attention_kernel() -> PrefillAttentionFn | None:
    """The many-query bf16 attention (the fast prefill, HuBERT), or None when switched off or not buildable."""
    module = _module()
    return None if module is None else module.prefill_attention


# quantize_blocks(x (1, C, 1, T) channels-last float32/bf16, slope, block, reach, blocks) -> (codes
# (blocks, block + 2 reach, C) uint8, scales (blocks,) float32, zero points (blocks,) int32), and
# finish_blocks(acc, scales, zeros, colsum, bias, residual, out, block, start) (csrc/quantize.cpp).
QuantizeBlocksFn = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def block_quantiser() -> tuple[QuantizeBlocksFn, Callable[..., None]] | None:
    """The block-scaled int8 convolutions' two native halves (:mod:`app.models.nn.qconv`): the
    activation quantiser and the output's finishing pass; None when switched off or not buildable."""
    module = _module()
    return None if module is None else (module.quantize_blocks, module.finish_blocks)


@functools.cache
def _module():  # type: ignore[no-untyped-def]
    """The compiled extension module, or None (one warning) when switched off or not buildable."""
    if not native_kernels_enabled():
        return None
    try:
        module = build()
    except Exception as exc:  # no compiler, no ninja, a failing build: decode without it
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        log.warning(
            "native GPT kernels unavailable (%s); decoding uses torch's SDPA and float32 "
            "weights instead (slower). Install a C++ compiler and `pip install ninja` to enable it, or set "
            "%s=0 to silence this.",
            first,
            NATIVE_KERNELS_VAR,
        )
        return None
    return module


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    kernel = attention_kernel()
    if kernel is None:
        sys.exit(
            f"the native kernel could not be built (see the warning above); {NATIVE_KERNELS_VAR}=0 skips it"
        )
    print(f"native GPT kernels ready ({_module_name(_arch_flags()[0])})")


if __name__ == "__main__":
    main()
