"""End to end on tiny synthetic data: every protocol, results.csv columns, predictions and metrics.json."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch

from medssl.errors import ConfigError
from medssl.evaluate.api import evaluate_cell, evaluate_encoder, load_predictions
from medssl.evaluate.config import EvaluationConfig
from medssl.evaluate.features import encoder_features
from medssl.models.encoder import build_encoder
from medssl.rundir.results import append_results, read_results

# The column order of results.csv (medssl.rundir.results), written out so that a change to the code is caught here.
HELPERS_COLUMNS = [
    "dataset",
    "encoder",
    "method",
    "backbone",
    "init",
    "protocol",
    "label_fraction",
    "seed",
    "fold",
    "n_train",
    "n_test",
    "accuracy",
    "balanced_accuracy",
    "f1_macro",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
    "auroc",
    "accuracy_ci_low",
    "accuracy_ci_high",
    "auroc_ci_low",
    "auroc_ci_high",
    "collapsed",
    "predictions",
    "wall_s",
    "settings_key",
]


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return build_encoder("resnet18", "random", method="random")


def test_evaluate_encoder_end_to_end(tiny_data, encoder, tmp_path) -> None:
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    protocols = ["knn", "knn_weighted", "linear", "finetune"]
    settings = EvaluationConfig(
        protocols=protocols,
        label_fractions=[0.1, 1.0],
        k=5,
        n_bootstrap=200,
        finetune_epochs=1,
        finetune_min_steps=2,
    )
    rows = evaluate_encoder(encoder, tiny_data, tmp_path, settings)
    assert len(rows) == 8
    assert all(torch.equal(v, encoder.state_dict()[k]) for k, v in before.items())  # fine-tuning copied it

    with (tmp_path / "results.csv").open(newline="") as handle:
        reader = csv.reader(handle)
        assert next(reader) == HELPERS_COLUMNS
        assert sum(1 for _ in reader) == 8
    table = read_results(tmp_path / "results.csv")
    train_labels = tiny_data.labels[tiny_data.split["train"]]
    expected_small = sum(math.ceil(0.1 * c) for c in np.bincount(train_labels))
    test_index = tiny_data.split["test"]
    for row in table:
        assert row.dataset == "synthetic" and row.encoder == "random-resnet18"
        assert row.method == ("supervised" if row.protocol == "finetune" else "random")
        assert row.n_train == (expected_small if row.label_fraction == 0.1 else len(train_labels))
        assert row.n_test == len(test_index)
        assert row.metric("accuracy_ci_low") <= row.metric("accuracy") <= row.metric("accuracy_ci_high")
        assert len(row.settings_key) == 16
        predictions = load_predictions(tmp_path / row.predictions)
        np.testing.assert_array_equal(predictions["test_index"], test_index)
        np.testing.assert_array_equal(predictions["y_true"], tiny_data.labels[test_index])
        np.testing.assert_allclose(predictions["y_prob"].sum(1), 1.0, rtol=1e-5)
        accuracy = np.mean(predictions["y_prob"].argmax(1) == predictions["y_true"])
        assert row.metric("accuracy") == pytest.approx(accuracy, abs=1e-6)
    assert (tmp_path / "synthetic/eval/random-resnet18/features.npz").is_file()

    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert len(metrics["rows"]) == 8 and len(metrics["summary"]) == 8
    assert {"confusion", "accuracy", "n_val"} <= set(metrics["rows"][0])
    knn = EvaluationConfig(protocols=["knn"], k=5, n_bootstrap=200)
    again = evaluate_encoder(encoder, tiny_data, tmp_path, knn)
    assert again == [] and len(read_results(tmp_path / "results.csv")) == 8  # same settings: skipped
    fewer = knn.model_copy(update={"n_bootstrap": 100})
    with pytest.raises(ConfigError, match=r"evaluation\.n_bootstrap: 200 -> 100.*--replace"):
        evaluate_encoder(encoder, tiny_data, tmp_path, fewer)
    evaluate_encoder(encoder, tiny_data, tmp_path, fewer, replace=True)
    assert len(json.loads((tmp_path / "metrics.json").read_text())["rows"]) == 8  # same cell replaced
    table = read_results(tmp_path / "results.csv")
    assert len(table) == 8 and len({row.cell for row in table}) == 8  # replaced, never duplicated


def test_knn_cell_subsets_labels_and_same_subset_for_every_encoder(tiny_data, encoder, tmp_path) -> None:
    features_a = encoder_features(encoder, tiny_data)
    torch.manual_seed(1)
    features_b = encoder_features(build_encoder("resnet18"), tiny_data)
    settings = EvaluationConfig(k=5, n_bootstrap=100)
    row_a, prob_a = evaluate_cell(features_a, "knn", 0.1, 0, 4, settings)
    row_b, _ = evaluate_cell(features_b, "knn", 0.1, 0, 4, settings)
    assert row_a["n_train"] == row_b["n_train"] < len(tiny_data.split["train"])
    assert row_a["k"] == 5 and prob_a.shape == (len(tiny_data.split["test"]), 4)
    linear, _ = evaluate_cell(features_a, "linear", 1.0, 0, 4, settings)
    assert linear["n_val"] == len(tiny_data.split["val"]) and linear["C"] > 0
    with pytest.raises(ConfigError, match="protocol"):
        evaluate_cell(features_a, "svm", 1.0, 0, 4)


def test_knn_with_k_at_least_the_labelled_images_is_not_applicable(tiny_data, encoder, tmp_path) -> None:
    """Such a kNN gives every test image the same vote: the cell is marked not applicable, not scored."""
    train_labels = tiny_data.labels[tiny_data.split["train"]]
    n_small = sum(math.ceil(0.1 * c) for c in np.bincount(train_labels))
    settings = EvaluationConfig(
        protocols=["knn", "knn_weighted"], label_fractions=[0.1, 1.0], k=n_small, n_bootstrap=100
    )
    rows = {
        (r["protocol"], r["label_fraction"]): r
        for r in evaluate_encoder(encoder, tiny_data, tmp_path, settings)
    }
    assert rows[("knn", 0.1)]["not_applicable"].startswith(f"k={n_small} ≥ {n_small} labelled images")
    with (tmp_path / "results.csv").open(newline="") as handle:
        assert next(csv.reader(handle)) == [*HELPERS_COLUMNS, "not_applicable"]
    table = {(r.protocol, r.label_fraction): r for r in read_results(tmp_path / "results.csv")}
    blocked = table[("knn", 0.1)]
    assert blocked.not_applicable and blocked.predictions == "" and not blocked.collapsed
    assert all(math.isnan(blocked.metric(m)) for m in ("accuracy", "balanced_accuracy", "auroc"))
    assert not list((tmp_path / "synthetic/eval/random-resnet18/predictions").glob("knn-f0.1-*"))
    for cell in (("knn", 1.0), ("knn_weighted", 0.1), ("knn_weighted", 1.0)):  # k < images, or weighted
        assert table[cell].not_applicable == "" and math.isfinite(table[cell].metric("accuracy"))
        assert (tmp_path / table[cell].predictions).is_file()
    assert evaluate_encoder(encoder, tiny_data, tmp_path, settings) == []  # finished, n/a included


def test_append_results_writes_header_once(tmp_path) -> None:
    path = tmp_path / "sub" / "results.csv"
    append_results(path, [{"dataset": "a", "accuracy": 0.5, "auroc": float("nan"), "extra": 1}])
    append_results(path, [{"dataset": "b", "collapsed": True}])
    lines = path.read_text().splitlines()
    assert lines[0].split(",") == HELPERS_COLUMNS and len(lines) == 3
    assert lines[1].split(",")[HELPERS_COLUMNS.index("auroc")] == "nan"
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["accuracy"] == "0.5" and rows[0]["auroc"] == "nan" and rows[1]["collapsed"] == "True"


def test_frozen_and_finetune_protocols_use_the_same_labelled_images(tiny_data) -> None:
    from medssl.evaluate.api import _subset_positions
    from medssl.evaluate.fractions import label_subset

    train_index = np.asarray(tiny_data.split["train"])
    shuffled = np.random.default_rng(0).permutation(len(train_index))  # features in any order
    for fraction, seed in ((0.1, 0), (0.3, 2)):
        positions = _subset_positions(
            train_index[shuffled], tiny_data.labels[train_index[shuffled]], fraction, seed
        )
        expected = label_subset(tiny_data.labels, train_index, fraction, seed)
        np.testing.assert_array_equal(np.sort(train_index[shuffled][positions]), expected)


def test_evaluation_writes_the_reports_retrieval_images_from_the_dataset(
    tiny_data, encoder, tmp_path
) -> None:
    from medssl.common.knn import nearest_neighbours
    from medssl.evaluate.features import Features
    from medssl.rundir.retrieval import RETRIEVAL_K, load_retrieval

    evaluate_encoder(encoder, tiny_data, tmp_path, EvaluationConfig(protocols=["knn"], k=20, n_bootstrap=200))
    eval_dir = tmp_path / tiny_data.name / "eval" / "random-resnet18"
    sample = load_retrieval(eval_dir / "retrieval.npz")
    features = Features.load(eval_dir / "features.npz")
    queries = sample["query_images"]
    test_images = tiny_data.images[tiny_data.split["test"]]
    first = next(i for i, image in enumerate(test_images) if np.array_equal(image, queries[0]))
    nearest = nearest_neighbours(features.train, features.test[first : first + 1], RETRIEVAL_K)[0]
    np.testing.assert_array_equal(
        sample["neighbour_images"][0], tiny_data.images[features.train_index[nearest]]
    )
    assert len(set(sample["query_labels"].tolist())) == len(np.unique(tiny_data.labels))  # every class shown
