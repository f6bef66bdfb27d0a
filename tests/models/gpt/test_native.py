"""The native decoding-step attention (app/models/gpt/csrc/attention.cpp) and its use by the GPT.

The kernel is built here like on a user's machine (a C++ compiler and ninja are part of the
test setup); a machine that cannot build it must fall back to SDPA, which is tested too.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from app.models.gpt import native
from app.models.gpt.engine import decode
from app.models.gpt.sampling import SamplingOptions
from app.settings import NATIVE_KERNELS_VAR
from tests.models.gpt.tiny import batched_and_single_logits, pad_batch, tiny_gpt, tiny_inputs


@pytest.fixture(scope="module")
def kernel():
    fn = native.attention_kernel()
    assert fn is not None, "the native kernel must build on the test machine (g++ and ninja)"
    return fn


def _case(B: int, H: int, hd: int, S: int, n: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    k = torch.randn(B, H, S, hd, generator=gen)
    v = torch.randn(B, H, S, hd, generator=gen)
    qkv = torch.randn(B, 3 * H * hd, generator=gen)
    return qkv, k, v


def _sdpa(qkv: torch.Tensor, k: torch.Tensor, v: torch.Tensor, n: int, valid: torch.Tensor | None):
    """What the kernel must compute, with torch ops: write column n, attend columns [0, n]."""
    B, H, _, hd = k.shape
    q, kn, vn = qkv.view(B, 3, H, 1, hd).unbind(1)
    k, v = k.clone(), v.clone()
    k[:, :, n : n + 1] = kn
    v[:, :, n : n + 1] = vn
    mask = None if valid is None else valid[:B, None, None, : n + 1]
    out = F.scaled_dot_product_attention(q, k[:, :, : n + 1], v[:, :, : n + 1], mask)
    return out.reshape(B, H * hd), k, v


@pytest.mark.parametrize(("B", "H", "hd", "n"), [(1, 16, 32, 300), (3, 4, 8, 17), (2, 2, 64, 0)])
def test_kernel_equals_sdpa_on_a_float32_cache(kernel, B: int, H: int, hd: int, n: int) -> None:
    qkv, k, v = _case(B, H, hd, S=n + 5, n=n)
    want, k_want, v_want = _sdpa(qkv, k, v, n, None)
    got = kernel(qkv, k, v, n, None)
    torch.testing.assert_close(got, want, rtol=0, atol=2e-6)
    assert torch.equal(k, k_want) and torch.equal(v, v_want)  # column n written, nothing else


def test_kernel_skips_invalid_columns_per_row(kernel) -> None:
    qkv, k, v = _case(3, 4, 16, S=40, n=30, seed=1)
    valid = torch.ones(3, 40, dtype=torch.bool)
    valid[0, :7] = False  # left padding of row 0
    valid[2, 3:11] = False
    k[0, :, :7] = 1e4  # garbage a leak would show
    want, _, _ = _sdpa(qkv, k, v, 30, valid)
    got = kernel(qkv, k, v, 30, valid)
    torch.testing.assert_close(got, want, rtol=0, atol=2e-6)


def test_kernel_reads_and_writes_a_bfloat16_cache(kernel) -> None:
    qkv, k, v = _case(2, 16, 32, S=200, n=150, seed=2)
    kb, vb = k.bfloat16(), v.bfloat16()
    want, k_want, v_want = _sdpa(qkv, kb.float(), vb.float(), 150, None)
    got = kernel(qkv, kb, vb, 150, None)
    # The keys/values are rounded to bf16 as torch rounds them; the maths stays float32.
    assert torch.equal(kb.float(), k_want.bfloat16().float()) and torch.equal(
        vb.float(), v_want.bfloat16().float()
    )
    assert (got - want).abs().max().item() < 5e-3
    assert (got - _sdpa(qkv, k, v, 150, None)[0]).abs().max().item() < 2e-2


def _attention_f64(qkv, k, v, n, valid):
    """float64 attention of column n's query over columns [0, n] of caches holding the new column."""
    B, H, _, hd = k.shape
    q = qkv.double().view(B, 3, H, hd)[:, 0]
    keys, values = k[:, :, : n + 1].double(), v[:, :, : n + 1].double()
    scores = torch.einsum("bhd,bhjd->bhj", q, keys) / hd**0.5
    if valid is not None:
        scores = scores.masked_fill(~valid[:B, None, : n + 1], float("-inf"))
    return torch.einsum("bhj,bhjd->bhd", scores.softmax(-1), values).reshape(B, H * hd)


