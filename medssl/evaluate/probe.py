"""Linear probe: L2-regularised logistic regression on standardised frozen features, C tuned on validation."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from medssl.evaluate.metrics import balanced_accuracy

C_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
"""Inverse regularisation strengths tried, weakest regularisation last."""


@dataclass
class ProbeResult:
    """Test-set class probabilities of the chosen probe and how it was chosen."""

    test_prob: np.ndarray
    C: float
    val_balanced_accuracy: float
    val_scores: dict[float, float]


def _full_proba(model: LogisticRegression, x: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities with one column per class, also for classes missing from the training labels."""
    out = np.zeros((len(x), n_classes), dtype=np.float64)
    out[:, model.classes_] = model.predict_proba(x)
    return out


def linear_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    test_x: np.ndarray,
    n_classes: int,
    c_grid: tuple[float, ...] = C_GRID,
    class_weight: str | None = None,
    max_iter: int = 1000,
    n_threads: int | None = 1,
) -> ProbeResult:
    """Fit one probe per C on train, keep the one with the best validation balanced accuracy.

    Ties in balanced accuracy go to the lower validation log-loss. Features are standardised with the
    training features' mean and standard deviation. ``class_weight="balanced"`` reweights classes inversely to
    their training frequency. The kept probe is the one fitted on train (validation labels only choose C).
    BLAS/OpenMP run on ``n_threads`` threads (None: library default): on a shared machine one thread is
    several times faster than two contending ones for probe-sized problems.
    """
    with threadpool_limits(limits=n_threads):
        return _fit_grid(train_x, train_y, val_x, val_y, test_x, n_classes, c_grid, class_weight, max_iter)


def _fit_grid(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    test_x: np.ndarray,
    n_classes: int,
    c_grid: tuple[float, ...],
    class_weight: str | None,
    max_iter: int,
) -> ProbeResult:
    scaler = StandardScaler().fit(train_x)
    train_s, val_s, test_s = (scaler.transform(x) for x in (train_x, val_x, test_x))
    model = LogisticRegression(class_weight=class_weight, max_iter=max_iter, warm_start=True)
    best: tuple[tuple[float, float], float, np.ndarray] | None = None
    scores: dict[float, float] = {}
    for c in sorted(c_grid):
        model.set_params(C=c)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(train_s, train_y)
        val_prob = _full_proba(model, val_s, n_classes)
        score = balanced_accuracy(val_y, val_prob.argmax(axis=1))
        loss = float(-np.mean(np.log(np.maximum(val_prob[np.arange(len(val_y)), val_y], 1e-12))))
        scores[c] = score
        if best is None or (score, -loss) > best[0]:
            best = ((score, -loss), c, _full_proba(model, test_s, n_classes))
    assert best is not None, "empty C grid"
    return ProbeResult(test_prob=best[2], C=best[1], val_balanced_accuracy=best[0][0], val_scores=scores)
