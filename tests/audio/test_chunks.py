"""Cutting long audio into bounded pieces and putting converted pieces back with cross-fades."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from app.audio.chunks import OverlapAdd, Piece, plan_pieces
from app.audio.slicer import Segment


def test_long_stretch_is_split_into_bounded_overlapping_pieces() -> None:
    pieces = plan_pieces([Segment(0, 1000)], max_samples=300, overlap=40, align=10)
    assert all(p.length <= 300 for p in pieces)
    assert pieces[0].start == 0 and pieces[-1].end == 1000
    for a, b in itertools.pairwise(pieces):
        assert a.end - b.start == 40 and a.fade_out == b.fade_in == 40
        assert b.start % 10 == 0
    assert pieces[0].fade_in == 0 and pieces[-1].fade_out == 0


def test_short_segments_stay_whole_and_gaps_are_not_covered() -> None:
    pieces = plan_pieces(
        [Segment(5, 100), Segment(400, 450)], max_samples=300, overlap=40, align=8, total=440
    )
    assert pieces == [Piece(0, 100), Piece(400, 440)]  # start aligned down; end clipped to the audio


def test_overlap_add_reconstructs_a_signal_exactly() -> None:
    rng = np.random.default_rng(0)
    signal = rng.standard_normal(1000).astype(np.float32)
    pieces = plan_pieces([Segment(0, 1000)], max_samples=256, overlap=64)
    out = OverlapAdd(1000)
    for p in pieces:
        out.add(p, signal[p.start : p.end])
    np.testing.assert_allclose(out.out, signal, atol=1e-6)  # complementary fades sum to one


def test_overlap_add_leaves_gaps_silent_and_pads_short_results() -> None:
    out = OverlapAdd(100, channels=2)
    out.add(Piece(10, 30), np.ones((15, 2)))
    assert out.out[:10].sum() == 0 and out.out[25:].sum() == 0 and out.out[10:25].min() == 1.0


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="must exceed the overlap"):
        plan_pieces([Segment(0, 10)], max_samples=10, overlap=10)