@settings(max_examples=60, deadline=None)
@given(
    hd=st.sampled_from([8, 16, 32, 64, 128]),
    n=st.integers(0, 90),
    B=st.integers(1, 3),
    masked=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_kernel_on_a_bfloat16_cache_is_float32_attention_of_its_values(
    kernel, hd, n, B, masked, seed
) -> None:
    """Every head size and column count (the AVX-512 bf16 path takes 16 keys at a time and 4 values
    at a time: tails of every length), with and without invalid columns, against float64 attention
    over the cache's bf16 values: only float32 summation error is allowed."""
    gen = torch.Generator().manual_seed(seed)
    H, S = 2, n + 3
    k = torch.randn(B, H, S, hd, generator=gen).bfloat16()
    v = torch.randn(B, H, S, hd, generator=gen).bfloat16()
    qkv = torch.randn(B, 3 * H * hd, generator=gen) * 2
    valid = None
    if masked:
        valid = torch.rand(B, S, generator=gen) < 0.6
        valid[:, n] = True  # the new column always sees itself
    got = kernel(qkv, k, v, n, valid)
    new_k, new_v = qkv.view(B, 3, H, hd)[:, 1].bfloat16(), qkv.view(B, 3, H, hd)[:, 2].bfloat16()
    assert torch.equal(k[:, :, n], new_k) and torch.equal(v[:, :, n], new_v)
    torch.testing.assert_close(got.double(), _attention_f64(qkv, k, v, n, valid), rtol=0, atol=1e-5)


def test_kernel_rejects_bad_arguments(kernel) -> None:
    qkv, k, v = _case(1, 4, 8, S=10, n=3)
    with pytest.raises(RuntimeError, match="outside the cache"):
        kernel(qkv, k, v, 10, None)
    with pytest.raises(RuntimeError, match="3 \\* 4 \\* 8"):
        kernel(qkv[:, :-1].contiguous(), k, v, 3, None)
    with pytest.raises(RuntimeError, match="share a dtype"):
        kernel(qkv, k, v.bfloat16(), 3, None)
    with pytest.raises(RuntimeError, match="head size 12"):
        kernel(torch.zeros(1, 3 * 4 * 12), torch.zeros(1, 4, 10, 12), torch.zeros(1, 4, 10, 12), 3, None)
    with pytest.raises(RuntimeError, match="valid must be"):
        kernel(qkv, k, v, 3, torch.ones(1, 2, dtype=torch.bool))


def _steps(model, phones, bert, prompt, tokens, cache=None):
    cache = cache or model.new_cache(phones.shape[0], phones.shape[1] + prompt.shape[1] + len(tokens) + 1)
    with torch.inference_mode():
        out = [model.prefill(cache, phones, bert, prompt)]
        out += [model.step(cache, t.view(1)) for t in tokens]
    return torch.cat(out), cache


def test_approximate_precisions_decode_with_the_kernel_and_a_bf16_cache(monkeypatch) -> None:
    model = tiny_gpt(dim=64, n_layer=3)
    phones, bert, prompt = tiny_inputs(model, 10, 8)
    tokens = torch.randint(0, 1024, (12,), generator=torch.Generator().manual_seed(3))
    model.set_precision("reference")
    exact, cache = _steps(model, phones, bert, prompt, tokens)
    assert cache.k.dtype == torch.float32 and model.engine.kernels.attention is None  # the yardstick: SDPA
    model.set_precision("int8_dynamic")
    fast, cache = _steps(model, phones, bert, prompt, tokens)
    assert cache.k.dtype == torch.bfloat16 and model.engine.kernels.attention is not None
    # The same precision without the kernel (what a machine without a compiler runs).
    monkeypatch.setattr(native, "attention_kernel", lambda: None)
    model.set_precision("int8_dynamic")
    plain, cache = _steps(model, phones, bert, prompt, tokens)
    assert cache.k.dtype == torch.float32 and model.engine.kernels.attention is None
    scale = exact.std().item()
    # The bf16 keys/values' share: small next to int8_dynamic's own error (on the full-size model
    # both give ~0.12 std max error and ~98.5 % argmax agreement with fp32).
    assert 0 < (fast - plain).abs().max().item() < 0.1 * scale
    assert (fast - exact).abs().max().item() < 0.15 * scale


def test_fp32_decodes_with_the_kernel_on_a_float32_cache() -> None:
    """fp32 reads its float32 cache with the kernel: SDPA's numbers up to summation order."""
    model = tiny_gpt(dim=64, n_layer=3)
    phones, bert, prompt = tiny_inputs(model, 10, 8)
    tokens = torch.randint(0, 1024, (12,), generator=torch.Generator().manual_seed(3))
    model.set_precision("reference")
    want, _ = _steps(model, phones, bert, prompt, tokens)
    model.set_precision("fp32")
    got, cache = _steps(model, phones, bert, prompt, tokens)
    assert cache.k.dtype == torch.float32 and model.engine.kernels.attention is not None
    torch.testing.assert_close(got, want, rtol=0, atol=2e-5)


def test_batched_padded_rows_match_single_rows_with_the_kernel() -> None:
    model = tiny_gpt()
    model.set_precision("int8_dynamic")
    rows = [
        tiny_inputs(model, 9, 7, seed=1),
        tiny_inputs(model, 4, 2, seed=2),
        tiny_inputs(model, 6, 0, seed=3),
    ]
    assert model.engine.native_attention(model) is not None
    steps = torch.randint(0, 1024, (3, 4), generator=torch.Generator().manual_seed(5))
    for got, want in batched_and_single_logits(model, rows, steps):
        # int8_dynamic quantises activations per call, i.e. per batch: not bit-equal; a padding
        # column leaking into attention would move the logits by ~their std.
        assert (got - want).abs().max().item() < 0.1 * want.std().item()


def test_sampled_decoding_with_the_kernel_drops_finished_rows() -> None:
    model = tiny_gpt()
    model.set_precision("int8_dynamic")
    rows = [tiny_inputs(model, 9, 7, seed=1), tiny_inputs(model, 4, 2, seed=2)]
    phones, x_lens, bert, prompt, y_lens = pad_batch(rows)
    options = SamplingOptions(max_new_tokens=20, min_tokens_before_eos=0, seed=7)
    result = decode(model, phones, bert, prompt, options, phone_lens=x_lens, prompt_lens=y_lens)
    assert len(result.tokens) == 2 and all(0 < len(t) <= 20 for t in result.tokens)
    assert all(int(t.max()) < 1024 for t in result.tokens if len(t))


def test_a_cache_of_another_precision_is_refused() -> None:
    model = tiny_gpt()
    phones, bert, prompt = tiny_inputs(model, 5, 3)
    cache = model.new_cache(1, 12)  # fp32 model: float32 keys
    model.set_precision("int8_dynamic")
    with pytest.raises(ValueError, match="allocate it with new_cache"):
        model.prefill(cache, phones, bert, prompt)


def test_an_unbuildable_kernel_falls_back_with_one_warning(monkeypatch, caplog) -> None:
    def no_compiler():
        raise RuntimeError("Ninja is required to load C++ extensions")

    monkeypatch.setattr(native, "build", no_compiler)
    native._module.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger=native.__name__):
            assert native.attention_kernel() is None
            assert native.attention_kernel() is None
        warnings = [r for r in caplog.records if r.name == native.__name__]
        assert len(warnings) == 1
        assert "Ninja is required" in warnings[0].getMessage() and "SDPA" in warnings[0].getMessage()
        assert native.linear_f16_kernel() is None and native.linear_int8_kernel() is None
        from app.infer.precision import fast_cpu_gpt

        assert fast_cpu_gpt() == "int8_dynamic"  # "fast" falls back to fbgemm
        model = tiny_gpt()
        phones, bert, prompt = tiny_inputs(model, 5, 3)
        # fp32: oneDNN's float32 weights instead; int8: torch's int8 weight-only kernel.
        for precision in ("int8_dynamic", "int8", "fp32"):
            model.set_precision(precision)
            logits, cache = _steps(model, phones, bert, prompt, torch.tensor([1, 2, 3]))
            assert cache.k.dtype == torch.float32 and torch.isfinite(logits).all()
    finally:
        native._module.cache_clear()


