"""Autoregressive decoding of semantic tokens: the one sampling loop.

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

Rows are decoded together on one :class:`~app.models.gpt.cache.KVCache`; finished rows are dropped
from the cache so the remaining ones run at their own batch size. :func:`generate` yields token
chunks as they come (streaming); :func:`decode` collects them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from app.models.gpt.cache import KVCache
from app.models.gpt.model import GPT

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


def generate(
    model: GPT,
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
    """Decode every row (inputs as :meth:`GPT.prefill`) and yield :class:`TokenChunk` s.

    A chunk is yielded every ``chunk_tokens`` steps (None: only at the end) and whenever a row
    finishes. ``cache`` may be reused across calls (it must hold the rows and prefill width +
    ``max_new_tokens`` columns); by default one is allocated.
    """
    opt = options or SamplingOptions()
    B = phones.shape[0]
    eos = model.config.eos
    device = phones.device
    width = phones.shape[1] + (0 if prompt is None else prompt.shape[1])
    own_cache = cache is None
    if cache is None:
        cache = model.new_cache(B, width + opt.max_new_tokens)
    elif cache.capacity < width + opt.max_new_tokens or cache.max_batch < B:
        raise ValueError(
            f"the KV cache holds {cache.max_batch} rows x {cache.capacity} columns; this request needs "
            f"{B} rows x {width + opt.max_new_tokens} (prefill {width} + max_new_tokens {opt.max_new_tokens})"
        )
    generator = None
    if opt.seed is not None:
        generator = torch.Generator(device=device).manual_seed(opt.seed)

    # No grad-mode context is held across the yields below (it would leak into the consumer);
    # prefill() and step() run in inference mode themselves.
    logits = model.prefill(cache, phones, bert, prompt, phone_lens, prompt_lens)
    # seen[i, id]: id occurs in the prompt or output of active row i (repetition penalty).
    seen = torch.zeros(B, model.config.vocab_size, dtype=torch.bool, device=device)
    if prompt is not None and prompt.shape[1]:
        valid = (
            torch.arange(prompt.shape[1], device=device)[None] < _row_lengths(prompt_lens, prompt)[:, None]
        )
        seen.scatter_(1, prompt.masked_fill(~valid, eos), valid)  # padding writes False onto EOS
    out = torch.empty(B, opt.max_new_tokens, dtype=torch.long, device=device)
    active = list(range(B))  # request row of each cache row
    rows = torch.arange(B, device=device)
    lengths, emitted = [0] * B, [0] * B
    on_eos = [False] * B
    step = 0
    while True:
        allow_eos = not opt.suppress_eos and step >= opt.min_tokens_before_eos
        # Upstream cuts the EOS column off (rather than masking it) while EOS is not allowed.
        tokens, greedy = choose_tokens(logits if allow_eos else logits[:, :eos], seen, opt, generator)
        out[rows, step] = tokens
        step += 1
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
        if ended or (chunk_tokens and step % chunk_tokens == 0):
            done = {active[i] for i in ended}
            yield _chunk(out, lengths, emitted, done, on_eos, step)
        if len(ended) == len(active):
            return
        seen.scatter_(1, tokens[:, None], True)
        if ended:
            keep = torch.tensor([i for i in range(len(active)) if i not in ended], device=device)
            active = [active[i] for i in keep.tolist()]
            rows, seen, tokens = rows[keep], seen[keep], tokens[keep]
            cache.keep(keep)
        logits = model.step(cache, tokens)


def decode(
    model: GPT,
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
