"""Build the per-speaker cluster model for conversion's cluster ratio (4.1 ``cluster/train_cluster.py``).

Reads every ``.soft.pt`` of ``dataset/44k/<speaker>/``, runs MiniBatchKMeans per speaker and writes
``logs/44k/kmeans_10000.pt`` in 4.1's layout (so 4.1 uses our file and we use its). CLI::

    python -m app.data.preprocess.svc.cluster EXPERIMENT_DIR [--clusters 10000]
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from app.messages import Message
from app.models.svc.retrieval import kmeans_centers
from app.models.upstream.svc.features import CLUSTER_FILE, read_content, write_cluster
from app.paths import SvcExperiment

log = logging.getLogger(__name__)

DEFAULT_CLUSTERS = 10000  # 4.1's count (the file name says so)


def train_clusters(
    experiment: SvcExperiment,
    *,
    n_clusters: int = DEFAULT_CLUSTERS,
    seed: int = 0,
    progress: Callable[[int, int, str], None] | None = None,
) -> Path:
    """Cluster each speaker's content frames; returns the written ``kmeans_10000.pt``."""
    speakers = (
        sorted(p for p in experiment.dataset.iterdir() if p.is_dir()) if experiment.dataset.is_dir() else []
    )
    centers = {}
    for i, folder in enumerate(speakers, 1):
        files = sorted(folder.glob("*.soft.pt"))
        if files:
            frames = np.concatenate([read_content(f).numpy().T for f in files])  # (N, C)
            centers[folder.name] = kmeans_centers(frames, n_clusters, seed=seed)
            log.info("%s: %d frames -> %d centres", folder.name, len(frames), len(centers[folder.name]))
        if progress is not None:
            progress(i, len(speakers), folder.name)
    if not centers:
        template = "{folder}: no .soft.pt content features; run the SVC preprocessing first"
        raise FileNotFoundError(Message("svcprep.err.no_features", template, folder=str(experiment.dataset)))
    return write_cluster(experiment.models / CLUSTER_FILE, centers)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.data.preprocess.svc.cluster",
        description="Build the per-speaker k-means cluster model (logs/44k/kmeans_10000.pt).",
    )
    parser.add_argument("experiment", type=Path)
    parser.add_argument(
        "--clusters", type=int, default=DEFAULT_CLUSTERS, help="centres per speaker (at most the frames)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        path = train_clusters(SvcExperiment(args.experiment), n_clusters=args.clusters)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