def test_the_switch_turns_the_kernel_off(monkeypatch) -> None:
    monkeypatch.setenv(NATIVE_KERNELS_VAR, "0")
    native._module.cache_clear()
    try:
        assert native.attention_kernel() is None and native.linear_f16_kernel() is None
    finally:
        monkeypatch.delenv(NATIVE_KERNELS_VAR)
        native._module.cache_clear()
    assert native.attention_kernel() is not None


def test_a_lock_left_by_a_killed_build_is_cleared_and_a_fresh_one_kept(monkeypatch, tmp_path) -> None:
    """A build stopped mid-way leaves torch's lock file; later processes must not wait on it forever,
    while a lock younger than a build can take belongs to a build that is running."""
    from torch.utils import cpp_extension

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    name = "sovits_gpt_attention_test"
    lock = Path(cpp_extension._get_build_directory(name, False)) / "lock"
    assert not native.clear_stale_lock(name)  # no lock: nothing to do
    lock.write_text("")
    now = lock.stat().st_mtime
    assert not native.clear_stale_lock(name, now=now + 60) and lock.exists()  # a build running now
    assert native.clear_stale_lock(name, now=now + native.STALE_LOCK_SECONDS + 1)
    assert not lock.exists()


def test_a_lock_whose_builder_has_ended_is_cleared_at_once(monkeypatch, tmp_path) -> None:
    """The build records its process beside torch's lock: a young lock of a process that has
    ended (Ctrl-C, a killed server) does not make the next process wait out the age limit."""
    import socket
    import subprocess

    from torch.utils import cpp_extension

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    name = "sovits_gpt_attention_test_owner"
    folder = Path(cpp_extension._get_build_directory(name, False))
    native._claim_build(name)  # no lock yet: this process is recorded as the builder
    lock, owner = folder / "lock", folder / "lock.owner"
    assert owner.read_text() == f"{socket.gethostname()} {os.getpid()}"
    lock.write_text("")
    assert not native.clear_stale_lock(name) and lock.exists()  # its builder (this process) is alive
    gone = subprocess.Popen(["true"])
    gone.wait()
    owner.write_text(f"{socket.gethostname()} {gone.pid}")
    assert native.clear_stale_lock(name) and not lock.exists()
    lock.write_text("")
    owner.write_text(f"another-host {gone.pid}")  # a build elsewhere on a shared cache: age rule only
    assert not native.clear_stale_lock(name) and lock.exists()


