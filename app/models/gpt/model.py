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
- decoding, token by token on a KV cache, is the engine's (:mod:`app.models.gpt.engine`); every
  model carries one as ``gpt.engine``, and :meth:`GPT.set_precision`, :meth:`GPT.prefill` and
  :meth:`GPT.step` are short-cuts to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from app.models.gpt.cache import KVCache
from app.models.gpt.config import GPTConfig
from app.models.gpt.engine import DecodingEngine
from app.models.gpt.layers import LayerStack, ScaledSinePosition, TokenEmbedding

# Targets ignored by the cross-entropy in correctly masked batches (padding beyond a row's EOS).
IGNORE_TARGET = -100


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
        # Decoding state (precision, packed kernels): not part of the weights, never saved.
        self.engine = DecodingEngine()

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

    # ------------------------------------------------------------------ decoding (the engine's)
    # Short-cuts for callers that hold only the model (pipeline, benchmarks, parity tests); the
    # generate loop calls the engine itself, so the step pays no extra call.
    def set_precision(self, precision: str) -> None:
        """Decode with ``precision`` kernels from now on: see :meth:`DecodingEngine.set_precision`."""
        self.engine.set_precision(precision, self.ar_predict_layer.weight.device)

    @property
    def precision(self) -> str:
        return self.engine.precision

    def new_cache(self, batch: int, capacity: int) -> KVCache:
        """A cache for ``batch`` rows of up to ``capacity`` columns (prefill width + new tokens)."""
        return self.engine.new_cache(self, batch, capacity)

    def prefill(
        self,
        cache: KVCache,
        phones: torch.Tensor,
        bert: torch.Tensor,
        prompt: torch.Tensor | None = None,
        phone_lens: torch.Tensor | None = None,
        prompt_lens: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Fill ``cache`` with text + prompt, return next-token logits: see :meth:`DecodingEngine.prefill`."""
        return self.engine.prefill(self, cache, phones, bert, prompt, phone_lens, prompt_lens)

    def step(self, cache: KVCache, tokens: torch.Tensor) -> torch.Tensor:
        """Append one token per row, return the next logits: see :meth:`DecodingEngine.step`."""
        return self.engine.step(cache, tokens)


def _text_audio_mask(Tx: int, Ty: int, device: torch.device) -> torch.Tensor:
    """``(Tx+Ty, Tx+Ty)`` bool, True = may attend: text rows see text; audio rows see text + causal audio."""
    S = Tx + Ty
    q = torch.arange(S, device=device)[:, None]
    k = torch.arange(S, device=device)[None, :]
    return (k < Tx) | ((q >= Tx) & (k <= q))


def _top_k_accuracy(logits: torch.Tensor, targets: torch.Tensor, k: int, eos: int) -> torch.Tensor:
    """Micro top-k accuracy over targets that are neither EOS nor ignored (0 when none count)."""
    counted = (targets != eos) & (targets != IGNORE_TARGET)
    hits = (logits.topk(min(k, logits.shape[-1]), dim=-1).indices == targets[..., None]).any(-1)
    n = counted.sum()
    return (hits & counted).sum() / torch.where(n == 0, torch.ones_like(n), n)
