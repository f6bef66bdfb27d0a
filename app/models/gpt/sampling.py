"""How each decoding step chooses semantic tokens: options, the logit rules, and the records of the loop.

Per step, in upstream's order (``AR/models/utils.py`` ``logits_to_probs`` + ``infer_panel_naive``):

1. while fewer than ``min_tokens_before_eos`` tokens exist, the EOS column is cut off the logits;
2. repetition penalty on every id present in prompt + generated tokens (each id once, however often
   it occurs): ``l / p`` where ``l > 0``, ``l * p`` otherwise;
3. the penalised argmax is kept for the stop rule;
4. top-p on the penalised, untempered distribution: a token survives when the cumulative
   probability of the tokens sorted before it, itself included, is <= top_p (upstream does not
   shift this mask, so it is stricter than the usual nucleus); the best token always survives;
5. temperature: logits / max(T, 1e-5);
6. top-k: logits below the k-th best become -inf (ties survive);
7. softmax, then "multinomial without sync": argmax(p / q) with q ~ Exp(1) drawn per entry;
8. a row stops when the sampled id or the penalised argmax is EOS (the EOS is not emitted), or
   when it reached ``max_new_tokens`` (its last token is kept).

Steps 2-7 are :func:`choose_tokens`; steps 1 and 8 belong to the loop, :func:`app.models.gpt.engine.generate`,
which decodes rows together on one :class:`~app.models.gpt.cache.KVCache`, drops finished rows from
it so the remaining ones run at their own batch size, and reports :class:`TokenChunk` s as they come
(streaming); :func:`app.models.gpt.engine.decode` collects them into a :class:`DecodeResult`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Upstream's loop runs at most 1500 steps (60 s of 25 Hz codes).
MAX_NEW_TOKENS = 1500
# Upstream removes the EOS column while idx < 11: at least 11 tokens (0.44 s) before a stop.
MIN_TOKENS_BEFORE_EOS = 11
# Temperatures are floored here before dividing (upstream).
MIN_TEMPERATURE = 1e-5


@dataclass(frozen=True)
class SamplingOptions:
    """How tokens are chosen; defaults are upstream's UI / API defaults (v2)."""

    # Keep only the k best logits (after penalty and temperature); 0 or less disables the filter.
    top_k: int = 15
    # Nucleus filter on the penalised, untempered distribution; 1.0 disables it.
    top_p: float = 1.0
    # Divides the logits (floored at 1e-5); values near 0 approach greedy decoding.
    temperature: float = 1.0
    # Penalty on ids already present in prompt + output; 1.0 disables it.
    repetition_penalty: float = 1.35
    # Hard limit of generated tokens per row (the last one is kept when the limit stops a row).
    max_new_tokens: int = MAX_NEW_TOKENS
    # EOS cannot be chosen before this many tokens were generated.
    min_tokens_before_eos: int = MIN_TOKENS_BEFORE_EOS
    # Never stop on EOS (the EOS column is removed at every step): fixed-length decoding, benchmarks.
    suppress_eos: bool = False
    # Seed of a private random generator; None uses torch's global generator.
    seed: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")
        if self.max_new_tokens < 1 or self.min_tokens_before_eos < 0:
            raise ValueError("max_new_tokens must be >= 1 and min_tokens_before_eos >= 0")


@dataclass(frozen=True)
class TokenChunk:
    """Tokens produced since the previous chunk, per row of the request."""

    # One (n,) long tensor per request row (n may be 0), in request order.
    tokens: tuple[torch.Tensor, ...]
    # Rows that ended in this chunk (EOS or token limit).
    finished: tuple[bool, ...]
    # Rows that ended on EOS (so far); False for rows still running or stopped by the limit.
    stopped_on_eos: tuple[bool, ...]
    # Decoding steps run so far.
    steps: int


@dataclass(frozen=True)
class DecodeResult:
    """All generated tokens of a request."""

    # One (n,) long tensor per row: the semantic ids, EOS excluded.
    tokens: tuple[torch.Tensor, ...]
    # True where the row ended on EOS, False where max_new_tokens stopped it.
    stopped_on_eos: tuple[bool, ...]
    # Decoding steps run (the longest row's length).
    steps: int


def choose_tokens(
    logits: torch.Tensor, seen: torch.Tensor, options: SamplingOptions, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Steps 2-7 of the module docstring on ``logits (B, V)``; returns (sampled ids, penalised argmax).

    ``seen (B, >= V)`` marks ids present in prompt + output. ``logits`` is not modified.
    """
    V = logits.shape[1]
    logits = logits.float()
    p = options.repetition_penalty
    if p != 1.0:
        penalised = torch.where(logits < 0, logits * p, logits / p)
        logits = torch.where(seen[:, :V], penalised, logits)
    greedy = logits.argmax(dim=-1)
    if options.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        drop = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1) > options.top_p
        drop[:, 0] = False
        logits = logits.masked_fill(drop.scatter(1, order, drop), float("-inf"))
    if options.temperature != 1.0:
        logits = logits / max(options.temperature, MIN_TEMPERATURE)
    if options.top_k > 0:
        kth = torch.topk(logits, min(options.top_k, V), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    noise = torch.empty_like(probs).exponential_(1, generator=generator)
    return (probs / noise).argmax(dim=-1), greedy
