"""Cluster blending of content features and the k-means centres it uses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from app.models.svc.retrieval import blend, kmeans_centers, nearest_centers


def test_nearest_centre_per_frame_and_blend_ratio() -> None:
    centers = np.array([[0.0, 0.0], [10.0, 10.0]], dtype=np.float32)
    content = torch.tensor([[1.0, 9.0, -1.0], [0.5, 11.0, 0.0]])  # (C=2, T=3)
    near = nearest_centers(content, centers)
    torch.testing.assert_close(near, torch.tensor([[0.0, 10.0, 0.0], [0.0, 10.0, 0.0]]))
    half = blend(content, centers, 0.5)
    torch.testing.assert_close(half, 0.5 * near + 0.5 * content)
    assert blend(content, centers, 0.0) is content
    with pytest.raises(ValueError, match="between 0 and 1"):
        blend(content, centers, 1.5)
    with pytest.raises(ValueError, match="another content encoder"):
        nearest_centers(torch.zeros(3, 4), centers)


def test_kmeans_finds_the_clusters() -> None:
    rng = np.random.default_rng(0)
    blobs = np.concatenate([rng.normal(m, 0.05, size=(50, 3)) for m in (0.0, 5.0)]).astype(np.float32)
    centers = kmeans_centers(blobs, 2)
    assert sorted(np.round(centers.mean(axis=1)).tolist()) == [0.0, 5.0]
    assert kmeans_centers(blobs[:3], 10).shape == (3, 3)  # never more centres than frames
