"""Tiny random GPTs shared by the GPT model, sampling and file tests."""

from __future__ import annotations

import torch

from app.models.gpt.config import GPTConfig
from app.models.gpt.model import GPT

PHONEMES = {"v1": 512, "v2": 732}


def tiny_config(version: str = "v2", dim: int = 32, n_head: int = 4, n_layer: int = 2) -> GPTConfig:
    return GPTConfig(phoneme_vocab_size=PHONEMES[version], dim=dim, n_head=n_head, n_layer=n_layer)


def tiny_gpt(version: str = "v2", seed: int = 0, **sizes: int) -> GPT:
    """A tiny GPT in eval mode whose constant-initialised tensors (norms, biases, alphas) are perturbed."""
    torch.manual_seed(seed)
    model = GPT(tiny_config(version, **sizes))
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1:
                p.add_(torch.randn(p.shape, generator=gen) * 0.1)
            if "embeddings" in name:
                p.mul_(0.5)
    return model.eval()


def tiny_inputs(
    model: GPT, tx: int, ty: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(phones (1, tx), bert (1, bert_dim, tx), prompt (1, ty)) drawn at random."""
    gen = torch.Generator().manual_seed(seed)
    c = model.config
    phones = torch.randint(1, c.phoneme_vocab_size, (1, tx), generator=gen)
    bert = torch.randn(1, c.bert_dim, tx, generator=gen) * 0.1
    prompt = torch.randint(0, c.vocab_size - 1, (1, ty), generator=gen)
    return phones, bert, prompt


def pad_batch(rows: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]):
    """Right-pad several (phones, bert, prompt/semantic) rows into one batch with lengths."""
    B = len(rows)
    tx = max(r[0].shape[1] for r in rows)
    ty = max(r[2].shape[1] for r in rows)
    phones = torch.zeros(B, tx, dtype=torch.long)
    bert = torch.zeros(B, rows[0][1].shape[1], tx)
    codes = torch.full((B, ty), 1024, dtype=torch.long)
    for b, (p, be, c) in enumerate(rows):
        phones[b, : p.shape[1]] = p[0]
        bert[b, :, : p.shape[1]] = be[0]
        codes[b, : c.shape[1]] = c[0]
    x_lens = torch.tensor([r[0].shape[1] for r in rows])
    y_lens = torch.tensor([r[2].shape[1] for r in rows])
    return phones, x_lens, bert, codes, y_lens


def batched_and_single_logits(model: GPT, rows: list, steps: torch.Tensor) -> list[tuple]:
    """Rows decoded together (padded) and each alone: ``(batched row b, alone)`` logits per step.

    ``rows``: (phones, bert, prompt) of each row; ``steps (B, n)``: the tokens fed at each step.
    """
    phones, x_lens, bert, prompt, y_lens = pad_batch(rows)
    n = steps.shape[1] - 1
    cache = model.new_cache(len(rows), phones.shape[1] + prompt.shape[1] + n)
    pairs = []
    with torch.inference_mode():
        batch = [model.prefill(cache, phones, bert, prompt, x_lens, y_lens)]
        batch += [model.step(cache, steps[:, i]) for i in range(n)]
        assert cache.padded
        for b, (p, be, pr) in enumerate(rows):
            single = model.new_cache(1, phones.shape[1] + prompt.shape[1] + n)
            alone = [model.prefill(single, p, be, pr if pr.shape[1] else None)]
            alone += [model.step(single, steps[b : b + 1, i]) for i in range(n)]
            pairs += [(got[b], want[0]) for got, want in zip(batch, alone, strict=True)]
    return pairs
