"""``retrieval.npz``: the few images the report's nearest-neighbour figure shows, written while the pixels
are at hand (by evaluation), so that the report never decodes a dataset.

Per encoder: a handful of test queries (cycling through the classes), their ``RETRIEVAL_K`` nearest training
images by cosine similarity of the encoder's features, and the share of all test images' neighbours that
share the query's class.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medssl.common.knn import nearest_neighbours
from medssl.rundir.atomic import atomic_write

RETRIEVAL = "retrieval.npz"
RETRIEVAL_QUERIES = 6
RETRIEVAL_K = 5
KEYS = ("query_images", "query_labels", "neighbour_images", "neighbour_labels", "agreement", "k", "n_test")


def query_positions(labels: np.ndarray, count: int) -> np.ndarray:
    """Up to ``count`` test positions, cycling through the classes (first of each class, then second...)."""
    per_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    chosen: list[int] = []
    for rank in range(max((len(p) for p in per_class), default=0)):
        chosen += [int(p[rank]) for p in per_class if rank < len(p)]
    return np.array(chosen[:count], dtype=np.int64)


def retrieval_sample(
    train: np.ndarray,
    train_labels: np.ndarray,
    train_index: np.ndarray,
    test: np.ndarray,
    test_labels: np.ndarray,
    test_index: np.ndarray,
    images: np.ndarray,
) -> dict[str, np.ndarray]:
    """The retrieval figure's images and numbers from features (train/test) and the dataset's ``images``."""
    k = min(RETRIEVAL_K, len(train))
    nearest = nearest_neighbours(train, test, k)
    agreement = float(np.mean(train_labels[nearest] == test_labels[:, None])) if len(test) else float("nan")
    q = query_positions(test_labels, RETRIEVAL_QUERIES)
    return {
        "query_images": np.asarray(images[test_index[q]]),
        "query_labels": test_labels[q],
        "neighbour_images": np.asarray(images[train_index[nearest[q]]]),
        "neighbour_labels": train_labels[nearest[q]],
        "agreement": np.float64(agreement),
        "k": np.int64(k),
        "n_test": np.int64(len(test)),
    }


def save_retrieval(path: Path, sample: dict[str, np.ndarray]) -> None:
    atomic_write(path, lambda tmp: np.savez(tmp, **sample))


def load_retrieval(path: Path) -> dict[str, np.ndarray] | None:
    """The sample in ``path``, or None when it is missing, unreadable or incomplete."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            sample = {key: stored[key] for key in KEYS}
    except (OSError, ValueError, KeyError):
        return None
    return sample
