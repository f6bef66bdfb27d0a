"""Conditional flow matching (CFM) mel generator of GPT-SoVITS v3/v4: the DiT estimator and the
Euler sampler (upstream ``module/models.py`` ``CFM`` and ``f5_tts/model/backbones/dit.py``).

The DiT predicts a velocity ``v(x_t, t)`` that carries noise (t = 0) to a normalised mel (t = 1),
conditioned on 512-wide frame features (``wns1`` output), a prompt mel whose frames are known
(the reference), the time t and the Euler step size d ("shortcut" conditioning). Key names equal
upstream's (``cfm.estimator.*``). :meth:`CFM.loss` is upstream's training objective.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from app.models.nn.dit import (
    AdaLayerNormZeroFinal,
    ConvNeXtV2Block,
    ConvPositionEmbedding,
    DiTBlock,
    TimestepEmbedding,
)
from app.models.nn.masks import sequence_mask
from app.models.nn.rotary import RotaryEmbedding

# Sinusoidal positions added to the condition before its ConvNeXt blocks are tabulated for this
# many frames; later frames reuse the last row (upstream precompute_max_pos, ~44 s at 24 kHz/256).
MAX_CONDITION_POSITIONS = 4096
CONDITION_POS_BASE = 10000.0
# ConvNeXt expansion of the condition blocks (upstream conv_mult).
CONDITION_CONV_MULT = 2
# Training (upstream CFM.forward): with this probability a batch learns a "shortcut" step of size
# 2d (d = 2^-k, k uniform in [2, 8)) from two teacher steps of size d; teacher steps smaller than
# 1e-2 are conditioned as d = 0 (the plain flow-matching velocity).
SHORTCUT_PROB = 0.3
SHORTCUT_MIN_EXP, SHORTCUT_MAX_EXP = 2, 8
SHORTCUT_MIN_D = 1e-2


def condition_positions(length: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """(length, dim) float32 ``[cos(n f_i) | sin(n f_i)]``, f_i = 10000^(-2i/dim), n capped at 4095
    (upstream ``precompute_freqs_cis`` rows picked by ``get_pos_embed_indices``)."""
    freqs = 1.0 / (CONDITION_POS_BASE ** (torch.arange(0, dim, 2, device=device)[: dim // 2].float() / dim))
    positions = torch.arange(length, device=device).clamp(max=MAX_CONDITION_POSITIONS - 1).float()
    angles = torch.outer(positions, freqs)  # (length, dim/2)
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


class ConditionEmbedding(nn.Module):
    """The frame condition (``text_embed``): + sinusoidal positions, then ConvNeXt-V2 blocks.

    With ``conv_layers == 0`` the condition passes unchanged (upstream ``extra_modeling`` off).
    """

    def __init__(self, dim: int, conv_layers: int) -> None:
        super().__init__()
        self.dim = dim
        self.conv_layers = conv_layers
        if conv_layers > 0:
            self.text_blocks = nn.Sequential(
                *[ConvNeXtV2Block(dim, dim * CONDITION_CONV_MULT) for _ in range(conv_layers)]
            )

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        """(B, N, dim) -> (B, N, dim)"""
        if self.conv_layers == 0:
            return cond
        cond = cond + condition_positions(cond.shape[1], self.dim, cond.device).to(cond.dtype)
        return self.text_blocks(cond)


class InputEmbedding(nn.Module):
    """``[x_t | prompt mel | condition]`` -> Linear -> + convolutional position embedding."""

    def __init__(self, mel_dim: int, cond_dim: int, out_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(mel_dim * 2 + cond_dim, out_dim)
        self.conv_pos_embed = ConvPositionEmbedding(out_dim)

    def forward(self, x: torch.Tensor, prompt: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """x, prompt (B, N, mel_dim), cond (B, N, cond_dim) -> (B, N, out_dim)"""
        h = self.proj(torch.cat((x, prompt, cond), dim=-1))
        return self.conv_pos_embed(h) + h


@dataclass(frozen=True)
class DiTCondition:
    """What stays fixed over the sampling steps of one chunk (upstream's text/dt caches)."""

    cond: torch.Tensor  # (B, N, cond_dim) embedded frame condition
    step: torch.Tensor  # (B, dim) embedding of the step size d


class DiT(nn.Module):
    """The velocity estimator (upstream ``DiT``; ``long_skip_connection`` off as GPT-SoVITS builds it).

    Args:
        dim: transformer width (1024 upstream).
        depth: DiT blocks (22).
        heads, dim_head: attention shape (16 x 64).
        ff_mult: feed-forward factor (2).
        mel_dim: mel bins (100).
        cond_dim: width of the frame condition (512, upstream ``text_dim``).
        conv_layers: ConvNeXt-V2 blocks on the condition (4).
        dropout: dropout of the blocks (0.1; off in eval).
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        heads: int,
        dim_head: int,
        ff_mult: int,
        mel_dim: int,
        cond_dim: int,
        conv_layers: int,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.time_embed = TimestepEmbedding(dim)
        self.d_embed = TimestepEmbedding(dim)
        self.text_embed = ConditionEmbedding(cond_dim, conv_layers)
        self.input_embed = InputEmbedding(mel_dim, cond_dim, dim)
        self.rotary_embed = RotaryEmbedding(dim_head)
        self.transformer_blocks = nn.ModuleList(
            [DiTBlock(dim, heads, dim_head, ff_mult, dropout) for _ in range(depth)]
        )
        self.norm_out = AdaLayerNormZeroFinal(dim)
        self.proj_out = nn.Linear(dim, mel_dim)

    def condition(self, cond: torch.Tensor, d: torch.Tensor) -> DiTCondition:
        """cond (B, N, cond_dim) frame features, d (B,) step sizes -> the per-chunk constants."""
        return DiTCondition(cond=self.text_embed(cond), step=self.d_embed(d))

    def velocity(
        self,
        x: torch.Tensor,
        prompt: torch.Tensor,
        t: torch.Tensor,
        condition: DiTCondition,
        mask: torch.Tensor | None = None,
        grad_checkpoint: bool = False,
    ) -> torch.Tensor:
        """Velocity at time t.

        Args:
            x: (B, N, mel_dim) current sample (prompt frames zeroed).
            prompt: (B, N, mel_dim) known mel frames, zeros elsewhere.
            t: (B,) flow time in [0, 1].
            condition: from :meth:`condition`.
            mask: (B, N) True at valid frames, or None when every frame is valid.
            grad_checkpoint: training only: recompute each block's activations in the backward
                pass instead of keeping them (upstream ``use_grad_ckpt``: less memory, ~1/3 slower).

        Returns:
            (B, N, mel_dim)
        """
        time = self.time_embed(t) + condition.step  # (B, dim)
        h = self.input_embed(x, prompt, condition.cond)  # (B, N, dim)
        rope = self.rotary_embed(h.shape[1])
        recompute = grad_checkpoint and torch.is_grad_enabled()
        for block in self.transformer_blocks:
            if recompute:
                h = checkpoint(block, h, time, rope, mask, use_reentrant=False)
            else:
                h = block(h, time, rope, mask)
        return self.proj_out(self.norm_out(h, time))

    def forward(
        self,
        x: torch.Tensor,
        prompt: torch.Tensor,
        cond: torch.Tensor,
        t: torch.Tensor,
        d: torch.Tensor,
        lengths: torch.Tensor | None = None,
        grad_checkpoint: bool = False,
    ) -> torch.Tensor:
        """One velocity from scratch: x, prompt (B, N, mel), cond (B, N, cond_dim), t, d (B,),
        lengths (B,) valid frames or None -> (B, N, mel); ``grad_checkpoint`` as :meth:`velocity`."""
        mask = None if lengths is None else sequence_mask(lengths, x.shape[1])
        return self.velocity(x, prompt, t, self.condition(cond, d), mask, grad_checkpoint)


class CFM(nn.Module):
    """Flow-matching sampler around the estimator (upstream ``CFM``; only ``estimator`` has weights).

    Args:
        estimator: the :class:`DiT`.
        mel_bins: channels of the generated mel (100).
    """

    def __init__(self, estimator: DiT, mel_bins: int) -> None:
        super().__init__()
        self.estimator = estimator
        self.mel_bins = mel_bins

    def sample(
        self, cond: torch.Tensor, prompt: torch.Tensor, steps: int, noise: torch.Tensor
    ) -> torch.Tensor:
        """Euler integration from noise to mel with the prompt frames held (upstream ``inference``,
        guidance off).

        Args:
            cond: (B, cond_dim, N) frame features of prompt + target.
            prompt: (B, mel_bins, P) normalised mel of the first P frames, P <= N.
            steps: Euler steps (step size d = 1 / steps).
            noise: (B, mel_bins, N) starting point (the only random input).

        Returns:
            (B, mel_bins, N) normalised mel; the first P frames are zero (the caller drops them).
        """
        if steps < 1:
            raise ValueError(f"sample_steps must be at least 1, got {steps}")
        b, _, n = noise.shape
        p = prompt.shape[-1]
        if cond.shape[-1] != n or p > n:
            raise ValueError(
                f"cond has {cond.shape[-1]} frames, noise {n}, prompt {p}: need cond == noise >= prompt"
            )
        x = noise.clone()
        x[..., :p] = 0  # the prompt frames are given, not generated
        prompt_x = torch.zeros_like(x)
        prompt_x[..., :p] = prompt
        prompt_x = prompt_x.transpose(1, 2)  # (B, N, mel)
        d = 1 / steps
        condition = self.estimator.condition(
            cond.transpose(1, 2), torch.full((b,), d, dtype=cond.dtype, device=cond.device)
        )
        t = 0.0  # accumulated in Python floats, as upstream
        for _ in range(steps):
            t_batch = torch.full((b,), t, dtype=cond.dtype, device=cond.device)
            v = self.estimator.velocity(x.transpose(1, 2), prompt_x, t_batch, condition).transpose(1, 2)
            x = x + d * v  # Euler step
            t = t + d
            x[..., :p] = 0
        return x

    def loss(
        self,
        mel: torch.Tensor,
        lengths: torch.Tensor,
        prompt_lengths: torch.Tensor,
        cond: torch.Tensor,
        grad_checkpoint: bool = False,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Flow-matching training loss (upstream ``CFM.forward``).

        Per item a time t ~ U[0, 1) and noise x0 give ``x_t = x0 + t (x1 - x0)``; the first
        ``prompt_lengths`` frames are given as the prompt (and zeroed in x_t). The estimator
        learns the velocity ``x1 - x0`` (step condition d = 0), or, in a "shortcut" batch
        (probability :data:`SHORTCUT_PROB`), the mean of two detached teacher velocities taken a
        step d apart (condition 2d). The loss is the MSE over the frames after the prompt and
        before ``lengths``, averaged per item, then over the batch.

        Args:
            mel: (B, mel_bins, N) normalised target mel (x1), zero-padded.
            lengths: (B,) valid frames (the attention mask; frames past N count as N).
            prompt_lengths: (B,) prompt frames, each below its item's valid frames.
            cond: (B, cond_dim, N) frame features (``wns1`` output).
            grad_checkpoint: recompute the DiT blocks in the backward pass (less memory).
            generator: random source of t, x0 and the shortcut draw (None: torch's global one).

        Returns:
            () float32 loss.
        """
        b, _, n = mel.shape
        end = lengths.clamp(max=n)
        if bool((prompt_lengths >= end).any()):
            raise ValueError(
                f"every item needs frames after its prompt: prompt lengths {prompt_lengths.tolist()}, "
                f"valid frames {end.tolist()}"
            )
        device = mel.device
        t = torch.rand(b, device=device, generator=generator).to(mel.dtype)
        x0 = torch.randn(mel.shape, device=device, generator=generator).to(mel.dtype)
        target = mel - x0  # (B, mel, N) velocity of the straight path
        frames = torch.arange(n, device=device)
        known = (frames[None] < prompt_lengths[:, None])[:, None]  # (B, 1, N) prompt frames
        x_t = (x0 + t[:, None, None] * target).masked_fill(known, 0.0)
        prompt = mel.masked_fill(~known, 0.0)

        def velocity(x: torch.Tensor, time: torch.Tensor, d: torch.Tensor, ckpt: bool) -> torch.Tensor:
            out = self.estimator(
                x.transpose(1, 2), prompt.transpose(1, 2), cond.transpose(1, 2), time, d, lengths, ckpt
            )
            return out.transpose(1, 2)  # (B, mel, N)

        d = torch.zeros_like(t)
        if float(torch.rand((), device=device, generator=generator)) < SHORTCUT_PROB:
            k = torch.randint(SHORTCUT_MIN_EXP, SHORTCUT_MAX_EXP, (b,), device=device, generator=generator)
            step = torch.pow(2.0, -k.to(t.dtype))  # (B,) teacher step size
            step_in = torch.where(step < SHORTCUT_MIN_D, torch.zeros_like(step), step)
            with torch.no_grad():  # upstream detaches both teacher velocities
                v1 = velocity(x_t, t, step_in, False)
                v2 = velocity(x_t + step[:, None, None] * v1, t + step, step_in, False)
            target = (v1 + v2) / 2
            d = 2 * step
        predicted = velocity(x_t, t, d, grad_checkpoint)
        scored = ((frames[None] < end[:, None]) & (frames[None] >= prompt_lengths[:, None]))[:, None]
        error = (predicted.float() - target.float()).pow(2) * scored  # (B, mel, N)
        per_item = error.sum(dim=(1, 2)) / (scored.sum(dim=(1, 2)) * mel.shape[1])  # (B,)
        return per_item.mean()
