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
    weight: np.ndarray
    """(n_classes, D): with ``bias``, the chosen probe as a linear map of raw (unstandardised) features whose
    softmax is its probabilities: the head that fine-tuning starts from (LP-FT)."""
    bias: np.ndarray
    """(n_classes,)."""


MISSING_CLASS_LOGIT = -1e4
"""The logit of a class absent from the training labels (its probability is 0, as ``_full_proba`` gives)."""


def _raw_linear_map(
    model: LogisticRegression, scaler: StandardScaler, n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """(weight, bias) on raw features equal to ``model`` on standardised ones: W/σ and b - (W/σ)·μ. A binary
    model's single row z becomes the logits (0, z), whose softmax is (1 - σ(z), σ(z))."""
    coef, intercept = model.coef_, model.intercept_
    if len(model.classes_) == 2:
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.array([0.0, intercept[0]])
    weight = np.zeros((n_classes, coef.shape[1]))
    bias = np.full(n_classes, MISSING_CLASS_LOGIT)
    weight[model.classes_] = coef / scaler.scale_
    bias[model.classes_] = intercept - weight[model.classes_] @ scaler.mean_
    return weight, bias


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
    test_x: np.ndarray | None,
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
    ``test_x`` None: only the probe is wanted (``test_prob`` is empty).
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
    test_x: np.ndarray | None,
    n_classes: int,
    c_grid: tuple[float, ...],
    class_weight: str | None,
    max_iter: int,
) -> ProbeResult:
    scaler = StandardScaler().fit(train_x)
    train_s, val_s = scaler.transform(train_x), scaler.transform(val_x)
    test_s = None if test_x is None else scaler.transform(test_x)
    model = LogisticRegression(class_weight=class_weight, max_iter=max_iter, warm_start=True)
    best: tuple[tuple[float, float], float, np.ndarray, tuple[np.ndarray, np.ndarray]] | None = None
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
            test_prob = np.zeros((0, n_classes)) if test_s is None else _full_proba(model, test_s, n_classes)
            best = ((score, -loss), c, test_prob, _raw_linear_map(model, scaler, n_classes))
    assert best is not None, "empty C grid"
    (score, _), c, test_prob, (weight, bias) = best
    return ProbeResult(test_prob, c, score, scores, weight, bias)
