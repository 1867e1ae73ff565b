"""Test-set metrics with bootstrap confidence intervals, paired comparisons and a collapse flag.

Point estimates come from ``sklearn.metrics``. Bootstrap resamples are represented as a (B, N) matrix of
multinomial counts (how often each test image is drawn), so every metric is evaluated on all resamples at once
with numpy: label metrics from per-resample confusion matrices, AUROC from the weighted Mann-Whitney statistic.
The same count matrix applied to two models gives the paired bootstrap.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm

from medssl.common.metric_names import METRICS

COLLAPSE_SHARE = 0.95
FLOOR_TOLERANCE = 1e-9
"""Scores within this of a floor count as at it (sums of 1/n can miss 1/K by a rounding error)."""
_CHUNK_ELEMENTS = 1 << 23
"""Resamples are processed in chunks of at most this many (resample, image) weights (~64 MB of float64)."""


def _n_classes(y_true: np.ndarray, y_prob: np.ndarray) -> int:
    return int(y_prob.shape[1]) if y_prob.ndim == 2 else int(y_true.max()) + 1


def auroc(y_true: np.ndarray, y_prob: np.ndarray) -> float:
    """AUROC: positive-class probability for two classes, one-vs-rest macro average for more.

    Classes absent from ``y_true`` are left out of the macro average; NaN when fewer than two are present.
    """
    y_true = np.asarray(y_true)
    present = np.unique(y_true)
    if len(present) < 2:
        return float("nan")
    if y_prob.shape[1] == 2:
        return float(skm.roc_auc_score(y_true == 1, y_prob[:, 1]))
    return float(np.mean([skm.roc_auc_score(y_true == c, y_prob[:, c]) for c in present]))


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean recall over the classes present in ``y_true`` (sklearn's, without its warning on absent ones)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return float(skm.balanced_accuracy_score(y_true, y_pred))


def classification_metrics(y_true: np.ndarray, y_prob: np.ndarray) -> dict[str, float]:
    """Accuracy, balanced accuracy, macro F1, weighted precision/recall/F1 and AUROC of class probabilities."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_prob).argmax(axis=1)
    labels = np.arange(y_prob.shape[1])
    precision, recall, f1, _ = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average="weighted", zero_division=0
    )
    return {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "balanced_accuracy": balanced_accuracy(y_true, y_pred),
        "f1_macro": float(skm.f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "precision_weighted": float(precision),
        "recall_weighted": float(recall),
        "f1_weighted": float(f1),
        "auroc": auroc(y_true, y_prob),
    }


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) counts, rows = true class, columns = predicted class."""
    return skm.confusion_matrix(y_true, y_pred, labels=np.arange(n_classes))


def floor_reason(y_true: np.ndarray, y_pred: np.ndarray, share: float = COLLAPSE_SHARE) -> str:
    """Why the predictions carry no skill beyond the floor ('' when they do).

    * ``collapsed``: one class gets ≥ ``share`` of the predictions although it is < ``share`` of the true
      labels (a model that always says "pneumonia" on a test set that is 62% pneumonia);
    * ``at the floor``: balanced accuracy at or below chance, 1/K over the K classes present, which is what
      predicting one class for every image scores on any test set (so always "pneumonia" on a 96% pneumonia
      test set is flagged too: its 96% accuracy is the majority-class rate, not skill).
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y_pred) == 0:
        return ""
    values, counts = np.unique(y_pred, return_counts=True)
    top = values[counts.argmax()]
    if counts.max() / len(y_pred) >= share and np.mean(y_true == top) < share:
        return "collapsed"
    present = len(np.unique(y_true))
    if present > 1 and balanced_accuracy(y_true, y_pred) <= 1 / present + FLOOR_TOLERANCE:
        return "at the floor"
    return ""


def is_collapsed(y_true: np.ndarray, y_pred: np.ndarray, share: float = COLLAPSE_SHARE) -> bool:
    """True when the predictions are collapsed or at the floor (see ``floor_reason``): results.csv's flag."""
    return bool(floor_reason(y_true, y_pred, share))


# --- bootstrap -------------------------------------------------------------------------------------------


