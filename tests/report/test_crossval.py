"""The report of a study with a random split and a grouped cross-validation of the same images: the split
policies, the leakage warning, the per-fold and pooled out-of-fold tables, and the side-by-side inflation."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from medssl.cli import main
from medssl.evaluate.metrics import classification_metrics
from medssl.report import plots
from medssl.report.context import Context
from medssl.report.crossval import policy_pairs
from medssl.report.rundir import RunDir, SplitSummary
from medssl.report.tables import study_table
from medssl.study import load_study, run_study

FOLDS = 3


@pytest.fixture(scope="module")
def two_protocols(tmp_path_factory: pytest.TempPathFactory, pixel_cache: Path) -> Path:
    root = tmp_path_factory.mktemp("two-protocols")
    data = {"path": "synthetic", "image_size": 32, "cache_dir": str(pixel_cache),
            "synthetic": {"n_images": 160, "size": 32}}  # fmt: skip
    study = {
        "datasets": {"tiles_random": {**data, "split": "random"}, "tiles_cv": {**data, "folds": FOLDS}},
        "methods": [],
        "baselines": ["random:resnet18"],
        "evaluation": {"protocols": ["knn"], "k": 10, "n_bootstrap": 100},
    }
    path = root / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return run_study(load_study(path), root / "run", show_progress=False)


def markdown(run: Path) -> str:
    """report.md with Markdown's escapes removed."""
    return (run / "report.md").read_text().replace("\\", "")


def test_split_policies_and_the_leakage_warning_are_in_the_report(two_protocols: Path) -> None:
    text = markdown(two_protocols)
    assert "⚠ random" in text and f"grouped, {FOLDS}-fold CV" in text
    assert "Leakage warning (tiles_random)" in text and "Leakage warning (tiles_cv)" not in text
    run = RunDir.open(two_protocols)
    summary = run.split_summary("tiles_random")
    assert summary is not None and summary.policy == "random" and summary.straddling  # patients straddle
    cv = run.split_summary("tiles_cv")
    assert cv is not None and cv.folds == FOLDS and sum(cv.counts["test"]) == 160  # every image tested once


def test_per_fold_and_pooled_out_of_fold_scores(two_protocols: Path) -> None:
    text = markdown(two_protocols)
    assert "Cross-validation: per fold and pooled out-of-fold" in text
    run = RunDir.open(two_protocols)
    ctx = Context(run, "tiles_cv", "k", study_table(run.results, "tiles_cv"))
    assert ctx.folds == FOLDS
    pooled, files = ctx.predictions("random-resnet18", "knn", 0)
    assert pooled is not None and len(files) == FOLDS
    assert pooled["test_index"].tolist() == list(range(160))  # each image exactly once
    accuracy = 100 * classification_metrics(pooled["y_true"], pooled["y_prob"])["accuracy"]
    assert f"| {accuracy:.1f} |" in text  # the pooled accuracy the report prints
    assert "pooled out-of-fold predictions of all 3 folds" in text  # the confusion matrices use them


def test_side_by_side_shows_the_inflation_per_encoder(two_protocols: Path) -> None:
    run = RunDir.open(two_protocols)
    assert policy_pairs(run, run.datasets()) == [("tiles_random", "tiles_cv")]
    tile = study_table(run.results, "tiles_random").cell("random-resnet18", "knn")
    grouped = study_table(run.results, "tiles_cv").cell("random-resnet18", "knn")
    assert tile is not None and grouped is not None
    gap = 100 * (tile.stats["accuracy"].mean - grouped.stats["accuracy"].mean)
    text = markdown(two_protocols)
    assert "## Split protocols side by side" in text
    assert f"{gap:+.1f}".replace("-", "−") in text


def test_the_primary_metric_is_balanced_accuracy_when_one_class_dominates() -> None:
    balanced = SplitSummary(["a", "b"], {"test": [50, 50]}, 0)
    skewed = SplitSummary(["a", "b"], {"test": [39, 61]}, 0)
    assert balanced.majority_share == 0.5 and math.isclose(skewed.majority_share, 0.61)
    run = RunDir(Path("."), {}, [])
    table = study_table([], "x")
    for summary, metric in ((balanced, "accuracy"), (skewed, "balanced_accuracy")):
        run._splits["x"] = summary
        assert Context(run, "x", "x", table).primary_metric == metric
    assert np.isnan(SplitSummary([], {}, 0).majority_share)


