"""Length-bucketed batch plans: coverage, grouping, determinism, rank split, resume skipping."""

from __future__ import annotations

import random

from app.train.buckets import SOVITS_BOUNDARIES, PlannedBatches, boundary_batches, duration_batches
from app.train.sovits_data import repeat_small


def test_boundary_batches_group_by_bucket_and_drop_outliers() -> None:
    rng = random.Random(0)
    lengths = [rng.randint(10, 2000) for _ in range(300)]
    batches = boundary_batches(lengths, 4, SOVITS_BOUNDARIES, epoch=1, seed=3)
    inside = {i for i, n in enumerate(lengths) if SOVITS_BOUNDARIES[0] < n <= SOVITS_BOUNDARIES[-1]}
    used = {i for b in batches for i in b}
    assert used == inside  # every clip in range is used, none outside
    assert all(len(b) == 4 for b in batches)
    for batch in batches:
        slots = {sum(n > edge for edge in SOVITS_BOUNDARIES) for n in (lengths[i] for i in batch)}
        assert len(slots) == 1  # one bucket per batch
    assert batches == boundary_batches(lengths, 4, SOVITS_BOUNDARIES, epoch=1, seed=3)
    assert batches != boundary_batches(lengths, 4, SOVITS_BOUNDARIES, epoch=2, seed=3)


def test_boundary_batches_split_evenly_across_ranks() -> None:
    lengths = [40 + 7 * i for i in range(50)]
    shares = [boundary_batches(lengths, 3, SOVITS_BOUNDARIES, epoch=5, rank=r, world=2) for r in range(2)]
    assert len(shares[0]) == len(shares[1]) > 0
    assert {i for s in shares for b in s for i in b} == set(range(50))


def test_duration_batches_keep_similar_lengths_together() -> None:
    rng = random.Random(1)
    durations = [rng.uniform(0.5, 12.0) for _ in range(200)]
    batches = duration_batches(durations, 8, epoch=1, seed=0)
    assert sorted(i for b in batches for i in b) == list(range(200))
    spans = [max(durations[i] for i in b) - min(durations[i] for i in b) for b in batches]
    assert max(spans) < 4.0  # at most two 2-s buckets meet in a batch
    assert batches == duration_batches(durations, 8, epoch=1, seed=0)
    ranks = [duration_batches(durations, 8, epoch=1, rank=r, world=3) for r in range(3)]
    assert len({len(r) for r in ranks}) == 1


def test_planned_batches_skip_the_done_part_of_an_epoch() -> None:
    calls = []

    def plan(epoch: int) -> list[list[int]]:
        calls.append(epoch)
        return [[epoch, i] for i in range(5)]

    sampler = PlannedBatches(plan)
    sampler.set_epoch(3, skip=2)
    assert list(sampler) == [[3, 2], [3, 3], [3, 4]] and len(sampler) == 3 and sampler.skip == 2
    sampler.set_epoch(4)
    assert next(iter(sampler)) == [4, 0] and len(sampler) == 5
    assert calls == [3, 4]  # one plan per epoch


def test_small_datasets_are_repeated_as_upstream() -> None:
    assert len(repeat_small(list(range(20)), 100)) == 100
    assert len(repeat_small(list(range(60)), 100)) == 120  # max(2, 100 // 60) copies
    assert len(repeat_small(list(range(150)), 100)) == 150
    assert len(repeat_small(list(range(20)), 0)) == 20
