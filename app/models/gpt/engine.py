"""The decoding engine of the GPT: precision, packed kernels, KV cache, prefill/step and the step loop.

The network (:mod:`app.models.gpt.model`) holds the weights and the training pass; decoding one
token at a time needs more than that, and all of it lives here:

- a precision (:meth:`DecodingEngine.set_precision`) and the linear kernels packed for it
  (:mod:`app.models.gpt.packed`), re-packed whenever a weight changed;
- the native single-query attention of the step (:mod:`app.models.gpt.native`) where the
  precision is approximate anyway, with a bfloat16 cache;
- :meth:`DecodingEngine.prefill` (text + prompt into a :class:`~app.models.gpt.cache.KVCache`) and
  :meth:`DecodingEngine.step` (one token per row), several rows (segments) at once;
- :func:`generate`, the one autoregressive loop: choose tokens (:mod:`app.models.gpt.sampling`),
  stop rows, drop finished rows from the cache, step. :func:`decode` collects its chunks.

Every GPT carries its engine (``gpt.engine``); ``gpt.set_precision`` / ``prefill`` / ``step`` are
short-cuts to it. The engine keeps no reference to the network (its methods take it), so a model
and its engine are freed together as soon as the model is dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from app.models.gpt.cache import KVCache
from app.models.gpt.config import GPTConfig
from app.models.gpt.layerpass import LayerKernels, key_ranges, prefill_mask, run_layer
from app.models.gpt.layers import LAYER_NORM_EPS, LayerStack, ScaledSinePosition, TokenEmbedding, sine_table
from app.models.gpt.packed import (
    APPROXIMATE,
    GEMV_ROWS,
    LinearFn,
    NativeLinear,
    pack_linear,
    resolve_precision,
)
from app.models.gpt.sampling import DecodeResult, SamplingOptions, TokenChunk, choose_tokens
from app.models.gpt.stepplan import PLAN_ROWS, DecodePlanLike, decode_plan, gather_weights

if TYPE_CHECKING:
    from app.models.gpt.native import AttentionFn, PrefillAttentionFn

# The weights each layer's packed kernels copy (besides bert_proj and ar_predict_layer).
_PACKED_LAYER_WEIGHTS = (
    "self_attn.in_proj_weight",
    "self_attn.out_proj.weight",
    "linear1.weight",
    "linear2.weight",
)
# Rows of the sine table built at least: most requests (prefill + up to 1500 tokens) fit without a rebuild.
_PE_ROWS = 2048


class Network(Protocol):
    """What the engine reads of :class:`app.models.gpt.model.GPT`; a Protocol because the model imports this module."""

    config: GPTConfig
    engine: DecodingEngine
    bert_proj: nn.Linear
    ar_text_embedding: TokenEmbedding
    ar_text_position: ScaledSinePosition
    ar_audio_embedding: TokenEmbedding
    ar_audio_position: ScaledSinePosition
    h: LayerStack
    ar_predict_layer: nn.Linear

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...


@dataclass
class Kernels:
    """Everything :meth:`DecodingEngine.step` runs, packed from one state of the weights."""

    precision: str
    device: torch.device
    dtype: torch.dtype
    # Parameter versions at packing time: a changed weight makes the pack stale.
    versions: tuple[int, ...]
    # Native single-query attention of the decoding step (its cache: see _kv_dtype), or None for SDPA.
    attention: AttentionFn | None
    bert_proj: LinearFn
    predict: LinearFn
    layers: list[LayerKernels]
    # The step's input embedding: the network's own modules (not copied, not packed).
    audio_embedding: nn.Embedding
    audio_position: ScaledSinePosition
    n_head: int
    # The native whole-stack step (csrc/step.cpp ``DecodePlan``) when every linear and the attention
    # are native kernels, else None: the layers of step() in one call.
    plan: DecodePlanLike | None = None
    # The prefill's bf16 attention (csrc/attention.cpp) where it fills a bf16 cache, else None (SDPA).
    prefill_attention: PrefillAttentionFn | None = None


class DecodingEngine:
    """How one GPT decodes: its precision, the kernels packed for it and the prefill/step passes."""

    def __init__(self, precision: str = "fp32") -> None:
        self.precision = precision
        # Packed on the first prefill; None again after set_precision.
        self.kernels: Kernels | None = None
        self._pe_table: torch.Tensor | None = None

    def set_precision(self, precision: str, device: torch.device) -> None:
        """Choose the linear kernels of :meth:`prefill` / :meth:`step` for weights on ``device``.

        ``fp32`` (default) is exact float32 maths in packed kernels; ``reference`` the plain
        ``F.linear`` path; ``bf16``, ``int8`` and ``int8_dynamic`` are opt-in approximations that
        stream 2x / 4x / 4x fewer weight bytes (see :mod:`app.models.gpt.packed`).
        """
        resolve_precision(precision, device)
        self.precision = precision
        self.kernels = None

    def new_cache(self, net: Network, batch: int, capacity: int) -> KVCache:
        """A cache for ``batch`` rows of up to ``capacity`` columns (prefill width + new tokens)."""
        c = net.config
        w = net.ar_audio_embedding.word_embeddings.weight
        return KVCache(c.n_layer, c.n_head, c.head_dim, batch, capacity, w.device, self._kv_dtype(net))

    @torch.inference_mode()
    def prefill(
        self,
        net: Network,
        cache: KVCache,
        phones: torch.Tensor,
        bert: torch.Tensor,
        prompt: torch.Tensor | None = None,
        phone_lens: torch.Tensor | None = None,
        prompt_lens: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Run text + prompt through the stack, fill ``cache``, return next-token logits ``(B, vocab)``.

        Args:
            cache: from :meth:`new_cache`; reset here, so one cache serves many requests.
            phones: ``(B, Tx)`` phoneme ids, right-padded when ``phone_lens`` is given.
            bert: ``(B, bert_dim, Tx)``.
            prompt: ``(B, Ty)`` semantic ids of the reference audio, right-padded when
                ``prompt_lens`` is given; None (or zero lengths) for reference-free decoding.
        """
        kern = self._ensure_kernels(net)
        kv_dtype = self._kv_dtype(net)  # what step() reads
        if cache.k.dtype != kv_dtype:
            raise ValueError(
                f"this KV cache holds {cache.k.dtype} but the model now decodes with "
                f"{kv_dtype} keys (its precision changed): allocate it with new_cache()"
            )
        B, Tx = phones.shape
        device = phones.device
        x_lens = _lengths(phone_lens, B, Tx, "phone_lens")
        Ty = 0 if prompt is None else prompt.shape[1]
        y_lens = _lengths(prompt_lens, B, Ty, "prompt_lens")
        dtype, D = kern.dtype, net.config.dim

        text = net.ar_text_embedding.word_embeddings(phones) + kern.bert_proj(bert.transpose(1, 2).to(dtype))
        text = text + net.ar_text_position.alpha * self._pe(Tx, D, device, dtype)
        if Ty:
            audio = net.ar_audio_embedding.word_embeddings(prompt)
            audio = audio + net.ar_audio_position.alpha * self._pe(Ty, D, device, dtype)

        # Right-align each row's [text; prompt] at width P (see KVCache for the layout).
        totals = [x_lens[b] + y_lens[b] for b in range(B)]
        P = max(totals)
        if min(totals) == P and x_lens == [Tx] * B and y_lens == [Ty] * B:
            xy = torch.cat([text, audio], dim=1) if Ty else text
        else:
            xy = text.new_zeros(B, P, text.shape[2])
            for b in range(B):
                off = P - totals[b]
                xy[b, off : off + x_lens[b]] = text[b, : x_lens[b]]
                xy[b, off + x_lens[b] : P] = audio[b, : y_lens[b]] if y_lens[b] else 0
        offsets = [P - t for t in totals]
        cache.start(B, P, offsets, y_lens)
        allowed = prefill_mask(offsets, x_lens, P, device)  # (B, 1, P, P)
        ranges = None if kern.prefill_attention is None else key_ranges(allowed)

        for i, lk in enumerate(kern.layers):
            xy = run_layer(xy, lk, cache, i, allowed, P, kern.n_head, kern.prefill_attention, ranges)
        return kern.predict(xy[:, -1])

    @torch.inference_mode()
    def step(self, cache: KVCache, tokens: torch.Tensor) -> torch.Tensor:
        """Append one token per row (``tokens (B,)``) and return the next logits ``(B, vocab)``."""
        kern = self.kernels
        if kern is None:
            raise RuntimeError("GPT.step() before GPT.prefill(): prefill fills the cache first")
        B = cache.batch
        pos = cache.audio_pos[:B]
        x = kern.audio_embedding(tokens[:B])
        D = x.shape[1]
        pe = self._pe(cache.capacity, D, x.device, x.dtype)
        x = x + kern.audio_position.alpha * pe[pos]  # (B, D): one new column per row
        n = cache.length
        H = kern.n_head
        # The layer of run_layer() for T = 1, written out: every call here is one torch op (no
        # reshapes of a (B, 1, D) layout, no Python wrappers); at batch 1 per-op overhead counts.
        layers = zip(kern.layers, cache.k_layers, cache.v_layers, strict=False)
        if kern.attention is not None:
            valid = cache.valid if cache.padded else None
            direct = B <= GEMV_ROWS and x.dtype == torch.float32  # (B, D) rows: the kernels as they are
            if kern.plan is not None and B <= PLAN_ROWS and x.dtype == torch.float32:
                # The whole stack in one native call (csrc/step.cpp).
                x = kern.plan.run(x, cache.k_layers, cache.v_layers, n, valid)
            else:
                for lk, k_layer, v_layer in layers:
                    qkv, out, ffn_in, ffn_out = (
                        lk.gemv if direct and lk.gemv is not None else (lk.qkv, lk.out, lk.ffn_in, lk.ffn_out)
                    )
                    att = kern.attention(qkv(x), k_layer, v_layer, n, valid)  # (B, D); writes column n
                    x = torch.layer_norm(x + out(att), (D,), *lk.norm1, LAYER_NORM_EPS)
                    x = torch.layer_norm(x + ffn_out(ffn_in(x)), (D,), *lk.norm2, LAYER_NORM_EPS)
        else:
            mask = cache.key_mask()
            heads = (B, 3, H, 1, D // H)
            for lk, k_layer, v_layer in layers:
                q, k, v = lk.qkv(x).view(heads).unbind(1)  # 3 x (B, H, 1, hd)
                k_layer.narrow(2, n, 1).copy_(k)
                v_layer.narrow(2, n, 1).copy_(v)
                keys, values = k_layer.narrow(2, 0, n + 1), v_layer.narrow(2, 0, n + 1)
                att = F.scaled_dot_product_attention(q, keys, values, mask)
                x = torch.layer_norm(x + lk.out(att.view(B, D)), (D,), *lk.norm1, LAYER_NORM_EPS)
                x = torch.layer_norm(x + lk.ffn_out(lk.ffn_in(x)), (D,), *lk.norm2, LAYER_NORM_EPS)
        cache.length = n + 1
        pos += 1
        return kern.predict(x)

    def release_weights(self, net: Network) -> int:
        """Pack the kernels now and free the float32 weights they copied; returns the bytes freed.

        The packed kernels (oneDNN fp32, bf16, int8) hold their own copy of every linear weight, so a
        model that only decodes carries each weight twice (~300 MB for the full-size GPT). The copies
        freed here are the module's ``Parameter`` data, replaced by empty tensors without bumping the
        parameters' versions, so the kernels stay valid. Afterwards the model can only ``prefill`` /
        ``step``: training, saving or ``set_precision`` would need the weights again (reload the file).
        With ``reference`` kernels (GPU) nothing is copied and nothing is freed.
        """
        device = net.ar_predict_layer.weight.device
        if resolve_precision(self.precision, device) == "reference":
            return 0
        with torch.inference_mode():  # a one-token prefill packs the kernels
            phones = torch.zeros(1, 1, dtype=torch.long, device=device)
            bert = torch.zeros(1, net.config.bert_dim, 1, device=device)
            self.prefill(net, self.new_cache(net, 1, 2), phones, bert)
        weights = [net.bert_proj.weight, net.ar_predict_layer.weight]
        for layer in net.h.layers:
            weights += [layer.get_parameter(name) for name in _PACKED_LAYER_WEIGHTS]
        freed = 0
        for w in weights:
            freed += w.numel() * w.element_size()
            w.data = torch.empty(0, dtype=w.dtype, device=w.device)
        return freed

    def native_attention(self, net: Network) -> AttentionFn | None:
        """The native step attention on CPU for a float32 model (not for ``reference``, the yardstick).

        Under ``fp32`` it reads the float32 cache: the same float32 maths as SDPA, in another
        summation order; under the approximate precisions a bfloat16 cache (:meth:`_kv_dtype`).
        """
        device = net.ar_predict_layer.weight.device
        if device.type != "cpu" or _stream_dtype(net) != torch.float32:
            return None
        if resolve_precision(self.precision, device) == "reference":
            return None
        from app.models.gpt.native import HEAD_DIMS, attention_kernel  # here: `python -m` runs that module

        if net.config.head_dim not in HEAD_DIMS:
            return None
        return attention_kernel()

    def _kv_dtype(self, net: Network) -> torch.dtype:
        """bfloat16 under the native attention of an approximate precision (half the bytes the step
        reads), else the model's dtype."""
        device = net.ar_predict_layer.weight.device
        approximate = resolve_precision(self.precision, device) in APPROXIMATE
        if approximate and self.native_attention(net) is not None:
            return torch.bfloat16
        return _stream_dtype(net)

    def _pe(self, length: int, dim: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """``(length, dim)`` sine table on ``device``; kept, since the step reads it every token."""
        table = self._pe_table
        if table is None or table.shape[0] < length or table.device != device or table.dtype != dtype:
            table = sine_table(max(length, _PE_ROWS), dim).to(device, dtype)
            self._pe_table = table
        return table[:length]

    def kernels_for(self, net: Network) -> Kernels:
        """The packed kernels of ``net`` (packed now if needed): passes other than decoding run on them."""
        return self._ensure_kernels(net)

    def _ensure_kernels(self, net: Network) -> Kernels:
        """Pack the linear weights for decoding, again whenever a parameter changed since the last pack."""
        device = net.ar_predict_layer.weight.device
        dtype = _stream_dtype(net)
        versions = tuple(p._version for p in net.parameters())
        kern = self.kernels
        if kern is not None and (kern.versions, kern.device, kern.dtype) == (versions, device, dtype):
            return kern
        precision = resolve_precision(self.precision, device)
        if dtype != torch.float32:
            # A model cast to fp16/bf16 as a whole (upstream's is_half on GPU) runs its own weights.
            precision = "reference"

        def pack(lin_w: torch.Tensor, lin_b: torch.Tensor | None, relu: bool = False) -> LinearFn:
            return pack_linear(lin_w, lin_b, precision, relu)

        layers = []
        for layer in net.h.layers:
            att = layer.self_attn
            linears = (
                pack(att.in_proj_weight, att.in_proj_bias),
                pack(att.out_proj.weight, att.out_proj.bias),
                pack(layer.linear1.weight, layer.linear1.bias, relu=True),
                pack(layer.linear2.weight, layer.linear2.bias),
            )
            native = all(isinstance(f, NativeLinear) for f in linears)
            layers.append(
                LayerKernels(
                    *linears,
                    norm1=(layer.norm1.weight.detach(), layer.norm1.bias.detach()),
                    norm2=(layer.norm2.weight.detach(), layer.norm2.bias.detach()),
                    gemv=tuple(f.gemv for f in linears) if native else None,  # type: ignore[union-attr]
                )
            )
        self.kernels = Kernels(
            precision=precision,
            device=device,
            dtype=dtype,
            versions=versions,
            attention=self.native_attention(net),
            bert_proj=pack(net.bert_proj.weight, net.bert_proj.bias),
            predict=pack(net.ar_predict_layer.weight, None),
            layers=layers,
            audio_embedding=net.ar_audio_embedding.word_embeddings,
            audio_position=net.ar_audio_position,
            n_head=net.config.n_head,
        )
        gather_weights(
            [f for lk in layers for f in (lk.qkv, lk.out, lk.ffn_in, lk.ffn_out)] + [self.kernels.predict]
        )
        if self.kernels.attention is not None:
            self.kernels.plan = decode_plan(layers, self.kernels.n_head)
            if self._kv_dtype(net) == torch.bfloat16:
                from app.models.gpt.native import PREFILL_HEAD_DIMS, prefill_attention_kernel

                if net.config.head_dim in PREFILL_HEAD_DIMS:
                    self.kernels.prefill_attention = prefill_attention_kernel()
        return self.kernels


def generate(
    model: Network,
    phones: torch.Tensor,
    bert: torch.Tensor,
    prompt: torch.Tensor | None = None,
    options: SamplingOptions | None = None,
    *,
    phone_lens: torch.Tensor | None = None,
    prompt_lens: torch.Tensor | None = None,
    cache: KVCache | None = None,
    chunk_tokens: int | None = None,
) -> Iterator[TokenChunk]:
    """Decode every row (inputs as :meth:`DecodingEngine.prefill`) and yield :class:`TokenChunk` s.

    A chunk is yielded every ``chunk_tokens`` steps (None: only at the end) and whenever a row
    finishes. ``cache`` may be reused across calls (it must hold the rows and prefill width +
    ``max_new_tokens`` columns); by default one is allocated. The order of the rules applied to each
    step's logits is in :mod:`app.models.gpt.sampling`.
    """
    opt = options or SamplingOptions()
    engine = model.engine
    B = phones.shape[0]
    eos = model.config.eos
    device = phones.device
    width = phones.shape[1] + (0 if prompt is None else prompt.shape[1])
    own_cache = cache is None
    cache = _request_cache(model, cache, B, width, opt.max_new_tokens)
    generator = None
    if opt.seed is not None:
        generator = torch.Generator(device=device).manual_seed(opt.seed)

    # No grad-mode context is held across the yields below (it would leak into the consumer);
    # prefill() and step() run in inference mode themselves.
    logits = engine.prefill(model, cache, phones, bert, prompt, phone_lens, prompt_lens)
    # seen[i, id]: id occurs in the prompt or output of active row i (repetition penalty).
    seen = _prompt_ids(prompt, prompt_lens, (B, model.config.vocab_size), eos, device)
    out = torch.empty(B, opt.max_new_tokens, dtype=torch.long, device=device)
    active = list(range(B))  # request row of each cache row
    rows = torch.arange(B, device=device)
    lengths, emitted = [0] * B, [0] * B
    on_eos = [False] * B
    step = 0
    next_logits = engine.step  # bound once: the loop runs up to 1500 times per request
    while True:
        # Choose: upstream cuts the EOS column off (rather than masking it) while EOS is not allowed.
        allow_eos = not opt.suppress_eos and step >= opt.min_tokens_before_eos
        tokens, greedy = choose_tokens(logits if allow_eos else logits[:, :eos], seen, opt, generator)
        out[rows, step] = tokens
        step += 1
        # Stop: a row ends on a sampled or greedy EOS (not emitted), or at the token limit (kept).
        hit = []
        if allow_eos:
            stop = (tokens == eos) | (greedy == eos)
            if bool(stop.any()):
                hit = torch.nonzero(stop).flatten().tolist()
        for i, r in enumerate(active):
            lengths[r] = step - 1 if i in hit else step
            on_eos[r] = i in hit
        ended = set(range(len(active))) if step == opt.max_new_tokens else set(hit)
        if own_cache and len(ended) == len(active):
            # Free the keys/values before the consumer decodes the last chunk (streaming), not
            # when this generator is closed after it: they are the largest buffer at that point.
            cache = logits = None
        # Report: a chunk every chunk_tokens steps and whenever rows end.
        if ended or (chunk_tokens and step % chunk_tokens == 0):
            done = {active[i] for i in ended}
            yield _chunk(out, lengths, emitted, done, on_eos, step)
        if len(ended) == len(active):
            return
        # Drop the ended rows from the cache, then step the others.
        seen.scatter_(1, tokens[:, None], True)
        if ended:
            keep = torch.tensor([i for i in range(len(active)) if i not in ended], device=device)
            active = [active[i] for i in keep.tolist()]
            rows, seen, tokens = rows[keep], seen[keep], tokens[keep]
            cache.keep(keep)
        logits = next_logits(cache, tokens)


def decode(
    model: Network,
    phones: torch.Tensor,
    bert: torch.Tensor,
    prompt: torch.Tensor | None = None,
    options: SamplingOptions | None = None,
    *,
    phone_lens: torch.Tensor | None = None,
    prompt_lens: torch.Tensor | None = None,
    cache: KVCache | None = None,
) -> DecodeResult:
    """Run :func:`generate` to the end and collect each row's tokens."""
    parts: list[list[torch.Tensor]] = [[] for _ in range(phones.shape[0])]
    chunk = None
    for chunk in generate(
        model, phones, bert, prompt, options, phone_lens=phone_lens, prompt_lens=prompt_lens, cache=cache
    ):
        for b, t in enumerate(chunk.tokens):
            parts[b].append(t)
    if chunk is None:
        raise RuntimeError("generate() ended without a final chunk")
    return DecodeResult(tuple(torch.cat(p) for p in parts), chunk.stopped_on_eos, chunk.steps)


def _request_cache(model: Network, cache: KVCache | None, batch: int, width: int, new_tokens: int) -> KVCache:
    """``cache`` when it holds the request (``batch`` rows, ``width + new_tokens`` columns), else a new one."""
    if cache is None:
        return model.engine.new_cache(model, batch, width + new_tokens)
    if cache.capacity < width + new_tokens or cache.max_batch < batch:
        raise ValueError(
            f"the KV cache holds {cache.max_batch} rows x {cache.capacity} columns; this request needs "
            f"{batch} rows x {width + new_tokens} (prefill {width} + max_new_tokens {new_tokens})"
        )
    return cache


def _prompt_ids(
    prompt: torch.Tensor | None,
    prompt_lens: torch.Tensor | None,
    shape: tuple[int, int],
    eos: int,
    device: torch.device,
) -> torch.Tensor:
    """``shape = (B, vocab)`` bool, True where the id occurs in the row's prompt (padding excluded)."""
    seen = torch.zeros(shape, dtype=torch.bool, device=device)
    if prompt is not None and prompt.shape[1]:
        valid = (
            torch.arange(prompt.shape[1], device=device)[None] < _row_lengths(prompt_lens, prompt)[:, None]
        )
        seen.scatter_(1, prompt.masked_fill(~valid, eos), valid)  # padding writes False onto EOS
    return seen


def _row_lengths(lens: torch.Tensor | None, ids: torch.Tensor) -> torch.Tensor:
    if lens is None:
        return torch.full((ids.shape[0],), ids.shape[1], dtype=torch.long, device=ids.device)
    return lens.to(ids.device)


def _chunk(
    out: torch.Tensor, lengths: list[int], emitted: list[int], done: set[int], on_eos: list[bool], step: int
) -> TokenChunk:
    """Slice each row's tokens not yet emitted; ``emitted`` is advanced in place."""
    tokens = []
    for b, n in enumerate(lengths):
        tokens.append(out[b, emitted[b] : n].clone())
        emitted[b] = n
    B = len(lengths)
    return TokenChunk(tuple(tokens), tuple(b in done for b in range(B)), tuple(on_eos), step)


def _stream_dtype(net: Network) -> torch.dtype:
    """The dtype activations flow in: the model's own (float32, or all of it cast to fp16/bf16)."""
    return net.ar_audio_embedding.word_embeddings.weight.dtype


def _lengths(lens: torch.Tensor | None, batch: int, width: int, name: str) -> list[int]:
    if lens is None:
        return [width] * batch
    values = [int(v) for v in lens.tolist()]
    if len(values) != batch or any(v < 0 or v > width for v in values):
        raise ValueError(f"{name} must hold {batch} lengths in [0, {width}], got {values}")
    return values
