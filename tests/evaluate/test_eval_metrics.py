"""Metrics against hand-computed values, the vectorised bootstrap against sklearn, paired comparisons."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from medssl.evaluate.metrics import (
    METRICS,
    bootstrap_ci,
    classification_metrics,
    confusion,
    floor_reason,
    is_collapsed,
    mean_sd,
    paired_bootstrap,
    resampled_metric,
    summarise_seeds,
)

# Six test images, four negatives and two positives; p = probability of class 1.
#   y_true: 0    0    0    0    1    1
#   p:      0.1  0.4  0.6  0.2  0.7  0.3
#   pred:   0    0    1    0    1    0      (argmax, i.e. p > 0.5)
# accuracy = 4 correct / 6 = 2/3
# recall_0 = 3/4, recall_1 = 1/2               → balanced accuracy = (3/4 + 1/2) / 2 = 0.625
# precision_0 = 3/4 (3 of the 4 predicted 0), precision_1 = 1/2 (1 of the 2 predicted 1)
# f1_0 = 3/4, f1_1 = 1/2                      → macro F1 = 0.625, weighted F1 = (4·3/4 + 2·1/2) / 6 = 2/3
# weighted precision = (4·3/4 + 2·1/2) / 6 = 2/3, weighted recall = accuracy = 2/3
# AUROC: positive 0.7 beats all 4 negatives, positive 0.3 beats 0.1 and 0.2 → (4 + 2) / (2·4) = 0.75
Y_TRUE = np.array([0, 0, 0, 0, 1, 1])
P_ONE = np.array([0.1, 0.4, 0.6, 0.2, 0.7, 0.3])
Y_PROB = np.stack([1 - P_ONE, P_ONE], axis=1)
EXPECTED = {
    "accuracy": 2 / 3,
    "balanced_accuracy": 0.625,
    "f1_macro": 0.625,
    "precision_weighted": 2 / 3,
    "recall_weighted": 2 / 3,
    "f1_weighted": 2 / 3,
    "auroc": 0.75,
}


def test_metrics_match_hand_computed_example() -> None:
    values = classification_metrics(Y_TRUE, Y_PROB)
    assert set(values) == set(METRICS)
    for name, expected in EXPECTED.items():
        assert values[name] == pytest.approx(expected), name
    assert confusion(Y_TRUE, Y_PROB.argmax(1), 2).tolist() == [[3, 1], [1, 1]]


def test_auroc_counts_ties_as_half() -> None:
    # positive 0.5 ties with negative 0.5 (½), beats 0.2 (1) → (1.5 + 2) / (2·2) = 0.875 with positive 0.9
    y_true = np.array([0, 0, 1, 1])
    p = np.array([0.5, 0.2, 0.5, 0.9])
    assert classification_metrics(y_true, np.stack([1 - p, p], 1))["auroc"] == pytest.approx(0.875)


def test_multiclass_auroc_is_one_vs_rest_macro() -> None:
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 3, 90)
    prob = rng.dirichlet(np.ones(3), 90) + np.eye(3)[y_true] * 0.3
    prob /= prob.sum(1, keepdims=True)
    expected = roc_auc_score(y_true, prob, multi_class="ovr", average="macro")
    assert classification_metrics(y_true, prob)["auroc"] == pytest.approx(expected)


def _random_predictions(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, k, n)
    prob = rng.dirichlet(np.ones(k), n) + 0.4 * np.eye(k)[y_true]
    prob = np.round(prob / prob.sum(1, keepdims=True), 2)  # rounding creates tied scores
    return y_true, prob


@pytest.mark.parametrize("k", [2, 4])
def test_vectorised_resamples_equal_sklearn_on_repeated_samples(k: int) -> None:
    y_true, prob = _random_predictions(60, k, seed=k)
    rng = np.random.default_rng(1)
    counts = np.stack(
        [np.ones(60), rng.multinomial(60, np.ones(60) / 60), rng.multinomial(60, np.ones(60) / 60)]
    )
    for metric in METRICS:
        vectorised = resampled_metric(metric, y_true, prob, counts)
        for row, weights in zip(vectorised, counts, strict=True):
            repeat = np.repeat(np.arange(60), weights.astype(int))
            expected = classification_metrics(y_true[repeat], prob[repeat])[metric]
            assert row == pytest.approx(expected), metric


def test_bootstrap_ci_brackets_the_estimate_and_is_seeded() -> None:
    y_true, prob = _random_predictions(200, 2, seed=3)
    point = classification_metrics(y_true, prob)
    for metric in ("accuracy", "auroc"):
        low, high = bootstrap_ci(y_true, prob, metric, n_resamples=500, seed=0)
        assert low < point[metric] < high
        assert 0.02 < high - low < 0.3
        assert bootstrap_ci(y_true, prob, metric, n_resamples=500, seed=0) == (low, high)


def test_paired_bootstrap_identical_predictions_give_p_one() -> None:
    y_true, prob = _random_predictions(100, 3, seed=4)
    diff, (low, high), p = paired_bootstrap(y_true, prob, prob.copy(), "accuracy", n=300, seed=0)
    assert diff == 0.0 and low == 0.0 and high == 0.0
    assert p == pytest.approx(1.0)


def test_paired_bootstrap_detects_a_clearly_better_model() -> None:
    y_true, noisy = _random_predictions(200, 2, seed=5)
    rng = np.random.default_rng(6)
    guess = rng.dirichlet(np.ones(2), 200)
    for metric in ("accuracy", "auroc"):
        diff, (low, high), p = paired_bootstrap(y_true, noisy, guess, metric, n=1000, seed=0)
        assert diff > 0.1 and 0 < low < diff < high
        assert p < 0.01
        reverse = paired_bootstrap(y_true, guess, noisy, metric, n=1000, seed=0)
        assert reverse[0] == pytest.approx(-diff) and reverse[2] == pytest.approx(p)


def test_collapse_flag() -> None:
    balanced = np.array([0] * 50 + [1] * 50)
    assert is_collapsed(balanced, np.zeros(100, int))
    assert is_collapsed(balanced, np.r_[np.zeros(96, int), np.ones(4, int)])
    assert not is_collapsed(balanced, balanced)
    # 96/4 test set: always predicting the majority is not collapsed (the test set is that imbalanced), but
    # it is at the floor: its balanced accuracy is chance (1/2) and its accuracy the majority-class rate.
    imbalanced = np.array([0] * 96 + [1] * 4)
    assert floor_reason(imbalanced, np.zeros(100, int)) == "at the floor"
    assert is_collapsed(imbalanced, np.zeros(100, int))
    assert floor_reason(balanced, np.zeros(100, int)) == "collapsed"
    three = np.repeat(np.arange(3), 30)
    guessing = np.tile(np.arange(3), 30)  # every class predicted equally often, a third of each class right
    assert floor_reason(three, guessing) == "at the floor" and floor_reason(three, three) == ""
    assert floor_reason(three, (three + 1) % 3) == "at the floor"  # below chance: worse than guessing


def test_mean_sd_and_seed_summary() -> None:
    assert mean_sd([0.8, 0.9, 1.0]) == (pytest.approx(0.9), pytest.approx(0.1))
    assert mean_sd([0.7]) == (0.7, 0.0)
    rows = [
        {
            "dataset": "d",
            "encoder": "e",
            "protocol": "knn",
            "label_fraction": 1.0,
            "accuracy": a,
            "auroc": 0.5,
        }
        for a in (0.6, 0.8)
    ] + [
        {
            "dataset": "d",
            "encoder": "e",
            "protocol": "linear",
            "label_fraction": 1.0,
            "accuracy": 0.9,
            "auroc": 0.7,
        }
    ]
    summary = summarise_seeds(rows, metrics=("accuracy", "auroc"))
    assert [s["protocol"] for s in summary] == ["knn", "linear"]
    assert summary[0]["n_seeds"] == 2
    assert summary[0]["accuracy_mean"] == pytest.approx(0.7)
    assert summary[0]["accuracy_sd"] == pytest.approx(np.std([0.6, 0.8], ddof=1))
    assert summary[1]["accuracy_sd"] == 0.0
