"""Why a linear probe can score lower with more labels: validation (drawn like train) against the test set.

Reads the frozen features an evaluation saved (``<run>/<dataset>/eval/<encoder>/features.npz``), fits
medssl's linear probe (C chosen on validation, as the ``linear`` protocol does) at each label fraction on the
same nested label subsets, and prints per fraction: the chosen C, validation and test balanced accuracy and
accuracy, test AUROC, the share of test images called positive against the test set's and the training set's
positive share, and the test accuracy at the best single threshold (what ranking alone would allow). Binary
tasks only. One JSON line per fraction.

    .venv/bin/python benchmarks/probe_shift.py runs/chest_xray_contenders/chest_xray/eval/simclr-resnet18-random
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from medssl.evaluate.fractions import label_subset
from medssl.evaluate.probe import linear_probe


def best_threshold_accuracy(labels: np.ndarray, scores: np.ndarray) -> float:
    """The highest accuracy any single threshold on ``scores`` reaches."""
    order = np.argsort(-scores)
    positives = np.concatenate([[0], np.cumsum(labels[order] == 1)])
    negatives_below = (labels == 0).sum() - np.concatenate([[0], np.cumsum(labels[order] == 0)])
    return float(np.max(positives + negatives_below) / len(labels))


def analyse(features: dict[str, np.ndarray], fraction: float, seed: int = 0) -> dict[str, float]:
    labels = features["train_labels"]
    kept = label_subset(labels, np.arange(len(labels)), fraction, seed)
    val_x, val_y = features["val"], features["val_labels"]
    test_x, test_y = features["test"], features["test_labels"]
    probe = linear_probe(features["train"][kept], labels[kept], val_x, val_y, test_x, 2)
    test_call = probe.test_prob.argmax(axis=1)
    scores = probe.test_prob[:, 1]
    return {
        "fraction": fraction,
        "n_labelled": len(kept),
        "C": probe.C,
        "val_balanced_accuracy": round(probe.val_balanced_accuracy, 4),
        "test_balanced_accuracy": round(float(balanced_accuracy_score(test_y, test_call)), 4),
        "test_accuracy": round(float(np.mean(test_call == test_y)), 4),
        "test_auroc": round(float(roc_auc_score(test_y, scores)), 4),
        "test_called_positive": round(float(np.mean(test_call == 1)), 4),
        "test_positive_share": round(float(np.mean(test_y == 1)), 4),
        "train_positive_share": round(float(np.mean(labels == 1)), 4),
        "test_accuracy_best_threshold": round(best_threshold_accuracy(test_y, scores), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("eval_dir", type=Path, help="An encoder's evaluation folder holding features.npz")
    parser.add_argument("--fractions", default="0.01,0.1,1.0")
    args = parser.parse_args()
    with np.load(args.eval_dir / "features.npz") as saved:
        features = {key: saved[key] for key in saved.files}
    for fraction in (float(f) for f in args.fractions.split(",")):
        print(json.dumps(analyse(features, fraction)))


if __name__ == "__main__":
    main()
