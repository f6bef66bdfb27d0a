"""Tiny random models for the dataset-tool tests (built in seconds, no downloads)."""

from __future__ import annotations

from fractions import Fraction


def tiny_htdemucs():
    """A random HTDemucs small enough for ~0.3 s per 2 s chunk on CPU (same weights every call)."""
    import torch
    from demucs.htdemucs import HTDemucs

    torch.manual_seed(0)
    # The segment is a Fraction, as in the published htdemucs files.
    return HTDemucs(
        sources=["drums", "bass", "other", "vocals"],
        channels=8,
        depth=3,
        nfft=1024,
        t_layers=1,
        t_heads=2,
        segment=Fraction(2, 1),
    ).eval()