def resample_counts(n: int, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Chunks of a (n_resamples, n) matrix: how many times each of n items is drawn in each resample."""
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK_ELEMENTS // max(n, 1))
    for start in range(0, n_resamples, rows):
        b = min(rows, n_resamples - start)
        draws = rng.integers(0, n, size=(b, n))
        offsets = (np.arange(b) * n)[:, None]
        yield np.bincount((draws + offsets).ravel(), minlength=b * n).reshape(b, n).astype(np.float64)


def _weighted_confusion(y_true: np.ndarray, y_pred: np.ndarray, k: int, weights: np.ndarray) -> np.ndarray:
    """(B, k, k) confusion matrices of every resample."""
    cell = y_true * k + y_pred
    onehot = np.zeros((len(cell), k * k))
    onehot[np.arange(len(cell)), cell] = 1.0
    return (weights @ onehot).reshape(-1, k, k)


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b > 0)


def _from_confusion(metric: str, cm: np.ndarray) -> np.ndarray:
    """A label metric from (B, k, k) confusion matrices, matching sklearn (zero_division=0)."""
    tp = np.diagonal(cm, axis1=1, axis2=2)
    support = cm.sum(axis=2)
    predicted = cm.sum(axis=1)
    total = support.sum(axis=1)
    if metric == "accuracy":
        return _safe_div(tp.sum(axis=1), total)
    recall = _safe_div(tp, support)
    if metric == "balanced_accuracy":
        present = support > 0
        return _safe_div((recall * present).sum(axis=1), present.sum(axis=1).astype(np.float64))
    precision = _safe_div(tp, predicted)
    f1 = _safe_div(2 * tp, support + predicted)
    if metric == "f1_macro":
        return f1.mean(axis=1)
    per_class = {"precision_weighted": precision, "recall_weighted": recall, "f1_weighted": f1}[metric]
    return _safe_div((per_class * support).sum(axis=1), total)


def _weighted_binary_auroc(positive: np.ndarray, score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUROC of every resample: P(score_pos > score_neg) + ½ P(tie), each item counted ``weight`` times."""
    order = np.argsort(score, kind="stable")
    score, positive, weights = score[order], positive[order], weights[:, order]
    starts = np.r_[0, np.flatnonzero(np.diff(score)) + 1]
    group = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(score)]))
    ends = np.r_[starts[1:], len(score)] - 1
    neg = weights * ~positive
    cum = np.cumsum(neg, axis=1)
    below_group = np.concatenate([np.zeros((len(weights), 1)), cum[:, starts[1:] - 1]], axis=1)
    below = below_group[:, group]
    tied = cum[:, ends][:, group] - below
    pos = weights * positive
    numerator = (pos * (below + 0.5 * tied)).sum(axis=1)
    denominator = pos.sum(axis=1) * neg.sum(axis=1)
    out = np.full(len(weights), np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _weighted_auroc(y_true: np.ndarray, y_prob: np.ndarray, weights: np.ndarray) -> np.ndarray:
    if y_prob.shape[1] == 2:
        return _weighted_binary_auroc(y_true == 1, y_prob[:, 1], weights)
    per_class = [_weighted_binary_auroc(y_true == c, y_prob[:, c], weights) for c in np.unique(y_true)]
    with np.errstate(invalid="ignore"):
        return np.nanmean(np.stack(per_class), axis=0) if per_class else np.full(len(weights), np.nan)


def resampled_metric(metric: str, y_true: np.ndarray, y_prob: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``metric`` on each resample given by a (B, N) count matrix (all-ones rows give the plain metric)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {METRICS}")
    y_true = np.asarray(y_true, dtype=np.int64)
    y_prob = np.asarray(y_prob, dtype=np.float64)
    if metric == "auroc":
        return _weighted_auroc(y_true, y_prob, weights)
    cm = _weighted_confusion(y_true, y_prob.argmax(axis=1), y_prob.shape[1], weights)
    return _from_confusion(metric, cm)


def bootstrap_distribution(
    y_true: np.ndarray, y_prob: np.ndarray, metric: str, n_resamples: int = 1000, seed: int = 0
) -> np.ndarray:
    """(n_resamples,) values of ``metric`` on test sets resampled with replacement (seeded)."""
    chunks = resample_counts(len(y_true), n_resamples, seed)
    return np.concatenate([resampled_metric(metric, y_true, y_prob, w) for w in chunks])


def _percentiles(values: np.ndarray, confidence: float) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_ci(
    y_true: np.ndarray,
    y_prob: np.ndarray,
    metric: str,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``metric`` over the test images."""
    return _percentiles(bootstrap_distribution(y_true, y_prob, metric, n_resamples, seed), confidence)


def paired_bootstrap(
    y_true: np.ndarray,
    prob_a: np.ndarray,
    prob_b: np.ndarray,
    metric: str = "accuracy",
    n: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, tuple[float, float], float]:
    """(metric(a) − metric(b), its CI, two-sided p-value) from resampling the same test images for both.

    The p-value is twice the smaller share of resampled differences on either side of zero (with the usual
    +1 correction), capped at 1: identical predictions give 1, a consistent advantage gives ≈ 1/n.
    """
    y_true = np.asarray(y_true)
    a = classification_metrics(y_true, prob_a)[metric]
    b = classification_metrics(y_true, prob_b)[metric]
    diffs = []
    for weights in resample_counts(len(y_true), n, seed):
        diffs.append(
            resampled_metric(metric, y_true, prob_a, weights)
            - resampled_metric(metric, y_true, prob_b, weights)
        )
    diff = np.concatenate(diffs)
    diff = diff[np.isfinite(diff)]
    if len(diff) == 0:
        return a - b, (float("nan"), float("nan")), float("nan")
    at_most = (np.sum(diff <= 0) + 1) / (len(diff) + 1)
    at_least = (np.sum(diff >= 0) + 1) / (len(diff) + 1)
    return float(a - b), _percentiles(diff, confidence), float(min(1.0, 2 * min(at_most, at_least)))


# --- across seeds ----------------------------------------------------------------------------------------


def mean_sd(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value) of the finite values."""
    array = np.array([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    if len(array) == 0:
        return float("nan"), float("nan")
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0


def summarise_seeds(
    rows: Sequence[dict[str, Any]],
    metrics: Sequence[str] = METRICS,
    by: Sequence[str] = ("dataset", "encoder", "protocol", "label_fraction"),
) -> list[dict[str, Any]]:
    """One row per group of ``by`` with ``<metric>_mean``, ``<metric>_sd`` and ``n_seeds``, in first-seen order."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(key) for key in by), []).append(row)
    out = []
    for key, members in groups.items():
        summary: dict[str, Any] = dict(zip(by, key, strict=True))
        summary["n_seeds"] = len(members)
        for metric in metrics:
            mean, sd = mean_sd(float(m[metric]) for m in members if m.get(metric) not in (None, ""))
            summary[f"{metric}_mean"], summary[f"{metric}_sd"] = mean, sd
        out.append(summary)
    return out


def format_mean_sd(mean: float, sd: float, digits: int = 3) -> str:
    """``0.912 ± 0.013``; ``n/a`` when undefined."""
    if not np.isfinite(mean):
        return "n/a"
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"
