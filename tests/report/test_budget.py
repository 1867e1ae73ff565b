"""The budget rule on history.csv columns, and the summary line over label fractions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medssl.evaluate.compare import Comparison
from medssl.report.budget import budget_of, budget_status, duration
from medssl.report.tables import CONTENDERS
from medssl.report.verdict import Pairing, summary_line


def history(knn: list[float | None], balanced: list[float | None] | None = None) -> dict[str, np.ndarray]:
    """Columns of a history.csv with one row per epoch, 2 s and 100 images/s an epoch."""
    n = len(knn)
    as_array = lambda values: np.array([math.nan if v is None else v for v in values])  # noqa: E731
    return {
        "epoch": np.arange(n, dtype=float),
        "knn_accuracy": as_array(knn),
        "knn_balanced_accuracy": as_array(balanced or [None] * n),
        "images_per_s": np.full(n, 100.0),
        "wall_s": 2.0 * np.arange(1, n + 1),
    }


def test_still_improving_when_the_line_through_the_last_monitors_gains_a_point_over_another_budget() -> None:
    rising = budget_of(history([None, 0.50, None, 0.52, None, 0.54]))  # +1 point an epoch, 6 epochs
    assert rising is not None and rising.epochs == 6 and rising.monitors == [(2, 0.5), (4, 0.52), (6, 0.54)]
    assert rising.gain == pytest.approx(0.06) and rising.improving and rising.status == "still improving"
    flat = budget_of(history([0.4, 0.60, 0.601, 0.600]))  # only the last three monitors count
    assert flat is not None and abs(flat.gain) < 0.01 and flat.improving is False
    assert flat.monitors[0] == (2, 0.6)
    falling = budget_of(history([0.6, 0.5]))
    assert falling is not None and falling.status == "converged"
    single = budget_of(history([None, None, 0.5]))
    assert single is not None and single.improving is None and math.isnan(single.gain)


def test_speed_cost_and_the_primary_metric_column() -> None:
    budget = budget_of(history([0.5, 0.5, 0.5, 0.5], [0.3, 0.4, 0.5, 0.6]), "balanced_accuracy")
    assert budget is not None and budget.metric == "knn_balanced_accuracy" and budget.improving
    assert budget.images_per_s == 100 and budget.seconds_per_epoch == 2 and budget.more_seconds == 8
    plain = budget_of(history([0.5, 0.5, 0.5, 0.5]), "balanced_accuracy")  # no balanced column: accuracy
    assert plain is not None and plain.metric == "knn_accuracy" and plain.improving is False
    assert budget_of({}) is None
    assert (duration(45), duration(600), duration(4 * 3600)) == ("45 s", "10 min", "4.0 h")
    folds = [budget, plain, plain]
    assert budget_status(folds) == "still improving (1 of 3 folds)" and budget_status([plain]) == "converged"


def _pairing(fraction: float, outcome: int | None) -> Pairing:
    found = Pairing(fraction, *CONTENDERS[:2])
    if outcome is None:
        found.why = "no encoder"
        return found
    difference, p = {1: (0.1, 0.001), -1: (-0.1, 0.001), 0: (0.01, 0.5)}[outcome]
    found.compared = {"accuracy": Comparison("accuracy", 0.8, 0.7, difference, 0, 0, p, 100)}
    return found


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        (
            [1, 1, 0],
            "The answer changes with the number of labels: in-domain SSL is better than ImageNet transfer up "
            "to 10 % labels; no significant difference at 100 %.",
        ),
        (
            [0, 1, 1, 0],
            "The answer changes with the number of labels: no significant difference at 1 % labels; in-domain "
            "SSL is better than ImageNet transfer from 10 % to 50 %; no significant difference at 100 %.",
        ),
        (
            [-1, 0, 0, 0],
            "The answer changes with the number of labels: ImageNet transfer is better than in-domain SSL at "
            "1 % labels; no significant difference from 10 %.",
        ),
        (
            [-1, -1],
            "The answer does not change with the number of labels: ImageNet transfer is better than in-domain "
            "SSL at every label fraction run (1 %, 10 %).",
        ),
        (
            [None, 0],
            "The answer changes with the number of labels: no verdict at 1 % labels; no significant difference at 10 %.",
        ),
    ],
)
def test_the_summary_says_where_the_answer_changes(outcomes: list[int | None], expected: str) -> None:
    fractions = [0.01, 0.1, 0.5, 1.0][: len(outcomes)] if len(outcomes) != 3 else [0.01, 0.1, 1.0]
    text, _ = summary_line([_pairing(f, o) for f, o in zip(fractions, outcomes, strict=True)])
    assert text[0].upper() + text[1:] == expected
