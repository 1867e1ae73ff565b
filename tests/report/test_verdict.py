"""The verdict: wording, alignment of prediction files, and the direction of a clear difference."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from medssl.report import write_report
from medssl.report.verdict import align, verdict_sentence
from medssl.rundir.results import RESULT_COLUMNS

SSL = "in-domain SSL (VICReg, resnet18)"
IMAGENET = "ImageNet frozen (efficientnet_lite0)"


def test_sentence_says_which_is_better_only_when_significant() -> None:
    better, kind = verdict_sentence(SSL, IMAGENET, 0.031, 0.02)
    assert (
        better
        == f"In-domain SSL (VICReg, resnet18) is better than {IMAGENET} by +3.1 points of accuracy, p=0.02."
    )
    assert kind == "verdict-better"
    worse, kind = verdict_sentence(SSL, IMAGENET, -0.05, 0.0004)
    assert worse == f"{IMAGENET} is better than {SSL} by 5.0 points of accuracy, p<0.001."
    assert kind == "verdict-worse"
    same, kind = verdict_sentence(SSL, IMAGENET, -0.008, 0.61)
    assert same.startswith("No significant difference") and "−0.8 points" in same and "p=0.61" in same
    assert kind == "verdict-same"
    assert verdict_sentence(SSL, IMAGENET, 0.2, float("nan"))[1] == "verdict-same"


def test_align_matches_images_by_test_index() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 12)
    prob = rng.dirichlet(np.ones(3), 12)
    order = rng.permutation(12)
    a = {"y_true": y, "y_prob": prob, "test_index": np.arange(100, 112)}
    b = {"y_true": y[order], "y_prob": prob[order], "test_index": np.arange(100, 112)[order]}
    y_true, prob_a, prob_b = align(a, b)
    np.testing.assert_array_equal(prob_a, prob_b)
    np.testing.assert_array_equal(y_true, y)
    b["y_true"] = (b["y_true"] + 1) % 3
    assert align(a, b) is None


def _predictions(root: Path, encoder: str, y: np.ndarray, correct: np.ndarray, rng) -> str:
    """A predictions file that is right exactly where ``correct`` is True."""
    prob = rng.dirichlet(np.ones(3), len(y)) * 0.4
    predicted = np.where(correct, y, (y + 1) % 3)
    prob[np.arange(len(y)), predicted] += 1.0
    relative = f"ds/eval/{encoder}/predictions/linear-f1-s0.npz"
    (root / relative).parent.mkdir(parents=True)
    np.savez(
        root / relative, y_true=y, y_prob=prob / prob.sum(1, keepdims=True), test_index=np.arange(len(y))
    )
    return relative


def _row(encoder: str, method: str, accuracy: float, predictions: str) -> dict:
    backbone = "resnet18" if method != "imagenet" else "efficientnet_lite0"
    return {
        "dataset": "ds",
        "encoder": encoder,
        "method": method,
        "backbone": backbone,
        "init": "random",
        "protocol": "linear",
        "label_fraction": 1.0,
        "seed": 0,
        "n_test": 60,
        "accuracy": accuracy,
        "collapsed": False,
        "predictions": predictions,
    }


@pytest.mark.parametrize("ssl_wins", [True, False])
def test_clear_difference_gives_a_significant_verdict(tmp_path: Path, ssl_wins: bool) -> None:
    """A minimal run (results.csv and predictions only: no config, features or images) still reports."""
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(3), 20)
    strong, weak = np.ones(60, bool), rng.random(60) < 0.5
    ssl_correct, imagenet_correct = (strong, weak) if ssl_wins else (weak, strong)
    rows = [
        _row(
            "vicreg-resnet18-random",
            "vicreg",
            ssl_correct.mean(),
            _predictions(tmp_path, "vicreg-resnet18-random", y, ssl_correct, rng),
        ),
        _row(
            "imagenet-efficientnet_lite0",
            "imagenet",
            imagenet_correct.mean(),
            _predictions(tmp_path, "imagenet-efficientnet_lite0", y, imagenet_correct, rng),
        ),
    ]
    with (tmp_path / "results.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=RESULT_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    md = write_report(tmp_path, n_bootstrap=500)[0].read_text()
    sentence = next(line for line in md.splitlines() if "points of accuracy" in line)
    gap = f"{100 * abs(strong.mean() - weak.mean()):.1f}"
    if ssl_wins:
        assert sentence.startswith("> In-domain SSL (VICReg, resnet18) is better than ImageNet frozen")
        assert f"+{gap} points" in sentence
    else:
        assert sentence.startswith(r"> ImageNet frozen (efficientnet\_lite0) is better than in-domain SSL")
        assert f"by {gap} points" in sentence
    assert "p<0.001" in sentence or "p=0.00" in sentence
    assert "Pictures skipped" in md and "No pre-training history.csv" in md
