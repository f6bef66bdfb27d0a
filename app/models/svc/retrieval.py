"""Cluster ("feature retrieval") blending of content features toward a speaker's training features.

so-vits-svc 4.1's ``-cr`` ratio: each frame of the input's content features is replaced by the
nearest of the target speaker's k-means centres (built from that speaker's training ``.soft.pt``
features), then mixed with the original: ``c = r * nearest + (1 - r) * c``. Higher ratios reduce
timbre leakage from the source singer at some cost in articulation.
"""

from __future__ import annotations

import numpy as np
import torch

# Frames compared against the centres at once: bounds the (frames x centres) distance matrix.
CHUNK_FRAMES = 2048


def nearest_centers(content: torch.Tensor, centers: np.ndarray | torch.Tensor) -> torch.Tensor:
    """For each frame of ``content`` (C, T), the nearest centre of ``centers`` (K, C) (Euclidean) -> (C, T)."""
    table = torch.as_tensor(centers, dtype=torch.float32, device=content.device)
    if table.dim() != 2 or table.size(1) != content.size(0):
        raise ValueError(
            f"cluster centres of shape {tuple(table.shape)} do not fit {content.size(0)}-d content features; "
            "was the cluster model built for another content encoder?"
        )
    frames = content.float().T  # (T, C)
    picks = []
    for start in range(0, frames.size(0), CHUNK_FRAMES):
        chunk = frames[start : start + CHUNK_FRAMES]
        picks.append(torch.cdist(chunk, table).argmin(dim=1))  # (chunk,)
    index = torch.cat(picks) if picks else torch.zeros(0, dtype=torch.long, device=content.device)
    return table[index].T.to(content.dtype)  # (C, T)


def blend(content: torch.Tensor, centers: np.ndarray | torch.Tensor, ratio: float) -> torch.Tensor:
    """``ratio * nearest_centers + (1 - ratio) * content`` for (C, T) features; ratio in [0, 1]."""
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"cluster ratio must be between 0 and 1, got {ratio}")
    if ratio == 0.0:
        return content
    return ratio * nearest_centers(content, centers) + (1.0 - ratio) * content


def kmeans_centers(
    features: np.ndarray, n_clusters: int, *, seed: int = 0, batch_size: int = 4096
) -> np.ndarray:
    """k-means centres (K, C) of ``features`` (N, C), K = min(n_clusters, N) (4.1: MiniBatchKMeans, 80 iterations)."""
    from sklearn.cluster import MiniBatchKMeans

    features = np.ascontiguousarray(features, dtype=np.float32)
    k = min(n_clusters, len(features))
    if k < 1:
        raise ValueError("no feature frames to cluster")
    model = MiniBatchKMeans(n_clusters=k, batch_size=batch_size, max_iter=80, random_state=seed, n_init=3)
    return model.fit(features).cluster_centers_.astype(np.float32)
