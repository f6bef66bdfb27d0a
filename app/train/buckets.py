"""Batch plans that group clips of similar length, deterministic per (seed, epoch), split across ranks.

Two plans, as upstream builds its batches:

- :func:`boundary_batches` (SoVITS, upstream ``module/data_utils.DistributedBucketSampler``): clips
  go into buckets by length in frames between ``boundaries`` (clips outside are left out); each
  bucket is shuffled and topped up by repetition to a multiple of ``world * batch_size``; each rank
  takes every ``world``-th clip and cuts its share into batches; the batch order is shuffled.
- :func:`duration_batches` (GPT, upstream ``AR/data/bucket_sampler``): clips sorted by duration fall
  into buckets ``width_s`` seconds wide, each shuffled; the concatenation is cut into groups of
  ``world * batch_size``, the groups shuffled, and each group split into one batch per rank.

:class:`PlannedBatches` hands a plan to a ``DataLoader`` as its ``batch_sampler``; ``skip`` drops
the first batches of an epoch when a run resumes mid-epoch.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable, Iterator, Sequence

import torch
from torch.utils.data import Sampler

# Upstream s2_train.py's bucket boundaries, in spectrogram frames (50 per second at 32 kHz / hop 640).
SOVITS_BOUNDARIES = (
    32,
    300,
    400,
    500,
    600,
    700,
    800,
    900,
    1000,
    1100,
    1200,
    1300,
    1400,
    1500,
    1600,
    1700,
    1800,
    1900,
)
# Upstream s2_train_v3_lora.py's boundaries for v3/v4: the same up to 1000 frames (20 s), so
# longer clips are left out of LoRA training.
CFM_BOUNDARIES = (32, 300, 400, 500, 600, 700, 800, 900, 1000)
GPT_BUCKET_WIDTH_S = 2.0


def boundary_batches(
    lengths: Sequence[int],
    batch_size: int,
    boundaries: Sequence[int],
    *,
    epoch: int,
    seed: int = 0,
    rank: int = 0,
    world: int = 1,
) -> list[list[int]]:
    """This rank's batches for ``epoch`` (indices into ``lengths``); see the module docstring."""
    buckets: list[list[int]] = [[] for _ in range(len(boundaries) - 1)]
    for index, length in enumerate(lengths):
        # Bucket i holds boundaries[i] < length <= boundaries[i + 1].
        slot = bisect.bisect_left(boundaries, length) - 1
        if 0 <= slot < len(buckets):
            buckets[slot].append(index)
    gen = torch.Generator().manual_seed(seed + epoch)
    group = batch_size * world
    batches: list[list[int]] = []
    for bucket in (b for b in buckets if b):
        order = [bucket[i] for i in torch.randperm(len(bucket), generator=gen).tolist()]
        missing = (group - len(order) % group) % group
        order = order + (order * (missing // len(order) + 1))[:missing]  # top up by repetition
        share = order[rank::world]
        batches += [share[j : j + batch_size] for j in range(0, len(share), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]


def duration_batches(
    durations: Sequence[float],
    batch_size: int,
    *,
    epoch: int,
    seed: int = 0,
    rank: int = 0,
    world: int = 1,
    width_s: float = GPT_BUCKET_WIDTH_S,
) -> list[list[int]]:
    """This rank's batches for ``epoch`` (indices into ``durations``); see the module docstring."""
    rng = random.Random(seed + epoch)
    order = sorted(range(len(durations)), key=lambda i: durations[i])
    buckets: list[list[int]] = []
    limit = width_s
    for index in order:
        if not buckets or durations[index] >= limit:
            while durations[index] >= limit:
                limit += width_s
            buckets.append([])
        buckets[-1].append(index)
    flat = []
    for bucket in buckets:
        rng.shuffle(bucket)
        flat += bucket
    group = batch_size * world
    groups = [flat[i : i + group] for i in range(0, len(flat), group)]
    rng.shuffle(groups)
    if len(groups) % world:  # every rank gets the same number of batches
        groups += groups[: world - len(groups) % world]
    batches = []
    for g in groups:
        share = g[rank::world] or g[:1]
        batches.append(share)
    return batches


class PlannedBatches(Sampler[list[int]]):
    """A ``batch_sampler`` that replays ``plan(epoch)``; set the epoch (and batches to skip) first."""

    def __init__(self, plan: Callable[[int], list[list[int]]]) -> None:
        self._plan = plan
        self._epoch = 1
        self._skip = 0
        self._batches: list[list[int]] | None = None

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self._epoch, self._skip, self._batches = epoch, skip, None

    @property
    def skip(self) -> int:
        """Batches of the current epoch left out at the start (already done before a resume)."""
        return self._skip

    def batches(self) -> list[list[int]]:
        if self._batches is None:
            self._batches = self._plan(self._epoch)
        return self._batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches()[self._skip :])

    def __len__(self) -> int:
        return max(0, len(self.batches()) - self._skip)
