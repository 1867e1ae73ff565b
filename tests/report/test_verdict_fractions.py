"""The verdict at every label fraction, the floor rows and flags, not-applicable kNN cells, ImageNet-initialised
SSL as a contender, and the pre-training budget, on small run directories written here with medssl's own writers
(results.csv, predictions files, history.csv, settings.json)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from medssl.evaluate.compare import compare_predictions
from medssl.evaluate.metrics import classification_metrics
from medssl.report import write_report
from medssl.rundir.history import HISTORY, history_row, write_history
from medssl.rundir.predictions import save_predictions
from medssl.rundir.results import RESULTS, append_results, read_result_rows
from medssl.rundir.split import SPLIT, write_split_rows

SSL, IMAGENET = "vicreg-resnet18-random", "imagenet-efficientnet_lite0"
BALANCED = np.repeat(np.arange(2), 50)
SKEWED = np.r_[np.zeros(35, int), np.ones(65, int)]  # 65% class 1: balanced accuracy is the primary metric


def _correct(y: np.ndarray, share: float, seed: int) -> np.ndarray:
    """Right on exactly round(share × n) images, drawn by ``seed``."""
    right = np.zeros(len(y), bool)
    right[np.random.default_rng(seed).permutation(len(y))[: round(share * len(y))]] = True
    return right


def _row(encoder: str, protocol: str, fraction: float, n_train: int, fold: int | None = None) -> dict:
    method, _, rest = encoder.partition("-")
    parts = rest.split("-")
    return {
        "dataset": "ds",
        "encoder": encoder,
        "method": method,
        "backbone": parts[0],
        "init": "imagenet" if method == "imagenet" else parts[-1] if len(parts) > 1 else "random",
        "protocol": protocol,
        "label_fraction": fraction,
        "seed": 0,
        "fold": fold,
        "n_train": n_train,
    }


def cell(
    root: Path,
    encoder: str,
    protocol: str,
    fraction: float,
    y: np.ndarray,
    predicted: np.ndarray,
    n_train: int = 20,
    fold: int | None = None,
    index: np.ndarray | None = None,
) -> dict:
    """A results row and its predictions file, with every metric computed from the predictions."""
    rng = np.random.default_rng(len(encoder) + int(100 * fraction))
    prob = rng.dirichlet(np.ones(2), len(y)) * 0.4
    prob[np.arange(len(y)), predicted] += 1.0
    prob /= prob.sum(1, keepdims=True)
    folder = f"ds/fold{fold}" if fold else "ds"
    relative = f"{folder}/eval/{encoder}/predictions/{protocol}-f{fraction:g}-s0.npz"
    save_predictions(root / relative, y, prob, np.arange(len(y)) if index is None else index)
    metrics = classification_metrics(y, prob)
    return {
        **_row(encoder, protocol, fraction, n_train, fold),
        "n_test": len(y),
        **metrics,
        "collapsed": False,  # the report's own floor check is under test, not results.csv's flag
        "predictions": relative,
    }


def scored(
    root: Path, encoder: str, protocol: str, fraction: float, y: np.ndarray, share: float, **kw
) -> dict:
    predicted = np.where(_correct(y, share, len(encoder)), y, 1 - y)
    return cell(root, encoder, protocol, fraction, y, predicted, **kw)


def report(root: Path, rows: list[dict]) -> tuple[str, str]:
    append_results(root / RESULTS, rows)
    md, html = write_report(root, n_bootstrap=500)
    return md.read_text(), html.read_text()


def verdict(md: str) -> str:
    return md.split("### Verdict", 1)[1].split("\n### ", 1)[0]


def line(md: str, start: str) -> str:
    return next(x for x in verdict(md).splitlines() if x.startswith(start))


def _gap(root: Path, a: dict, b: dict, metric: str = "accuracy") -> str:
    (comparison,) = compare_predictions(root / a["predictions"], root / b["predictions"], (metric,), 500)
    return f"{100 * abs(comparison.difference):.1f}"


def test_the_verdict_states_every_label_fraction_and_where_the_answer_changes(tmp_path: Path) -> None:
    rows = []
    for fraction, n_train, ssl_share in ((0.01, 2, 0.95), (0.1, 10, 0.95), (1.0, 100, 0.8)):
        rows += [
            scored(tmp_path, SSL, "linear", fraction, BALANCED, ssl_share, n_train=n_train),
            scored(
                tmp_path,
                IMAGENET,
                "linear",
                fraction,
                BALANCED,
                0.8 if fraction == 1 else 0.6,
                n_train=n_train,
            ),
        ]
    md, html = report(tmp_path, rows)
    summary = (
        "The answer changes with the number of labels: in-domain SSL is better than ImageNet transfer up to "
        "10 % labels; no significant difference at 100 %."
    )
    assert f"> {summary}" in verdict(md) and summary in html
    for fraction, n_train in ((0.01, 2), (0.1, 10)):
        ssl, imagenet = (r for r in rows if r["label_fraction"] == fraction)
        sentence = line(md, f"> At {100 * fraction:g} % labels ({n_train} labelled images): ")
        assert "in-domain SSL (VICReg, resnet18, random init) is better than ImageNet frozen" in sentence
        gap = _gap(tmp_path, ssl, imagenet)
        assert sentence.endswith(f"by +{gap} points of accuracy, p=0.004.")  # 2/(500+1): the least p
    full = line(md, "> At 100 % labels (100 labelled images): ")
    assert "no significant difference between in-domain SSL" in full and "p=1.00" in full
    table = [x for x in verdict(md).splitlines() if re.match(r"\| (1|10|100) % ", x)]
    assert len(table) == 3 and all("Linear probe" in x for x in table)
    assert "no significant difference" in table[2] and "in-domain SSL is better" in table[0]


def test_primary_metric_is_used_at_every_fraction_and_collapsed_cells_are_never_picked(
    tmp_path: Path,
) -> None:
    """Balanced accuracy decides on a 65/35 test set; an SSL cell at the floor in it is not picked."""
    majority = np.ones(len(SKEWED), int)
    guessing = np.where(np.arange(len(SKEWED)) % 5 == 0, 0, 1)  # 80% class 1 whatever the image: chance
    rows = [
        cell(tmp_path, SSL, "linear", 0.1, SKEWED, guessing, n_train=10),
        scored(tmp_path, IMAGENET, "linear", 0.1, SKEWED, 0.7, n_train=10),
        scored(tmp_path, SSL, "linear", 1.0, SKEWED, 0.9, n_train=100),
        cell(tmp_path, IMAGENET, "linear", 1.0, SKEWED, majority, n_train=100),
    ]
    md, _ = report(tmp_path, rows)
    assert rows[0]["balanced_accuracy"] == pytest.approx(0.5) and rows[0]["accuracy"] > 0.5
    at_ten = line(md, "> At 10 % labels (10 labelled images): ")
    assert "no verdict: every in-domain SSL cell is collapsed, not applicable or at the floor" in at_ten
    at_full = line(md, "> At 100 % labels (100 labelled images): ")
    assert "no verdict: every ImageNet transfer cell is collapsed, not applicable or at the floor" in at_full
    assert "> The answer does not change with the number of labels: no verdict at every label fraction" in md
    assert "Primary metric: balanced accuracy, because the largest class is 65% of the test images" in md


def test_floor_rows_come_from_the_test_labels_and_cells_at_the_floor_are_flagged(tmp_path: Path) -> None:
    guessing = np.where(np.arange(len(SKEWED)) % 5 == 0, 0, 1)
    rows = [
        cell(tmp_path, SSL, "linear", 1.0, SKEWED, guessing, n_train=100),  # balanced accuracy at chance
        scored(tmp_path, "simclr-resnet18-random", "linear", 1.0, SKEWED, 0.6, n_train=100),  # acc < 65%
        scored(tmp_path, IMAGENET, "linear", 1.0, SKEWED, 0.9, n_train=100),
    ]
    header = [
        "ref",
        "label",
        "class",
        "patient",
        "split",
        "policy",
        "fold",
    ]  # as `medssl evaluate --out` writes it
    names = ("NORMAL", "PNEUMONIA")
    split = [[f"t/{i}.png", y, names[y], f"p{i}", "test", "grouped", ""] for i, y in enumerate(SKEWED)]
    write_split_rows(tmp_path / SPLIT, header, split)
    md, html = report(tmp_path, rows)
    assert "| Majority class (always PNEUMONIA) | 65.0 | 0.500 | 50.0 |" in md
    assert "| Chance (uniform random guess) | 50.0 | 0.500 | 50.0 |" in md
    assert "Majority class (always PNEUMONIA)" in html and "Chance (uniform random guess)" in html
    vicreg = next(x for x in md.splitlines() if f"`{SSL}`" in x and x.startswith("| VICReg"))
    _, accuracy, _, balanced = (c.strip() for c in vicreg.strip("|").split(" | "))
    assert "⚠" in balanced and "⚠" in accuracy and "★" not in balanced  # 50% and 59%: both at the floor
    simclr = next(x for x in md.splitlines() if x.startswith("| SimCLR"))
    assert "⚠" in simclr.split(" | ")[1]  # 60% accuracy, below the 65% majority class
    assert "⚠ collapsed or at the floor" in md
    sentence = line(md, "> At 100 % labels")
    assert "in-domain SSL (SimCLR, resnet18, random init)" in sentence  # VICReg is at the floor: not picked


@pytest.mark.parametrize("stronger", ["imagenet", "random"])
def test_imagenet_initialised_ssl_competes_and_the_sentence_names_the_init(
    tmp_path: Path, stronger: str
) -> None:
    imagenet_init = "simclr-efficientnet_lite0-imagenet"
    shares = {"imagenet": (0.95, 0.7), "random": (0.7, 0.95)}[stronger]
    rows = [
        scored(tmp_path, imagenet_init, "linear", 1.0, BALANCED, shares[0]),
        scored(tmp_path, SSL, "linear", 1.0, BALANCED, shares[1]),
        scored(tmp_path, IMAGENET, "linear", 1.0, BALANCED, 0.6),
    ]
    md, _ = report(tmp_path, rows)
    sentence = line(md, "> At 100 % labels")
    name = {
        "imagenet": r"in-domain SSL (SimCLR, efficientnet\_lite0, ImageNet init)",
        "random": "in-domain SSL (VICReg, resnet18, random init)",
    }[stronger]
    assert sentence.startswith(
        f"> At 100 % labels (20 labelled images): {name} is better than ImageNet frozen"
    )


def _na_run(root: Path, new_format: bool) -> list[dict]:
    """kNN at 1% (20 labelled images, k=200) and at 100%, and a linear probe at 1% for ImageNet only."""
    rows = []
    for encoder, share in ((SSL, 0.9), (IMAGENET, 0.7)):
        if new_format:
            blocked = {**_row(encoder, "knn", 0.01, 20), "n_test": 100, "collapsed": False}
            rows.append(
                {
                    **blocked,
                    "not_applicable": "k=200 ≥ 20 labelled images: every test image gets the same vote",
                }
            )
        else:  # what medssl wrote before: the majority vote of every labelled image, flagged collapsed
            rows.append({**cell(root, encoder, "knn", 0.01, BALANCED, np.zeros(100, int)), "collapsed": True})
        rows.append(scored(root, encoder, "knn", 1.0, BALANCED, share, n_train=2000))
    rows.append(scored(root, IMAGENET, "linear", 0.01, BALANCED, 0.7))
    for row in rows:
        row["settings_key"] = f"knn{row['protocol']}"
    (root / "settings.json").write_text(
        json.dumps({f"knn{p}": {"evaluation": {"protocol": p, "k": 200}} for p in ("knn", "linear")})
    )
    return rows


@pytest.mark.parametrize("new_format", [True, False])
def test_knn_with_k_at_least_the_labelled_images_is_not_applicable(tmp_path: Path, new_format: bool) -> None:
    """Shown as n/a, never picked; a run directory from before the column is read the same way."""
    md, html = report(tmp_path, _na_run(tmp_path, new_format))
    header = read_result_rows(tmp_path / RESULTS)[0]
    assert ("not_applicable" in header) == new_format  # an old file is read as it is, never rewritten
    fractions = md.split("### Results at every label fraction", 1)[1].split("\n### ", 1)[0]
    vicreg = next(x for x in fractions.splitlines() if f"`{SSL}`" in x)
    assert vicreg.split(" | ")[1].startswith("n/a (not applicable)")
    assert "**n/a**: not applicable" in fractions and "n/a" in html
    at_one = line(md, "> At 1 % labels (20 labelled images): ")
    assert "no verdict: every in-domain SSL cell is collapsed, not applicable or at the floor" in at_one
    assert line(md, "> At 100 % labels").startswith("> At 100 % labels (2000 labelled images): in-domain SSL")


def _history(root: Path, encoder: str, knn: list[float]) -> None:
    """history.csv of a run with the kNN monitor every other epoch, at 500 images/s and 1.5 s an epoch."""
    rows = [
        history_row(
            {
                "epoch": epoch,
                "loss": 2.0,
                "knn_accuracy": knn[epoch // 2] if epoch % 2 else None,
                "images_per_s": 500.0,
                "lr": 0.05,
                "wall_s": 1.5 * (epoch + 1),
            }
        )
        for epoch in range(2 * len(knn))
    ]
    write_history(root / "ds" / "pretrain" / encoder / HISTORY, rows)


@pytest.mark.parametrize("improving", [True, False])
def test_the_verdict_says_when_its_ssl_encoder_was_still_improving(tmp_path: Path, improving: bool) -> None:
    knn = [0.5, 0.6, 0.7, 0.8] if improving else [0.5, 0.7, 0.701, 0.699]
    _history(tmp_path, SSL, knn)
    rows = [
        scored(tmp_path, SSL, "linear", 1.0, BALANCED, 0.9),
        scored(tmp_path, IMAGENET, "linear", 1.0, BALANCED, 0.6),
    ]
    md, html = report(tmp_path, rows)
    status = next(x for x in md.splitlines() if x.startswith("| VICReg (resnet18) (") and f"`{SSL}`" in x)
    budget = md.split("Pre-training budget", 1)[1]
    budget_row = next(x for x in budget.splitlines() if f"`{SSL}`" in x)
    if improving:  # +10 points a monitor (2 epochs) over another 8 epochs: +40 points
        assert (
            "(still improving)" in status
            and "| still improving |" in budget_row
            and "| +40.0 |" in budget_row
        )
        sentence = line(md, "> In-domain SSL (VICReg, resnet18, random init) was still improving")
        assert "its scores here are a lower bound" in sentence
        assert (
            "Another 8 epochs (twice its budget) would take ≈ 12 s at the measured 500 images/s" in sentence
        )
        assert "lower bound" in html
    else:
        assert "(converged)" in status and "| converged |" in budget_row
        assert "lower bound" not in verdict(md)


def test_cross_validation_pools_the_folds_at_every_fraction(tmp_path: Path) -> None:
    rows = []
    folds = np.array_split(np.arange(len(BALANCED)), 3)
    for fold, index in enumerate(folds, 1):
        y = BALANCED[index]
        for fraction, ssl_share in ((0.1, 1.0), (1.0, 0.8)):
            kw = {"n_train": int(60 * fraction) + fold, "fold": fold, "index": index}
            rows += [
                scored(tmp_path, SSL, "linear", fraction, y, ssl_share, **kw),
                scored(tmp_path, IMAGENET, "linear", fraction, y, 0.8 if fraction == 1 else 0.55, **kw),
            ]
    md, _ = report(tmp_path, rows)
    assert line(md, "> At 10 % labels (7–9 labelled images per fold): in-domain SSL").endswith("p=0.004.")
    assert "the out-of-fold predictions of every image (3 folds pooled, each image tested once)" in md
    assert "> The answer changes with the number of labels: in-domain SSL is better than ImageNet" in md
