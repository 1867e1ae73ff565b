"""Paired comparison of two models' predictions on the same test images ("is in-domain SSL better here?")."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medssl.errors import DataError
from medssl.evaluate.metrics import classification_metrics, paired_bootstrap
from medssl.rundir.predictions import align_predictions, load_predictions, predictions_name

ALPHA = 0.05


def better_of(difference: float, p_value: float, alpha: float = ALPHA) -> int:
    """+1 when A is significantly better, −1 when B is, 0 otherwise: the one rule every verdict uses."""
    if not np.isfinite(p_value) or p_value >= alpha:
        return 0
    return 1 if difference > 0 else -1


@dataclass
class Comparison:
    """metric(A) − metric(B) on the same test images, with a paired-bootstrap CI and two-sided p-value."""

    metric: str
    a: float
    b: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    n_test: int

    def sentence(self, name_a: str = "A", name_b: str = "B", alpha: float = ALPHA) -> str:
        """One line a clinician can read."""
        ci = f"95% CI {self.ci_low:+.3f} to {self.ci_high:+.3f}"
        head = (
            f"{self.metric}: {name_a} {self.a:.3f} vs {name_b} {self.b:.3f}, "
            f"difference {self.difference:+.3f} ({ci}), p = {self.p_value:.3g}"
        )
        winner = better_of(self.difference, self.p_value, alpha)
        if winner == 0:
            return f"{head} → no significant difference on these {self.n_test} test images"
        better = name_a if winner > 0 else name_b
        return f"{head} → {better} is better on these {self.n_test} test images"


def resolve_predictions(
    path: str | Path, protocol: str | None, fraction: float | None, seed: int | None
) -> Path:
    """A predictions ``.npz``, or the one of ``protocol``/``fraction``/``seed`` found under an evaluation dir."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise DataError(f"{path}: no such predictions file or evaluation directory")
    if protocol is None or fraction is None or seed is None:
        raise DataError(
            f"{path} is a directory; also pass --protocol, --fraction and --seed to pick predictions"
        )
    name = predictions_name(protocol, fraction, seed)
    found = sorted(p for p in path.rglob(name) if p.parent.name == "predictions")
    if len(found) != 1:
        listing = ", ".join(str(p) for p in found[:4]) or "none"
        raise DataError(
            f"{path}: expected exactly one predictions/{name}, found {len(found)} ({listing}); "
            "pass the .npz file itself"
        )
    return found[0]


def compare_predictions(
    path_a: str | Path,
    path_b: str | Path,
    metrics: tuple[str, ...] = ("accuracy", "auroc"),
    n_resamples: int = 2000,
    seed: int = 0,
) -> list[Comparison]:
    """Paired bootstrap comparison of two predictions files made on the same test images."""
    a, b = load_predictions(path_a), load_predictions(path_b)
    y_true, prob_a, prob_b = align_predictions(a, b, (str(path_a), str(path_b)))
    return compare_probabilities(y_true, prob_a, prob_b, metrics, n_resamples, seed)


def compare_probabilities(
    y_true: np.ndarray,
    prob_a: np.ndarray,
    prob_b: np.ndarray,
    metrics: tuple[str, ...] = ("accuracy", "auroc"),
    n_resamples: int = 2000,
    seed: int = 0,
) -> list[Comparison]:
    """The paired comparison of aligned probabilities: what ``medssl compare`` and the report both use."""
    values_a = classification_metrics(y_true, prob_a)
    values_b = classification_metrics(y_true, prob_b)
    out = []
    for metric in metrics:
        diff, (low, high), p = paired_bootstrap(y_true, prob_a, prob_b, metric, n_resamples, seed)
        out.append(Comparison(metric, values_a[metric], values_b[metric], diff, low, high, p, len(y_true)))
    return out
