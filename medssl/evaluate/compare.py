"""Paired comparison of two models' predictions on the same test images ("is in-domain SSL better here?")."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medssl.errors import DataError
from medssl.evaluate.api import load_predictions, predictions_name
from medssl.evaluate.metrics import classification_metrics, paired_bootstrap


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

    def sentence(self, name_a: str = "A", name_b: str = "B", alpha: float = 0.05) -> str:
        """One line a clinician can read."""
        ci = f"95% CI {self.ci_low:+.3f} to {self.ci_high:+.3f}"
        head = (
            f"{self.metric}: {name_a} {self.a:.3f} vs {name_b} {self.b:.3f}, "
            f"difference {self.difference:+.3f} ({ci}), p = {self.p_value:.3g}"
        )
        if not np.isfinite(self.p_value) or self.p_value >= alpha:
            return f"{head} → no significant difference on these {self.n_test} test images"
        better = name_a if self.difference > 0 else name_b
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


def _aligned(
    a: dict[str, np.ndarray], b: dict[str, np.ndarray], names: tuple[str, str]
) -> dict[str, np.ndarray]:
    """``b`` reordered to ``a``'s test images; DataError unless both cover exactly the same images and labels."""
    index_a, index_b = a["test_index"], b["test_index"]
    if len(index_a) != len(index_b) or set(index_a.tolist()) != set(index_b.tolist()):
        raise DataError(
            f"{names[0]} ({len(index_a)} test images) and {names[1]} ({len(index_b)} test images) are not "
            "predictions on the same test images; evaluate both with the same data and split.csv"
        )
    position = {int(i): p for p, i in enumerate(index_b)}
    order = np.array([position[int(i)] for i in index_a])
    b = {key: value[order] for key, value in b.items()}
    if not np.array_equal(a["y_true"], b["y_true"]) or a["y_prob"].shape != b["y_prob"].shape:
        raise DataError(
            f"{names[0]} and {names[1]} disagree on the test labels or classes; were they made on the same dataset?"
        )
    return b


def compare_predictions(
    path_a: str | Path,
    path_b: str | Path,
    metrics: tuple[str, ...] = ("accuracy", "auroc"),
    n_resamples: int = 2000,
    seed: int = 0,
) -> list[Comparison]:
    """Paired bootstrap comparison of two predictions files made on the same test images."""
    a, b = load_predictions(path_a), load_predictions(path_b)
    b = _aligned(a, b, (str(path_a), str(path_b)))
    y_true = a["y_true"]
    values_a = classification_metrics(y_true, a["y_prob"])
    values_b = classification_metrics(y_true, b["y_prob"])
    out = []
    for metric in metrics:
        diff, (low, high), p = paired_bootstrap(y_true, a["y_prob"], b["y_prob"], metric, n_resamples, seed)
        out.append(Comparison(metric, values_a[metric], values_b[metric], diff, low, high, p, len(y_true)))
    return out
