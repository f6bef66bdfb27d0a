"""Stage 3, phones + BERT + the reference's tokens -> semantic tokens: the GPT, several segments at once.

Each row is a segment's phones prefixed with the prompt text's (BERT likewise), prompted with the
reference's semantic tokens; rows are right-padded and decoded in one batched sampling loop
(:func:`app.models.gpt.engine.generate`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from app.infer.request import TTSRequest
from app.models.gpt import MAX_NEW_TOKENS, SamplingOptions, TokenChunk, generate
from app.models.gpt.attention import text_attention

TOKEN_RATE = 25  # semantic tokens per second; upstream stops the GPT after 25 * max_sec tokens


def token_limit(max_sec: int | None) -> int:
    """Tokens a GPT file allows per segment; upstream: early_stop_num = 25 * max_sec, and it stops
    once more tokens than that exist."""
    return TOKEN_RATE * max_sec + 1 if max_sec else MAX_NEW_TOKENS


def sampling_options(request: TTSRequest, max_new_tokens: int) -> SamplingOptions:
    """The GPT sampling of ``request`` (its seed is set per batch by the runner)."""
    return SamplingOptions(
        top_k=int(request.top_k),
        top_p=float(request.top_p),
        temperature=float(request.temperature),
        repetition_penalty=float(request.repetition_penalty),
        max_new_tokens=max_new_tokens,
    )


def generate_tokens(
    gpt: torch.nn.Module,
    device: torch.device,
    phones: Sequence[Sequence[int] | torch.Tensor],
    berts: Sequence[torch.Tensor],
    prompt_tokens: torch.Tensor | None,
    options: SamplingOptions,
    chunk_tokens: int | None = None,
) -> Iterator[TokenChunk]:
    """Decode rows of (phones (n_i,), bert (bert_dim, n_i)) together; yields token chunks.

    Rows are right-padded; every row gets the same prompt. See :func:`app.models.gpt.generate`.
    """
    lens = [len(p) for p in phones]
    B, width = len(lens), max(lens)
    ids = torch.zeros(B, width, dtype=torch.long)
    bert = torch.zeros(B, gpt.config.bert_dim, width)
    for b, (p, f) in enumerate(zip(phones, berts, strict=True)):
        ids[b, : lens[b]] = torch.as_tensor(p, dtype=torch.long)
        bert[b, :, : lens[b]] = f
    prompt = None if prompt_tokens is None else prompt_tokens.view(1, -1).expand(B, -1).to(device)
    phone_lens = None if len(set(lens)) == 1 else torch.tensor(lens)
    return generate(
        gpt,
        ids.to(device),
        bert.to(device),
        prompt,
        options,
        phone_lens=phone_lens,
        chunk_tokens=chunk_tokens,
    )


def token_attention(
    gpt: torch.nn.Module,
    phones: Sequence[int],
    bert: torch.Tensor,
    prompt_tokens: torch.Tensor | None,
    tokens: torch.Tensor,
) -> torch.Tensor:
    """``(N, n)`` attention of a row's ``N`` generated tokens over its ``n`` phones (prompt's first).

    See :func:`app.models.gpt.attention.text_attention`.
    """
    ids = torch.as_tensor(list(phones), dtype=torch.long)
    return text_attention(gpt, ids, bert, prompt_tokens, tokens)  # type: ignore[arg-type]
