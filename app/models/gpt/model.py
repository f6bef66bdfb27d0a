"""The text-to-semantic transformer of GPT-SoVITS ("s1"): phonemes + BERT features -> semantic codes.

One decoder-only stack over the concatenation ``[text; audio]``:

- text  ``x = E_text[phones] + bert_proj(bert^T) + alpha_text * PE[0:Tx]``
- audio ``y = E_audio[codes] + alpha_audio * PE[0:Ty]`` (positions restart at 0)
- 24 post-norm layers: ``h = LN1(h + MHA(h))``, ``h = LN2(h + W2 relu(W1 h))``, LayerNorm eps 1e-5
- attention mask: text rows see every text position only; audio rows see all text and the audio
  positions up to their own (causal)
- ``logits = ar_predict_layer(h)`` (no bias) over 1024 codes + EOS.

``PE`` is the sine table ``PE[p, 0::2] = sin(p w)``, ``PE[p, 1::2] = cos(p w)``,
``w = exp(arange(0, d, 2) * -(ln 10000 / d))`` and ``alpha`` a learnt scalar (no sqrt(d) scaling).
Parameter names equal upstream's ``Text2SemanticDecoder`` so its files load without renaming
(upstream files add a ``model.`` prefix; :mod:`app.models.upstream.gpt` handles that).

Two ways to run it:

- :meth:`GPT.forward`: teacher-forced training pass returning the summed cross-entropy over the
  semantic tokens + EOS and the top-3 accuracy.
- :meth:`GPT.prefill` then :meth:`GPT.step`: incremental decoding on a preallocated
  :class:`~app.models.gpt.cache.KVCache`, several rows (segments) at once. Linear layers run
  through packed kernels (:mod:`app.models.gpt.packed`) chosen with :meth:`GPT.set_precision`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from app.models.gpt.cache import KVCache
from app.models.gpt.config import GPTConfig
from app.models.gpt.packed import APPROXIMATE, LinearFn, pack_linear, resolve_precision

if TYPE_CHECKING:
    from app.models.gpt.native import AttentionFn

LAYER_NORM_EPS = 1e-5
# Targets ignored by the cross-entropy in correctly masked batches (padding beyond a row's EOS).
IGNORE_TARGET = -100


@lru_cache(maxsize=8)
def sine_table(length: int, dim: int) -> torch.Tensor:
    """``(length, dim)`` float32 sine/cosine table, computed with upstream's float32 arithmetic."""
    position = torch.arange(0, length, dtype=torch.float32).unsqueeze(1)
    rate = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * -(math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * rate)
    table[:, 1::2] = torch.cos(position * rate)
    return table


