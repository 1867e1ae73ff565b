"""The verdict: wording, alignment of prediction files, and the direction of a clear difference."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from medssl.errors import DataError
from medssl.evaluate.compare import better_of, compare_predictions
from medssl.report import write_report
from medssl.report.verdict import align, verdict_sentence
from medssl.rundir.results import RESULT_COLUMNS

SSL = "in-domain SSL (VICReg, resnet18, random init)"
IMAGENET = "ImageNet frozen (efficientnet_lite0)"


def test_sentence_says_which_is_better_only_when_significant() -> None:
    better, kind = verdict_sentence(SSL, IMAGENET, 0.031, 0.02)
    assert (
        better
        == f"In-domain SSL (VICReg, resnet18, random init) is better than {IMAGENET} by +3.1 points of accuracy, p=0.02."
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


def _minimal_run(root: Path, ssl_correct: np.ndarray, imagenet_correct: np.ndarray) -> list[str]:
    """results.csv and two predictions files (SSL, ImageNet) on 60 test images; returns the files."""
    rng = np.random.default_rng(2)
    y = np.repeat(np.arange(3), 20)
    files = [
        _predictions(root, "vicreg-resnet18-random", y, ssl_correct, rng),
        _predictions(root, "imagenet-efficientnet_lite0", y, imagenet_correct, rng),
    ]
    rows = [
        _row("vicreg-resnet18-random", "vicreg", ssl_correct.mean(), files[0]),
        _row("imagenet-efficientnet_lite0", "imagenet", imagenet_correct.mean(), files[1]),
    ]
    with (root / "results.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=RESULT_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return files


@pytest.mark.parametrize("ssl_wins", [True, False])
def test_clear_difference_gives_a_significant_verdict(tmp_path: Path, ssl_wins: bool) -> None:
    """A minimal run (results.csv and predictions only: no config, features or images) still reports."""
    rng = np.random.default_rng(1)
    strong, weak = np.ones(60, bool), rng.random(60) < 0.5
    ssl_correct, imagenet_correct = (strong, weak) if ssl_wins else (weak, strong)
    _minimal_run(tmp_path, ssl_correct, imagenet_correct)
    md = write_report(tmp_path, n_bootstrap=500)[0].read_text()
    sentence = next(line for line in md.splitlines() if "points of accuracy" in line)
    gap = f"{100 * abs(strong.mean() - weak.mean()):.1f}"
    if ssl_wins:
        assert sentence.startswith(
            "> At 100 % labels: in-domain SSL (VICReg, resnet18, random init) is better than ImageNet frozen"
        )
        assert f"+{gap} points" in sentence
    else:
        assert sentence.startswith(
            r"> At 100 % labels: ImageNet frozen (efficientnet\_lite0) is better than in-domain SSL"
        )
        assert f"by {gap} points" in sentence
    assert "p<0.001" in sentence or "p=0.00" in sentence
    assert "No encoder has retrieval images" in md and "No pre-training history.csv" in md


def test_the_verdict_says_how_many_encoders_it_picked_from(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    _minimal_run(tmp_path, np.ones(60, bool), rng.random(60) < 0.5)
    one_each = write_report(tmp_path, n_bootstrap=200)[0].read_text()
    assert "in-domain SSL and" not in one_each  # one of each: nothing was picked
    y, weaker = np.repeat(np.arange(3), 20), rng.random(60) < 0.7
    extra = _predictions(tmp_path, "simclr-resnet18-random", y, weaker, rng)
    with (tmp_path / "results.csv").open("a", newline="") as handle:
        row = _row("simclr-resnet18-random", "simclr", weaker.mean(), extra)
        csv.DictWriter(handle, fieldnames=RESULT_COLUMNS, extrasaction="ignore").writerow(row)
    md = write_report(tmp_path, n_bootstrap=200)[0].read_text()
    assert (
        "best of each kind by linear probe accuracy at that fraction (of 2 in-domain SSL encoders and 1 ImageNet encoder;"
        in md
    )
    assert "picked on these test images" in md


def _verdict_line(md: str) -> str:
    return next(line for line in md.splitlines() if "points of accuracy" in line or "no verdict" in line)


@pytest.mark.parametrize("share", [1.0, 0.75, 0.6])
def test_compare_and_the_report_give_the_same_verdict(tmp_path: Path, share: float) -> None:
    """Same prediction files: ``medssl compare``'s sentence and the report's verdict agree, figures too."""
    rng = np.random.default_rng(3)
    ssl_correct, imagenet_correct = rng.random(60) < share, rng.random(60) < 0.6
    files = _minimal_run(tmp_path, ssl_correct, imagenet_correct)
    (comparison,) = compare_predictions(tmp_path / files[0], tmp_path / files[1], ("accuracy",), 500)
    line = _verdict_line(write_report(tmp_path, n_bootstrap=500)[0].read_text())
    winner = better_of(comparison.difference, comparison.p_value)
    expected = {1: "in-domain SSL", -1: "ImageNet frozen", 0: "no significant difference"}[winner]
    expected = f"> At 100 % labels: {expected}"
    assert line.startswith(expected), (line, comparison)
    assert f"{100 * abs(comparison.difference):.1f} points" in line
    assert ("better" in comparison.sentence()) == (winner != 0)


def test_compare_and_the_report_both_refuse_different_test_images(tmp_path: Path) -> None:
    files = _minimal_run(tmp_path, np.ones(60, bool), np.ones(60, bool))
    path = tmp_path / files[1]
    data = dict(np.load(path))
    np.savez(path, **{key: value[:-5] for key, value in data.items()})  # five test images fewer
    with pytest.raises(DataError, match="not predictions on the same test images"):
        compare_predictions(tmp_path / files[0], path)
    line = _verdict_line(write_report(tmp_path, n_bootstrap=200)[0].read_text())
    assert "no verdict: the prediction files are missing or do not cover the same test images" in line
