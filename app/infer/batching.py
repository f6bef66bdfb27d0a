"""Which segments the GPT decodes together: in text order, or in buckets of similar length.

A batch is as slow as its longest row, and every shorter row is padding. Upstream's api_v2
(``split_bucket``, ``batch_threshold``) sorts the segments by text length and fills each batch
with the next ``batch_size`` of them, shrinking it until its middle length is at least
``threshold`` times its mean: rows of a batch are then about equally long. The audio still comes
out in text order (the runner holds finished segments until their turn).
"""

from __future__ import annotations

from collections.abc import Sequence


def plan_batches(
    lengths: Sequence[int], batch_size: int, split_bucket: bool = True, threshold: float = 0.75
) -> tuple[tuple[int, ...], ...]:
    """Segment indices per GPT batch.

    Args:
        lengths: a length per segment (upstream: characters of the normalised text).
        batch_size: most segments per batch (>= 1).
        split_bucket: group by length (True) or take segments in text order (False). With
            ``batch_size`` 1 the text order is always kept, so the first audio comes first.
        threshold: smallest ratio of a batch's middle length (sorted) to its mean length.

    Every index appears exactly once; batches hold at most ``batch_size`` indices.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    order = list(range(len(lengths)))
    if not split_bucket or batch_size == 1:
        return tuple(tuple(order[i : i + batch_size]) for i in range(0, len(order), batch_size))
    order.sort(key=lambda i: (lengths[i], i))
    batches: list[tuple[int, ...]] = []
    start = 0
    while start < len(order):
        end = min(start + batch_size, len(order))
        while end - start > 1:
            sizes = [lengths[i] for i in order[start:end]]
            mean = sum(sizes) / len(sizes)
            if sizes[len(sizes) // 2] >= threshold * mean:
                break
            end -= 1
        batches.append(tuple(order[start:end]))
        start = end
    return tuple(batches)
