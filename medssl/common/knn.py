"""k-nearest-neighbour classification of frozen features, chunked so that large banks fit in memory.

Two votes are offered:

* plain (``weighted=False``): the majority vote of the ``k`` nearest training images, as in the ICIP 2023
  study (``KNeighborsClassifier(n_neighbors=200)``). The study used sklearn's default Euclidean distance on raw
  features; by default we use cosine distance (Euclidean on L2-normalised features), the convention of SSL
  kNN monitors, which does not let a few large-norm features dominate. ``metric="euclidean"`` gives the
  study's exact rule. Scores are the vote shares of each class.
* weighted (``weighted=True``): each neighbour votes with ``exp(cosine similarity / temperature)``, the rule of
  Wu et al. 2018 used by lightly's ``knn_predict``; scores are normalised to sum to one.

Ties in the plain vote go to the lowest class index, like sklearn.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

Metric = Literal["cosine", "euclidean"]
_MAX_SIMILARITY_ELEMENTS = 1 << 25
"""A chunk's (queries × bank) similarity matrix is kept under this many floats (128 MB)."""


def _as_tensor(array: np.ndarray | torch.Tensor, device: str | torch.device) -> torch.Tensor:
    tensor = array if isinstance(array, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(array))
    return tensor.to(device=device, dtype=torch.float32)


def _neighbours(
    bank: torch.Tensor, queries: torch.Tensor, k: int, metric: Metric, bank_sq: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(similarity, index) of the k nearest bank rows for each query; larger similarity = nearer."""
    if metric == "cosine":
        return (queries @ bank.T).topk(k, dim=1)
    # -||q - b||² = 2 q·b - ||b||² - ||q||²; the query norm does not change the ranking.
    return (2 * queries @ bank.T - bank_sq).topk(k, dim=1)


def knn_scores(
    train_features: np.ndarray | torch.Tensor,
    train_labels: np.ndarray | torch.Tensor,
    query_features: np.ndarray | torch.Tensor,
    n_classes: int,
    k: int = 200,
    weighted: bool = False,
    temperature: float = 0.1,
    chunk_size: int = 1024,
    metric: Metric = "cosine",
) -> np.ndarray:
    """Class scores (n_query, n_classes), rows summing to one, from the k nearest training features.

    Args:
        train_features: (N, D) feature bank.
        train_labels: (N,) integer labels of the bank.
        query_features: (Q, D) features to classify.
        n_classes: number of classes (columns of the result).
        k: neighbours; clipped to the bank size.
        weighted: plain majority vote (False) or exp(similarity / temperature)-weighted vote (True).
        temperature: temperature of the weighted vote.
        chunk_size: most queries per chunk (also capped so a chunk's similarity matrix stays ≤ 128 MB).
        metric: ``cosine`` (default) or ``euclidean`` on raw features (plain vote only; the study's rule).

    Returns:
        float32 array of vote shares; ``argmax(axis=1)`` is the prediction.
    """
    if weighted and metric != "cosine":
        raise ValueError("the weighted vote uses cosine similarity; pass metric='cosine'")
    device = train_features.device if isinstance(train_features, torch.Tensor) else torch.device("cpu")
    labels = torch.as_tensor(
        np.asarray(train_labels) if not isinstance(train_labels, torch.Tensor) else train_labels
    )
    labels = labels.to(device=device, dtype=torch.int64)
    out = torch.empty((len(query_features), n_classes), dtype=torch.float32, device=device)
    for rows, similarity, index in _nearest_chunks(train_features, query_features, k, metric, chunk_size):
        votes = (similarity / temperature).exp() if weighted else torch.ones_like(similarity)
        scores = torch.zeros((len(similarity), n_classes), dtype=torch.float32, device=device)
        scores.scatter_add_(1, labels[index], votes)
        out[rows] = scores / scores.sum(dim=1, keepdim=True)
    return out.cpu().numpy()


def knn_not_applicable(k: int, n_labelled: int) -> str:
    """Why a plain k-NN vote cannot classify a cell ('' when it can).

    With ``k`` at least the number of labelled images every test image's neighbours are the whole labelled
    set, so every test image gets the same vote (the labelled majority class): the cell measures the label
    subset, not the encoder. The weighted vote still ranks neighbours by similarity and is not affected.
    """
    if k < n_labelled:
        return ""
    return f"k={k} ≥ {n_labelled} labelled images: every test image gets the same vote"


def nearest_neighbours(
    bank: np.ndarray | torch.Tensor, queries: np.ndarray | torch.Tensor, k: int, metric: Metric = "cosine"
) -> np.ndarray:
    """Indices (Q, k) of the ``k`` nearest bank rows of every query, nearest first."""
    if len(queries) == 0:
        return np.zeros((0, k), np.int64)
    chunks = [index for _, _, index in _nearest_chunks(bank, queries, k, metric)]
    return torch.cat(chunks).cpu().numpy()


def _nearest_chunks(
    bank_features: np.ndarray | torch.Tensor,
    query_features: np.ndarray | torch.Tensor,
    k: int,
    metric: Metric,
    chunk_size: int = 1024,
) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor]]:
    """(query rows, similarity, bank index) of the k nearest bank rows, one chunk of queries at a time."""
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"metric must be cosine or euclidean, not {metric!r}")
    device = bank_features.device if isinstance(bank_features, torch.Tensor) else torch.device("cpu")
    bank = _as_tensor(bank_features, device)
    queries = _as_tensor(query_features, device)
    if len(bank) == 0:
        raise ValueError("the kNN feature bank is empty")
    k = min(k, len(bank))
    bank_sq = None
    if metric == "cosine":
        bank = F.normalize(bank, dim=1)
    else:
        bank_sq = (bank * bank).sum(dim=1)
    step = max(1, min(chunk_size, _MAX_SIMILARITY_ELEMENTS // len(bank)))
    with torch.inference_mode():
        for start in range(0, len(queries), step):
            chunk = queries[start : start + step]
            if metric == "cosine":
                chunk = F.normalize(chunk, dim=1)
            similarity, index = _neighbours(bank, chunk, k, metric, bank_sq)
            yield slice(start, start + len(chunk)), similarity, index
