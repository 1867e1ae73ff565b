"""Budget honesty: from an SSL encoder's ``history.csv``, was it still improving when its budget ran out, and
what would more training cost at the speed it was measured at?

The rule: fit a least-squares line to validation kNN (balanced accuracy where that is the primary metric, else
accuracy) over the last ``MONITORS`` monitored epochs (at least two), and project it over another budget as long
as the one the encoder had (slope × epochs trained). The encoder was *still improving* when that projected gain
is at least ``GAIN`` (one point), else *converged*; with fewer than two monitors it is *unknown*. A linear
projection overstates what a second budget would add, so *converged* is the safe side: even at the final rate,
doubling the budget would add less than a point. Under a cosine schedule the final rate also falls with the
learning rate, so *converged* means this budget's schedule ran its course.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MONITORS = 3
"""The last validation kNN monitors the slope is fitted to."""
GAIN = 0.01
"""Projected gain over another budget (as a proportion: one point) from which an encoder is still improving."""
HISTORY_METRICS = {"balanced_accuracy": "knn_balanced_accuracy", "accuracy": "knn_accuracy"}


@dataclass(frozen=True)
class Budget:
    """One pre-training run's budget and where its validation kNN was heading when it ran out."""

    epochs: int
    monitors: list[tuple[int, float]]
    """(epoch, validation kNN) of the monitors the slope is fitted to (epochs counted from 1)."""
    gain: float
    """The line's rise over another ``epochs`` epochs (NaN with fewer than two monitors)."""
    images_per_s: float
    seconds_per_epoch: float
    """Wall time per epoch, kNN monitor included (history.csv's cumulative ``wall_s`` over the epochs)."""
    metric: str
    """The history column the rule read: ``knn_balanced_accuracy`` or ``knn_accuracy``."""

    @property
    def improving(self) -> bool | None:
        """True while still improving, False once converged, None when the monitors are too few to tell."""
        return None if not math.isfinite(self.gain) else self.gain >= GAIN

    @property
    def status(self) -> str:
        return {True: "still improving", False: "converged", None: "unknown"}[self.improving]

    @property
    def more_seconds(self) -> float:
        """The wall time of another budget as long as this one (``epochs`` more epochs) at the measured speed."""
        return self.epochs * self.seconds_per_epoch


def budget_of(history: dict[str, np.ndarray], primary_metric: str = "accuracy") -> Budget | None:
    """The budget of one ``history.csv`` (columns as ``RunDir.histories`` gives them); None without epochs."""
    epochs = history.get("epoch")
    if epochs is None or not len(epochs):
        return None
    column = HISTORY_METRICS.get(primary_metric, "knn_accuracy")
    if not np.isfinite(history.get(column, np.array([np.nan]))).any():
        column = "knn_accuracy"
    values = history.get(column, np.full(len(epochs), np.nan))
    done = np.flatnonzero(np.isfinite(values))[-MONITORS:]
    monitors = [(int(epochs[i]) + 1, float(values[i])) for i in done]
    trained = int(np.nanmax(epochs)) + 1
    gain = math.nan
    if len(monitors) >= 2:
        x, y = np.array(monitors, dtype=float).T
        gain = float(np.polyfit(x, y, 1)[0]) * trained
    wall = history.get("wall_s", np.array([np.nan]))
    speed = history.get("images_per_s", np.array([np.nan]))
    seconds = float(np.nanmax(wall)) / trained if np.isfinite(wall).any() else math.nan
    images_per_s = float(np.nanmedian(speed)) if np.isfinite(speed).any() else math.nan
    return Budget(trained, monitors, gain, images_per_s, seconds, column)


def duration(seconds: float) -> str:
    """'45 s', '12 min', '3.5 h'."""
    if not math.isfinite(seconds):
        return "an unmeasured time"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def cost_text(budget: Budget) -> str:
    """'Another 10 epochs (twice its budget) would take ≈ 16 s at the measured 250 images/s'."""
    speed = (
        f" at the measured {budget.images_per_s:.0f} images/s" if math.isfinite(budget.images_per_s) else ""
    )
    more = f"Another {budget.epochs} epochs (twice its budget) would take ≈ {duration(budget.more_seconds)}"
    return more + speed


def budget_status(budgets: list[Budget]) -> str:
    """One encoder's status over its runs (folds): 'still improving', 'still improving (2 of 5 folds)',
    'converged' or 'convergence unknown'."""
    improving = sum(1 for b in budgets if b.improving)
    if improving:
        return "still improving" + (f" ({improving} of {len(budgets)} folds)" if len(budgets) > 1 else "")
    if budgets and all(b.improving is False for b in budgets):
        return "converged"
    return "convergence unknown"
