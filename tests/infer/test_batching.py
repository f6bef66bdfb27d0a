"""GPT batches of similar-length segments (upstream's split_bucket / batch_threshold)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.infer.batching import plan_batches

lengths_st = st.lists(st.integers(min_value=1, max_value=400), max_size=40)


@given(lengths_st, st.integers(min_value=1, max_value=12), st.booleans(), st.floats(0.0, 1.0))
def test_every_segment_once_and_batches_fit(lengths, batch_size, split_bucket, threshold) -> None:
    batches = plan_batches(lengths, batch_size, split_bucket, threshold)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    assert all(1 <= len(b) <= batch_size for b in batches)
    for batch in batches:
        sizes = sorted(lengths[i] for i in batch)
        if split_bucket and len(batch) > 1:
            assert sizes[len(sizes) // 2] >= threshold * sum(sizes) / len(sizes) - 1e-9


@given(lengths_st, st.integers(min_value=1, max_value=12))
def test_without_buckets_or_with_batch_size_one_the_text_order_is_kept(lengths, batch_size) -> None:
    for batches in (plan_batches(lengths, batch_size, False), plan_batches(lengths, 1, True)):
        assert [i for b in batches for i in b] == list(range(len(lengths)))


def test_buckets_group_similar_lengths() -> None:
    lengths = [100, 3, 98, 4, 101, 5]
    assert plan_batches(lengths, 3, True, 0.75) == ((1, 3, 5), (2, 0, 4))
    # A threshold of 0 accepts any batch: sorted, batch_size at a time.
    assert plan_batches(lengths, 4, True, 0.0) == ((1, 3, 5, 2), (0, 4))


def test_bad_batch_size_is_refused() -> None:
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        plan_batches([1, 2], 0)