def test_the_cli_prints_the_leakage_warning_on_one_line(two_protocols: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["medssl", "report", str(two_protocols)])
    with pytest.raises(SystemExit) as stop:
        main()
    err = capsys.readouterr().err
    assert not stop.value.code and "Traceback" not in err
    (line,) = [line for line in err.splitlines() if "Leakage" in line]
    assert line.startswith("warning: Leakage warning (tiles_random)") and "inflated" in line


def _section(text: str, dataset: str) -> str:
    """The report.md section of one dataset (from its heading to the next dataset's)."""
    start = text.index(f"\n## {dataset}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def test_cv_figures_say_they_show_fold_1_of_k(two_protocols: Path) -> None:
    """Under CV the t-SNE and retrieval show fold 1 only, and say so; retrieval also pools every fold."""
    text = markdown(two_protocols)
    cv, random = _section(text, "tiles_cv"), _section(text, "tiles_random")
    assert f"t-SNE maps of test features (fold 1 of {FOLDS})" in cv
    assert f"These are the test images of fold 1 of {FOLDS} only" in cv
    assert f"The tables cover all {FOLDS} folds" in cv
    run = RunDir.open(two_protocols)
    samples = [run.retrieval("tiles_cv", "random-resnet18", fold) for fold in range(1, FOLDS + 1)]
    assert all(s is not None for s in samples)
    first = samples[0]
    assert first is not None and int(first["n_test"]) < 160  # fold 1 alone is not every image
    assert f"Over the {int(first['n_test'])} test images of fold 1 of {FOLDS}, " in cv
    n_test = sum(int(s["n_test"]) for s in samples if s is not None)
    pooled = sum(float(s["agreement"]) * int(s["n_test"]) for s in samples if s is not None) / n_test
    assert n_test == 160 and f"over all 160 test images of the {FOLDS} folds, {100 * pooled:.1f}%" in cv
    assert "tiles_cv/fold*/eval/*/retrieval.npz" in cv and "tiles_cv/fold1/eval/*/features.npz" in cv
    assert "fold 1 of" not in random and "Over all " in random  # a single split names no fold


def test_tsne_by_group_colours_each_point_by_its_slide(two_protocols: Path) -> None:
    """The group map's colours are the groups of the mapped test images, and its legend lists only those."""
    run = RunDir.open(two_protocols)
    ctx = Context(run, "tiles_cv", "k", study_table(run.results, "tiles_cv"))
    panel = plots._tsne_panel(ctx, "random-resnet18", "Random")
    (recoloured,), names = plots._by_group(ctx, [panel])
    assert ctx.split is not None and panel.index is not None and recoloured.labels is not None
    groups = [ctx.split.groups[int(i)] for i in panel.index]
    assert names == sorted(set(groups)) and [names[int(c)] for c in recoloured.labels] == groups
    train = run.features("tiles_cv", "random-resnet18", 1)
    assert train is not None and "train_index" in train
    assert not set(groups) & {ctx.split.groups[int(i)] for i in train["train_index"]}  # whole groups tested
    total = len(set(ctx.split.groups))
    assert 2 <= len(names) < total
    assert f"coloured by patient ({len(names)} of the dataset's {total} patients" in markdown(two_protocols)


def test_a_fold_table_marks_a_knn_that_cannot_work_not_applicable(tmp_path: Path, pixel_cache: Path) -> None:
    data = {"path": "synthetic", "image_size": 32, "cache_dir": str(pixel_cache),
            "synthetic": {"n_images": 160, "size": 32}, "folds": FOLDS}  # fmt: skip
    study = {
        "datasets": {"tiles_cv": data},
        "methods": [],
        "baselines": ["random:resnet18"],
        "evaluation": {"protocols": ["knn", "linear"], "k": 200, "n_bootstrap": 100},  # k ≥ any fold's labels
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    text = markdown(run_study(load_study(path), tmp_path / "run", show_progress=False))
    folds = text.split("Cross-validation: per fold and pooled out-of-fold")[1].split("\n\n", 2)[2]
    knn = next(line for line in folds.splitlines() if "| kNN |" in line)
    assert knn.count("n/a") == FOLDS + 1 + 3  # every fold, the mean and the three pooled scores
    linear = next(line for line in folds.splitlines() if "| Linear probe |" in line)
    assert "n/a" not in linear