class TokenEmbedding(nn.Module):
    """Embedding table with dropout; the table is named ``word_embeddings`` as upstream."""

    def __init__(self, vocab_size: int, dim: int, dropout: float) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` ids -> ``(B, T, dim)``."""
        return self.dropout(self.word_embeddings(ids))


class ScaledSinePosition(nn.Module):
    """Adds ``alpha * PE[positions]`` (``alpha`` a learnt scalar), then dropout."""

    def __init__(self, dropout: float) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, D)`` -> same, positions ``0..T-1``."""
        pe = sine_table(max(x.shape[1], 1), x.shape[2])[: x.shape[1]].to(x.device, x.dtype)
        return self.dropout(x + self.alpha * pe)


class SelfAttention(nn.Module):
    """Multi-head self-attention with the packed ``in_proj`` ([q; k; v] rows) of ``nn.MultiheadAttention``."""

    def __init__(self, dim: int, n_head: int, dropout: float) -> None:
        super().__init__()
        self.n_head = n_head
        self.dropout = dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """``x (B, T, D)``, ``allowed (B or 1, 1, T, T)`` bool (True = may attend) -> ``(B, T, D)``."""
        B, T, D = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = qkv.view(B, T, 3, self.n_head, D // self.n_head).permute(2, 0, 3, 1, 4)  # 3 x (B, H, T, hd)
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p)
        return self.out_proj(out.transpose(1, 2).reshape(B, T, D))


class DecoderLayer(nn.Module):
    """Post-norm transformer layer (upstream ``TransformerEncoderLayer`` with ``norm_first=False``)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        d, p = config.dim, config.layer_dropout
        self.self_attn = SelfAttention(d, config.n_head, p)
        self.linear1 = nn.Linear(d, config.ffn_dim)
        self.linear2 = nn.Linear(config.ffn_dim, d)
        self.norm1 = nn.LayerNorm(d, eps=LAYER_NORM_EPS)
        self.norm2 = nn.LayerNorm(d, eps=LAYER_NORM_EPS)
        self.dropout = nn.Dropout(p)
        self.dropout1 = nn.Dropout(p)
        self.dropout2 = nn.Dropout(p)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """``(B, T, D)`` -> ``(B, T, D)``."""
        x = self.norm1(x + self.dropout1(self.self_attn(x, allowed)))
        ffn = self.linear2(self.dropout(F.relu(self.linear1(x))))
        return self.norm2(x + self.dropout2(ffn))


class LayerStack(nn.Module):
    """The ``h`` of upstream: a list of layers under ``h.layers``."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.n_layer))

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, allowed)
        return x


@dataclass(frozen=True)
class TeacherForcedOutput:
    """Result of :meth:`GPT.forward`."""

    # Cross-entropy summed over every counted target (upstream reduces with "sum").
    loss: torch.Tensor
    # Top-k accuracy over counted targets that are not EOS (upstream's torchmetrics metric), float32 scalar.
    top_k_acc: torch.Tensor
    # (B, Ty + 1, vocab): logits predicting targets[:, j].
    logits: torch.Tensor
    # (B, Ty + 1): semantic ids then EOS; IGNORE_TARGET where a padded row has nothing to predict.
    targets: torch.Tensor


@dataclass
class _LayerKernels:
    """One layer's packed linears and the LayerNorm parameters the decoding loop needs."""

    qkv: LinearFn
    out: LinearFn
    ffn_in: LinearFn  # linear1 with the ReLU fused
    ffn_out: LinearFn
    norm1: tuple[torch.Tensor, torch.Tensor]
    norm2: tuple[torch.Tensor, torch.Tensor]


@dataclass
class _Kernels:
    precision: str
    device: torch.device
    dtype: torch.dtype
    versions: tuple[int, ...]
    # Native single-query attention of the decoding step (bf16 cache), or None for SDPA.
    attention: AttentionFn | None
    bert_proj: LinearFn
    predict: LinearFn
    layers: list[_LayerKernels]


class GPT(nn.Module):
    """Text-to-semantic decoder; see the module docstring for the maths."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        d = config.dim
        # Registration order = upstream's state-dict order.
        self.bert_proj = nn.Linear(config.bert_dim, d)
        self.ar_text_embedding = TokenEmbedding(config.phoneme_vocab_size, d, config.embedding_dropout)
        self.ar_text_position = ScaledSinePosition(config.layer_dropout)
        self.ar_audio_embedding = TokenEmbedding(config.vocab_size, d, config.embedding_dropout)
        self.ar_audio_position = ScaledSinePosition(config.layer_dropout)
        self.h = LayerStack(config)
        self.ar_predict_layer = nn.Linear(d, config.vocab_size, bias=False)
        self._precision = "fp32"
        self._kernels: _Kernels | None = None

    # ------------------------------------------------------------------ embeddings
    def embed_text(self, phones: torch.Tensor, bert: torch.Tensor) -> torch.Tensor:
        """``phones (B, Tx)``, ``bert (B, bert_dim, Tx)`` -> ``(B, Tx, D)`` with positions."""
        x = self.ar_text_embedding(phones) + self.bert_proj(bert.transpose(1, 2))
        return self.ar_text_position(x)

    def embed_audio(self, codes: torch.Tensor) -> torch.Tensor:
        """``codes (B, Ty)`` -> ``(B, Ty, D)`` with positions restarting at 0."""
        return self.ar_audio_position(self.ar_audio_embedding(codes))

    # ------------------------------------------------------------------ training
    def forward(
        self,
        phones: torch.Tensor,
        phone_lens: torch.Tensor,
        bert: torch.Tensor,
        semantic: torch.Tensor,
        semantic_lens: torch.Tensor,
        upstream_padding: bool = False,
        top_k: int = 3,
    ) -> TeacherForcedOutput:
        """Teacher-forced pass over right-padded batches; the loss covers every semantic token and EOS.

        Args:
            phones: ``(B, Tx)`` phoneme ids, right-padded. phone_lens: ``(B,)``.
            bert: ``(B, bert_dim, Tx)`` BERT features, zero-padded.
            semantic: ``(B, Ty)`` semantic ids, right-padded (any pad value). semantic_lens: ``(B,)``.
            upstream_padding: reproduce upstream's training pass exactly, quirks included: the
                phoneme padding mask is built as if phonemes were LEFT-padded (``make_pad_mask_left``),
                so a shorter row hides its first ``Tx - len`` real phonemes and attends to its padded
                tail; the first prediction of every row comes from column ``Tx - 1`` even when that
                is padding; and padded target positions count as EOS in the loss. Only useful for
                loss-level parity with upstream. Default (False): each row is masked by its own
                lengths, predicts from its last real phoneme, and only its ``len + 1`` targets count,
                so a row's loss does not depend on what it is batched with.
            top_k: k of the reported accuracy (upstream logs top-3).
        """
        B, Tx = phones.shape
        Ty = semantic.shape[1]
        device = phones.device
        if bool((phone_lens < 1).any()) or bool((phone_lens > Tx).any()) or bool((semantic_lens > Ty).any()):
            raise ValueError(
                f"phone_lens must be in [1, {Tx}] and semantic_lens in [0, {Ty}]; "
                f"got {phone_lens.tolist()} and {semantic_lens.tolist()}"
            )
        y_pad = torch.arange(Ty, device=device)[None] >= semantic_lens[:, None]  # (B, Ty) True = pad
        codes = semantic.masked_fill(y_pad, 0)
        # Targets are the codes followed by EOS; padding positions read EOS too (upstream pad_y_eos).
        targets = F.pad(codes, (0, 1), value=0).masked_fill(F.pad(y_pad, (0, 1), value=True), self.config.eos)
        y_in = targets[:, :-1]  # (B, Ty): the audio input is the targets shifted right

        xy = torch.cat([self.embed_text(phones, bert), self.embed_audio(y_in)], dim=1)  # (B, Tx+Ty, D)
        cols = torch.arange(Tx + Ty, device=device)
        if upstream_padding:
            x_pad = cols[None, :Tx] < (Tx - phone_lens)[:, None]  # the left-pad quirk
        else:
            x_pad = cols[None, :Tx] >= phone_lens[:, None]
        key_ok = ~torch.cat([x_pad, y_pad], dim=1)  # (B, S)
        allowed = _text_audio_mask(Tx, Ty, device)[None] & key_ok[:, None, :]  # (B, S, S)
        h = self.h(xy, allowed[:, None])

        if upstream_padding:
            picked = h[:, Tx - 1 :]  # (B, Ty+1, D)
        else:
            first = (phone_lens - 1)[:, None]  # the last real phoneme predicts the first code
            rows = torch.cat([first, Tx + torch.arange(Ty, device=device)[None].expand(B, -1)], dim=1)
            picked = h.gather(1, rows[..., None].expand(-1, -1, h.shape[2]))
            beyond = torch.arange(Ty + 1, device=device)[None] > semantic_lens[:, None]
            targets = targets.masked_fill(beyond, IGNORE_TARGET)
        logits = self.ar_predict_layer(picked)
        loss = F.cross_entropy(logits.transpose(1, 2), targets, reduction="sum", ignore_index=IGNORE_TARGET)
        return TeacherForcedOutput(
            loss, _top_k_accuracy(logits, targets, top_k, self.config.eos), logits, targets
        )

    # ------------------------------------------------------------------ inference
    def set_precision(self, precision: str) -> None:
        """Choose the linear kernels of :meth:`prefill` / :meth:`step`.

        ``fp32`` (default) is exact float32 maths in packed kernels; ``reference`` the plain
        ``F.linear`` path; ``bf16``, ``int8`` and ``int8_dynamic`` are opt-in approximations that
        stream 2x / 4x / 4x fewer weight bytes (see :mod:`app.models.gpt.packed`).
        """
        resolve_precision(precision, self.ar_predict_layer.weight.device)
        self._precision = precision
        self._kernels = None

    @property
    def precision(self) -> str:
        return self._precision

    def new_cache(self, batch: int, capacity: int) -> KVCache:
        """A cache for ``batch`` rows of up to ``capacity`` columns (prefill width + new tokens)."""
        c = self.config
        w = self.ar_audio_embedding.word_embeddings.weight
        return KVCache(c.n_layer, c.n_head, c.head_dim, batch, capacity, w.device, self._kv_dtype())

    @torch.inference_mode()
    def prefill(
        self,
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
        kern = self._ensure_kernels()
        kv_dtype = torch.bfloat16 if kern.attention is not None else kern.dtype  # what step() reads
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
        dtype = self._stream_dtype()

        text = self.ar_text_embedding.word_embeddings(phones) + kern.bert_proj(bert.transpose(1, 2).to(dtype))
        text = text + self.ar_text_position.alpha * self._pe(Tx, device, dtype)
        if Ty:
            audio = self.ar_audio_embedding.word_embeddings(prompt)
            audio = audio + self.ar_audio_position.alpha * self._pe(Ty, device, dtype)

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
        allowed = _prefill_mask(offsets, x_lens, P, device)  # (B, 1, P, P)

        for i, lk in enumerate(kern.layers):
            xy = self._layer(xy, lk, cache, i, allowed, P)
        return kern.predict(xy[:, -1])

    @torch.inference_mode()
    def step(self, cache: KVCache, tokens: torch.Tensor) -> torch.Tensor:
        """Append one token per row (``tokens (B,)``) and return the next logits ``(B, vocab)``."""
        kern = self._kernels
        if kern is None:
            raise RuntimeError("GPT.step() before GPT.prefill(): prefill fills the cache first")
        B = cache.batch
        pos = cache.audio_pos[:B]
        x = self.ar_audio_embedding.word_embeddings(tokens[:B])
        pe = self._pe(cache.capacity, x.device, x.dtype)
        x = x + self.ar_audio_position.alpha * pe[pos]  # (B, D): one new column per row
        n = cache.length
        D = x.shape[1]
        H = self.config.n_head
        # The layer of _layer() for T = 1, written out: every call here is one torch op (no
        # reshapes of a (B, 1, D) layout, no Python wrappers); at batch 1 per-op overhead counts.
        layers = zip(kern.layers, cache.k_layers, cache.v_layers, strict=False)
        if kern.attention is not None:
            valid = cache.valid if cache.padded else None
            for lk, k_layer, v_layer in layers:
                att = kern.attention(lk.qkv(x), k_layer, v_layer, n, valid)  # (B, D); writes column n
                x = torch.layer_norm(x + lk.out(att), (D,), *lk.norm1, LAYER_NORM_EPS)
                x = torch.layer_norm(x + lk.ffn_out(lk.ffn_in(x)), (D,), *lk.norm2, LAYER_NORM_EPS)
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

    def _layer(
        self, x: torch.Tensor, lk: _LayerKernels, cache: KVCache, i: int, mask: torch.Tensor | None, end: int
    ) -> torch.Tensor:
        """One layer on the newest ``T`` columns ``x (B, T, D)``, keys/values written at ``[end-T, end)``."""
        B, T, D = x.shape
        H = self.config.n_head
        q, k, v = lk.qkv(x).view(B, T, 3, H, D // H).transpose(1, 3).unbind(2)  # 3 x (B, H, T, hd)
        k_layer, v_layer = cache.k_layers[i], cache.v_layers[i]  # (B, H, S, hd)
        k_layer.narrow(2, end - T, T).copy_(k)
        v_layer.narrow(2, end - T, T).copy_(v)
        if k_layer.dtype == q.dtype:
            keys, values = k_layer.narrow(2, 0, end), v_layer.narrow(2, 0, end)
        elif end == T:  # a bf16 cache filled by this pass: attend its exact float32 keys
            keys, values = k, v
        else:
            raise RuntimeError("a low-precision KV cache is only read by the decoding step")
        att = F.scaled_dot_product_attention(q, keys, values, mask)
        x = F.layer_norm(x + lk.out(att.transpose(1, 2).reshape(B, T, D)), (D,), *lk.norm1, LAYER_NORM_EPS)
        return F.layer_norm(x + lk.ffn_out(lk.ffn_in(x)), (D,), *lk.norm2, LAYER_NORM_EPS)

    def _stream_dtype(self) -> torch.dtype:
        return self.ar_audio_embedding.word_embeddings.weight.dtype

    def _native_attention(self) -> AttentionFn | None:
        """The native step attention where the precision is approximate anyway (CPU, float32 model)."""
        device = self.ar_predict_layer.weight.device
        if device.type != "cpu" or self._stream_dtype() != torch.float32:
            return None
        if resolve_precision(self._precision, device) not in APPROXIMATE:
            return None
        from app.models.gpt.native import HEAD_DIMS, attention_kernel  # here: `python -m` runs that module

        if self.config.head_dim not in HEAD_DIMS:
            return None
        return attention_kernel()

    def _kv_dtype(self) -> torch.dtype:
        """bfloat16 under the native attention (half the bytes the step reads), else the model's dtype."""
        return torch.bfloat16 if self._native_attention() is not None else self._stream_dtype()

    def _pe(self, length: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        table = getattr(self, "_pe_table", None)
        if table is None or table.shape[0] < length or table.device != device or table.dtype != dtype:
            table = sine_table(max(length, 2048), self.config.dim).to(device, dtype)
            self._pe_table = table
        return table[:length]

    def _ensure_kernels(self) -> _Kernels:
        """Pack the linear weights for decoding, again whenever a parameter changed since the last pack."""
        device = self.ar_predict_layer.weight.device
        dtype = self._stream_dtype()
        versions = tuple(p._version for p in self.parameters())
        kern = self._kernels
        if kern is not None and (kern.versions, kern.device, kern.dtype) == (versions, device, dtype):
            return kern
        precision = resolve_precision(self._precision, device)
        if dtype != torch.float32:
            # A model cast to fp16/bf16 as a whole (upstream's is_half on GPU) runs its own weights.
            precision = "reference"

        def pack(lin_w: torch.Tensor, lin_b: torch.Tensor | None, relu: bool = False) -> LinearFn:
            return pack_linear(lin_w, lin_b, precision, relu)

        layers = []
        for layer in self.h.layers:
            att = layer.self_attn
            layers.append(
                _LayerKernels(
                    qkv=pack(att.in_proj_weight, att.in_proj_bias),
                    out=pack(att.out_proj.weight, att.out_proj.bias),
                    ffn_in=pack(layer.linear1.weight, layer.linear1.bias, relu=True),
                    ffn_out=pack(layer.linear2.weight, layer.linear2.bias),
                    norm1=(layer.norm1.weight.detach(), layer.norm1.bias.detach()),
                    norm2=(layer.norm2.weight.detach(), layer.norm2.bias.detach()),
                )
            )
        self._kernels = _Kernels(
            precision=precision,
            device=device,
            dtype=dtype,
            versions=versions,
            attention=self._native_attention(),
            bert_proj=pack(self.bert_proj.weight, self.bert_proj.bias),
            predict=pack(self.ar_predict_layer.weight, None),
            layers=layers,
        )
        return self._kernels


def _lengths(lens: torch.Tensor | None, batch: int, width: int, name: str) -> list[int]:
    if lens is None:
        return [width] * batch
    values = [int(v) for v in lens.tolist()]
    if len(values) != batch or any(v < 0 or v > width for v in values):
        raise ValueError(f"{name} must hold {batch} lengths in [0, {width}], got {values}")
    return values


def _text_audio_mask(Tx: int, Ty: int, device: torch.device) -> torch.Tensor:
    """``(Tx+Ty, Tx+Ty)`` bool, True = may attend: text rows see text; audio rows see text + causal audio."""
    S = Tx + Ty
    q = torch.arange(S, device=device)[:, None]
    k = torch.arange(S, device=device)[None, :]
    return (k < Tx) | ((q >= Tx) & (k <= q))


def _prefill_mask(offsets: list[int], x_lens: list[int], width: int, device: torch.device) -> torch.Tensor:
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


def _top_k_accuracy(logits: torch.Tensor, targets: torch.Tensor, k: int, eos: int) -> torch.Tensor:
    """Micro top-k accuracy over targets that are neither EOS nor ignored (0 when none count)."""
    counted = (targets != eos) & (targets != IGNORE_TARGET)
    hits = (logits.topk(min(k, logits.shape[-1]), dim=-1).indices == targets[..., None]).any(-1)
    n = counted.sum()
    return (hits & counted).sum() / torch.where(n == 0, torch.ones_like(n), n)