def _ranged_attention(q, k, v, lo, hi):  # type: ignore[no-untyped-def]
    """float64 attention of each query over its keys [lo, hi): what prefill_attention computes."""
    T = q.shape[2]
    col = torch.arange(T)
    allowed = (col >= lo[..., None]) & (col < hi[..., None])  # (B, T, T)
    out = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), allowed[:, None])
    return out.transpose(1, 2).reshape(q.shape[0], T, -1)


@settings(max_examples=40, deadline=None)
@given(
    B=st.integers(1, 2),
    H=st.integers(1, 3),
    T=st.integers(1, 150),
    hd=st.sampled_from(native.PREFILL_HEAD_DIMS),
    seed=st.integers(0, 2**16),
)
def test_prefill_attention_is_each_querys_attention_over_its_key_range(
    B: int, H: int, T: int, hd: int, seed: int
) -> None:
    """Any shape, any non-empty key range per query (the group of four queries sharing a pass
    included): float32 maths on the bf16 inputs, one rounding of the output to bf16."""
    kernel = native.prefill_attention_kernel()
    assert kernel is not None
    gen = torch.Generator().manual_seed(seed)
    rows = (torch.randn(B, T, 3, H, hd, generator=gen) * 2).bfloat16()
    q, k, v = rows.transpose(1, 3).unbind(2)  # (B, H, T, hd) views of the projection's rows
    a = torch.randint(0, T, (B, T), generator=gen)
    b = torch.randint(0, T, (B, T), generator=gen)
    lo, hi = torch.minimum(a, b).int(), (torch.maximum(a, b) + 1).int()
    got = kernel(q, k, v, lo, hi)
    assert got.dtype == torch.bfloat16 and got.shape == (B, T, H * hd) and got.is_contiguous()
    torch.testing.assert_close(got.double(), _ranged_attention(q, k, v, lo, hi), rtol=2**-8, atol=1e-5)


def test_prefill_attention_refuses_what_it_cannot_compute() -> None:
    kernel = native.prefill_attention_kernel()
    q = torch.randn(1, 2, 5, 16).bfloat16()
    lo, hi = torch.zeros(1, 5, dtype=torch.int32), torch.full((1, 5), 5, dtype=torch.int32)
    with pytest.raises(RuntimeError, match="key range"):
        kernel(q, q, q, lo, lo)  # empty ranges
    with pytest.raises(RuntimeError, match="key range"):
        kernel(q, q, q, lo, hi + 1)  # past the last key
    with pytest.raises(RuntimeError, match="bfloat16"):
        kernel(q.float(), q.float(), q.float(), lo, hi)
    with pytest.raises(RuntimeError, match="head size 8"):
        kernel(q[..., :8], q[..., :8], q[..., :8], lo, hi)
    with pytest.raises(RuntimeError, match="int32"):
        kernel(q, q, q, lo.long(), hi.long())
