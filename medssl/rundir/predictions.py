"""Predictions files (one per evaluation cell) and the one rule that pairs two of them by test image.

``<dataset>/eval/<encoder>/predictions/<protocol>-f<fraction>-s<seed>.npz`` holds ``y_true``, ``y_prob``
(n_test, n_classes) and ``test_index`` (the dataset index of each test image). ``medssl compare`` and the
report's verdict both pair files with ``align_predictions``: the same test images and labels, or an error.
Under cross-validation ``pool_predictions`` joins the folds' files into one out-of-fold set (each image once).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from medssl.errors import DataError
from medssl.rundir.atomic import atomic_write

Predictions = dict[str, np.ndarray]
KEYS = ("y_true", "y_prob", "test_index")


def predictions_name(protocol: str, label_fraction: float, seed: int) -> str:
    """``<protocol>-f<fraction>-s<seed>.npz``, e.g. ``linear-f0.1-s0.npz``."""
    return f"{protocol}-f{label_fraction:g}-s{seed}.npz"


def save_predictions(path: Path, y_true: np.ndarray, y_prob: np.ndarray, test_index: np.ndarray) -> None:
    """Write ``y_true``, ``y_prob`` and ``test_index`` atomically."""
    arrays = {
        "y_true": np.asarray(y_true),
        "y_prob": np.asarray(y_prob, np.float32),
        "test_index": test_index,
    }
    atomic_write(path, lambda tmp: np.savez(tmp, **arrays))


def load_predictions(path: str | Path) -> Predictions:
    """``y_true``, ``y_prob`` and ``test_index`` of a predictions file; a DataError for anything else."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in KEYS}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(
            f"{path}: not a predictions file written by `medssl evaluate` ({error.__class__.__name__}); "
            "pass a predictions/<protocol>-f<fraction>-s<seed>.npz file"
        ) from None
    n = len(arrays["y_true"])
    if arrays["y_prob"].ndim != 2 or len(arrays["y_prob"]) != n or len(arrays["test_index"]) != n:
        raise DataError(f"{path}: y_true, y_prob and test_index do not match; pass a file written by medssl")
    return arrays


def align_predictions(
    a: Predictions, b: Predictions, names: tuple[str, str] = ("A", "B")
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y_true, prob_a, prob_b) with ``b`` reordered to ``a``'s test images.

    A DataError unless both cover exactly the same test images with the same labels and classes: a paired
    comparison on different images (or a silent intersection of them) would not be a comparison.
    """
    index_a, index_b = a["test_index"], b["test_index"]
    if len(index_a) != len(index_b) or set(index_a.tolist()) != set(index_b.tolist()):
        raise DataError(
            f"{names[0]} ({len(index_a)} test images) and {names[1]} ({len(index_b)} test images) are not "
            "predictions on the same test images; evaluate both with the same data and split.csv"
        )
    position = {int(i): p for p, i in enumerate(index_b)}
    order = np.array([position[int(i)] for i in index_a], dtype=np.int64)
    if not np.array_equal(a["y_true"], b["y_true"][order]) or a["y_prob"].shape != b["y_prob"].shape:
        raise DataError(
            f"{names[0]} and {names[1]} disagree on the test labels or classes; were they made on the same dataset?"
        )
    return a["y_true"], a["y_prob"], b["y_prob"][order]


def pool_predictions(parts: list[Predictions], names: list[str] | None = None) -> Predictions:
    """The out-of-fold predictions of a cross-validation: the folds' files joined and ordered by image id.

    A DataError unless the folds' test images are disjoint (every image predicted exactly once) and the
    folds agree on the classes; the pooled set then pairs with ``align_predictions`` like any other.
    """
    names = names or [f"fold {k}" for k in range(1, len(parts) + 1)]
    if not parts:
        raise DataError("no fold predictions to pool; run the cross-validation cells first")
    widths = {part["y_prob"].shape[1] for part in parts}
    if len(widths) > 1:
        raise DataError(
            f"{', '.join(names)}: the folds' predictions have different classes ({sorted(widths)})"
        )
    index = np.concatenate([part["test_index"] for part in parts])
    unique, counts = np.unique(index, return_counts=True)
    if len(unique) != len(index):
        repeated = unique[counts > 1]
        raise DataError(
            f"{', '.join(names)}: {len(repeated)} test images appear in more than one fold (e.g. image "
            f"{int(repeated[0])}); pool the folds of one cross-validation (one split.csv)"
        )
    order = np.argsort(index, kind="stable")
    return {
        "y_true": np.concatenate([part["y_true"] for part in parts])[order],
        "y_prob": np.concatenate([part["y_prob"] for part in parts])[order],
        "test_index": index[order],
    }
