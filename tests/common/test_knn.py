"""Our kNN against sklearn's KNeighborsClassifier and lightly's weighted kNN, chunked and clipped."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lightly.utils.benchmarking import knn_predict
from sklearn.neighbors import KNeighborsClassifier

from medssl.common.knn import knn_scores


def _clusters(n: int, n_classes: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping Gaussian classes (continuous values, so no distance ties)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    centres = rng.normal(0, 1, (n_classes, dim))
    return (centres[labels] + rng.normal(0, 1.2, (n, dim))).astype(np.float32), labels


@pytest.mark.parametrize(
    ("n_classes", "k", "metric"), [(2, 21, "cosine"), (3, 15, "cosine"), (3, 9, "euclidean")]
)
def test_plain_knn_matches_sklearn(n_classes: int, k: int, metric: str) -> None:
    train_x, train_y = _clusters(300, n_classes, 16, seed=0)
    test_x, _ = _clusters(80, n_classes, 16, seed=1)
    reference = KNeighborsClassifier(n_neighbors=k, metric=metric, algorithm="brute").fit(train_x, train_y)
    scores = knn_scores(train_x, train_y, test_x, n_classes, k=k, metric=metric)
    # Vote shares equal sklearn's uniform-weight probabilities, whatever the ties between classes.
    np.testing.assert_allclose(scores, reference.predict_proba(test_x), atol=1e-6)
    if n_classes == 2:  # odd k, two classes: no vote ties, so the predictions must agree exactly
        np.testing.assert_array_equal(scores.argmax(1), reference.predict(test_x))
    assert (scores.argmax(1) == reference.predict(test_x)).mean() >= 0.9  # differ only on vote ties


def test_weighted_knn_agrees_with_lightly() -> None:
    train_x, train_y = _clusters(400, 4, 32, seed=2)
    test_x, _ = _clusters(100, 4, 32, seed=3)
    scores = knn_scores(train_x, train_y, test_x, 4, k=50, weighted=True, temperature=0.1)
    bank = F.normalize(torch.from_numpy(train_x), dim=1).T
    ranked = knn_predict(
        F.normalize(torch.from_numpy(test_x), dim=1), bank, torch.from_numpy(train_y), 4, 50, 0.1
    )
    np.testing.assert_array_equal(scores.argmax(1), ranked[:, 0].numpy())
    np.testing.assert_allclose(scores.sum(1), 1.0, rtol=1e-5)
    plain = knn_scores(train_x, train_y, test_x, 4, k=50)
    assert not np.allclose(plain, scores)  # the weights do change the scores


@pytest.mark.parametrize("weighted", [False, True])
def test_chunked_equals_unchunked(weighted: bool) -> None:
    train_x, train_y = _clusters(500, 3, 8, seed=4)
    test_x, _ = _clusters(101, 3, 8, seed=5)
    whole = knn_scores(train_x, train_y, test_x, 3, k=30, weighted=weighted, chunk_size=10_000)
    chunked = knn_scores(train_x, train_y, test_x, 3, k=30, weighted=weighted, chunk_size=7)
    # The chunks are other matrix shapes, so BLAS may sum the 8-term similarities in another order: each differs
    # by up to ~8 float32 ulps (8 x 1.2e-7), and the weights exp(similarity / 0.1) scale that by 1 / 0.1.
    # Same neighbours, same votes; shares agree to ~1e-5 relative, and vote shares near 0 to ~1e-7 absolute.
    np.testing.assert_allclose(chunked, whole, rtol=8 * np.finfo(np.float32).eps / 0.1, atol=1e-7)


def test_k_is_clipped_to_the_bank() -> None:
    train_x, train_y = _clusters(10, 2, 4, seed=6)
    test_x, _ = _clusters(5, 2, 4, seed=7)
    scores = knn_scores(train_x, train_y, test_x, 2, k=200)
    prior = np.bincount(train_y, minlength=2) / 10
    np.testing.assert_allclose(scores, np.tile(prior, (5, 1)), atol=1e-6)


def test_accepts_tensors_and_ignores_feature_scale_with_cosine() -> None:
    train_x, train_y = _clusters(200, 2, 8, seed=8)
    test_x, _ = _clusters(30, 2, 8, seed=9)
    expected = knn_scores(train_x, train_y, test_x, 2, k=11)
    scaled = knn_scores(
        torch.from_numpy(train_x) * 7.0, torch.from_numpy(train_y), torch.from_numpy(test_x), 2, k=11
    )
    np.testing.assert_allclose(scaled, expected, atol=1e-6)
