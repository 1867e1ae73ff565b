"""The run-directory formats: atomic writes, the results.csv schema (old files too) and the settings key."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from medssl.common.metric_names import METRICS
from medssl.errors import DataError
from medssl.rundir.atomic import atomic_write, remove_stale_temps, write_text
from medssl.rundir.predictions import pool_predictions
from medssl.rundir.results import (
    RESULT_COLUMNS,
    append_results,
    check_results,
    read_results,
    rewrite_results,
)
from medssl.rundir.settings import (
    cell_settings,
    changed_common,
    changed_settings,
    evaluation_settings,
    pretrain_settings,
    read_registry,
    record_settings,
    settings_key,
)

ROW = {"dataset": "d", "encoder": "e", "method": "m", "protocol": "knn", "label_fraction": 1.0, "seed": 0}


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path: Path) -> None:
    path = write_text(tmp_path / "a" / "x.json", "old")

    def fail(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(RuntimeError, match="disk"):
        atomic_write(path, fail, on_error=lambda error: RuntimeError(f"disk: {error}"))
    assert path.read_text() == "old" and sorted(p.name for p in path.parent.iterdir()) == ["x.json"]
    atomic_write(tmp_path / "p.npz", lambda tmp: np.savez(tmp, a=np.arange(3)))  # numpy keeps the name
    assert np.load(tmp_path / "p.npz")["a"].tolist() == [0, 1, 2]


def test_stale_temporaries_of_a_killed_writer_are_removed(tmp_path: Path) -> None:
    for name in (".best.ckpt.tmp123", ".last.ckpt.tmp9.ckpt", "best.ckpt", ".hidden", "a.tmp1"):
        (tmp_path / name).write_text("x")
    removed = remove_stale_temps(tmp_path)
    assert sorted(p.name for p in removed) == [".best.ckpt.tmp123", ".last.ckpt.tmp9.ckpt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hidden", "a.tmp1", "best.ckpt"]


OLD_COLUMNS = tuple(c for c in RESULT_COLUMNS[: RESULT_COLUMNS.index("settings_key")] if c != "fold")
"""The columns of a results.csv written before settings keys and folds existed."""


def test_a_results_file_without_settings_keys_loads_and_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=OLD_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerow({**ROW, "accuracy": "0.5", "collapsed": "False"})
    (old,) = read_results(path)
    assert (
        old.settings_key == ""
        and old.metric("accuracy") == 0.5
        and old.cell == ("d", "e", "knn", 1.0, 0, None)
    )
    append_results(path, [{**ROW, "seed": 1, "accuracy": 0.75, "settings_key": "abc"}])
    with path.open(newline="") as handle:
        assert next(csv.reader(handle)) == list(RESULT_COLUMNS)  # the columns still line up
    rows = read_results(path)
    assert [(r.seed, r.metric("accuracy"), r.settings_key) for r in rows] == [(0, 0.5, ""), (1, 0.75, "abc")]
    assert math.isnan(rows[1].metric("auroc"))


def test_rewrite_replaces_a_cell_in_one_step(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    append_results(path, [{**ROW, "accuracy": 0.5}, {**ROW, "seed": 1, "accuracy": 0.6}])
    dropped = rewrite_results(path, keep=lambda r: r.seed != 0, add=[{**ROW, "accuracy": 0.9}])
    assert dropped == 1
    assert [(r.seed, r.metric("accuracy")) for r in read_results(path)] == [(1, 0.6), (0, 0.9)]


def test_a_rewrite_keeps_the_file_as_it_was_when_it_leaves_rows_out(tmp_path: Path) -> None:
    """A second row of a cell or a stray line never silently vanishes in a rewrite (evaluate --replace)."""
    path = tmp_path / "results.csv"
    append_results(path, [{**ROW, "accuracy": 0.5}])
    with path.open("a") as handle:
        handle.write(path.read_text().splitlines()[1].replace(",0.5,", ",0.7,") + "\nnot a row\n")
    damaged = path.read_bytes()
    rewrite_results(path, add=[{**ROW, "seed": 1, "accuracy": 0.6}])
    assert [(r.seed, r.metric("accuracy")) for r in read_results(path)] == [(0, 0.5), (1, 0.6)]
    (kept,) = tmp_path.glob("results.csv.previous-*")
    assert kept.read_bytes() == damaged


def test_an_empty_results_file_is_no_problem_and_odd_seeds_are_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    path.write_text("")
    assert check_results(path).problems() == []
    append_results(path, [{**ROW, "accuracy": 0.5}])
    with path.open("a") as handle:
        handle.write(path.read_text().splitlines()[1].replace(",0,", ",1.5,", 1) + "\n")
    check = check_results(path)
    assert len(check.results) == 1 and check.unreadable == [(3, "label_fraction or seed is not a number")]


def test_the_settings_key_is_canonical_and_names_what_changed(tmp_path: Path) -> None:
    a = {"data": {"image_size": 32, "path": "x"}, "epochs": 1}
    b = {"epochs": 1, "data": {"path": "x", "image_size": 32}}
    assert settings_key(a) == settings_key(b) and len(settings_key(a)) == 16
    assert settings_key({**a, "epochs": 3}) != settings_key(a)
    assert changed_settings(a, {**a, "epochs": 3, "k": 7}) == ["epochs: 1 -> 3", "k: (none) -> 7"]
    key = record_settings(tmp_path, a)
    assert read_registry(tmp_path) == {key: a}


def test_runtime_choices_are_not_keyed() -> None:
    config = {"method": "simclr", "accelerator": "cpu", "devices": 1, "progress_bar": True, "knn_k": 10,
              "data": {"path": "x", "cache_dir": "/tmp/c", "name": "n", "image_size": 32}}  # fmt: skip
    assert pretrain_settings(config) == {"method": "simclr", "data": {"path": "x", "image_size": 32}}
    knn = evaluation_settings("knn", {"k": 5, "n_bootstrap": 100, "patience": 3})
    linear = evaluation_settings("linear", {"k": 5, "n_bootstrap": 100, "patience": 3})
    assert knn == {"protocol": "knn", "k": 5, "n_bootstrap": 100} and "k" not in linear
    assert settings_key(cell_settings({}, {"spec": "random:resnet18"}, knn)) != settings_key(
        cell_settings({}, {"spec": "imagenet:resnet18"}, knn)
    )


def test_keys_a_newer_medssl_added_are_not_changes() -> None:
    old = {"data": {"image_size": 32}, "epochs": 1}
    assert changed_common(old, {"data": {"image_size": 32, "folds": None}, "epochs": 1}) == []
    assert changed_common(old, {"data": {"image_size": 48, "folds": None}, "epochs": 1}) == [
        "data.image_size: 32 -> 48"
    ]


def test_fold_rows_are_separate_cells_and_single_split_rows_have_an_empty_fold(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    append_results(path, [{**ROW, "fold": None}, {**ROW, "fold": 1}, {**ROW, "fold": 2}])
    with path.open(newline="") as handle:
        assert [r["fold"] for r in csv.DictReader(handle)] == ["", "1", "2"]
    rows = read_results(path)
    assert [r.fold for r in rows] == [None, 1, 2] and len({r.cell for r in rows}) == 3


def test_numpy_floats_are_written_as_plain_numbers(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    append_results(
        path, [{**ROW, "accuracy": np.float64(0.123456789), "auroc": 0.5, "wall_s": np.float64("nan")}]
    )
    with path.open(newline="") as handle:
        row = next(csv.DictReader(handle))
    assert (row["accuracy"], row["auroc"], row["wall_s"]) == ("0.123457", "0.5", "nan")
    assert read_results(path)[0].metric("accuracy") == 0.123457


def _fold(index: list[int], n_classes: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(len(index))
    return {
        "y_true": np.array(index) % n_classes,
        "y_prob": rng.dirichlet(np.ones(n_classes), len(index)),
        "test_index": np.array(index),
    }


def test_pooled_out_of_fold_predictions_cover_each_image_once_in_id_order() -> None:
    a, b = _fold([4, 0, 2]), _fold([1, 5, 3])
    pooled = pool_predictions([a, b])
    assert pooled["test_index"].tolist() == [0, 1, 2, 3, 4, 5]
    assert np.array_equal(pooled["y_prob"][4], a["y_prob"][0]) and pooled["y_true"].tolist() == [
        0,
        1,
        2,
        0,
        1,
        2,
    ]
    with pytest.raises(DataError, match="more than one fold"):
        pool_predictions([a, _fold([2, 7])])
    with pytest.raises(DataError, match="different classes"):
        pool_predictions([a, _fold([9], n_classes=4)])


def test_pool_columns_appear_only_with_a_pool_and_stay_aligned(tmp_path: Path) -> None:
    from medssl.rundir.results import POOL_COLUMNS, read_result_rows

    row = {"dataset": "d", "encoder": "simclr-resnet18-random", "protocol": "knn", "label_fraction": 1.0}
    plain = tmp_path / "plain" / "results.csv"
    append_results(plain, [{**row, "seed": 0}])
    assert _header(plain) == list(RESULT_COLUMNS)  # a study without pools: exactly the schema
    append_results(plain, [{**row, "seed": 1, "pretrain_fraction": 0.5, "pretrain_images": 40}])
    assert _header(plain) == [*RESULT_COLUMNS, *POOL_COLUMNS]  # the file is rewritten with the new columns
    rows = read_result_rows(plain)
    assert [(r["seed"], r["pretrain_fraction"], r["pretrain_images"]) for r in rows] == [
        ("0", "", ""),
        ("1", "0.5", "40"),
    ]
    append_results(plain, [{**row, "seed": 2}])  # a later row without a pool keeps the columns aligned
    assert _header(plain) == [*RESULT_COLUMNS, *POOL_COLUMNS]
    assert [r["pretrain_images"] for r in read_result_rows(plain)] == ["", "40", ""]
    rewrite_results(plain, keep=lambda result: result.seed != 1)
    assert [r["seed"] for r in read_result_rows(plain)] == ["0", "2"]


def _header(path: Path) -> list[str]:
    with path.open(newline="") as handle:
        return next(csv.reader(handle))


def test_a_not_applicable_row_is_complete_without_metrics(tmp_path: Path) -> None:
    """A kNN cell that cannot work has no metrics or predictions: it is no damage to repair, and its column
    is one medssl writes (a rerun would otherwise evaluate it again and drop the column)."""
    path = tmp_path / "results.csv"
    identity = {**ROW, "backbone": "b", "init": "random", "n_train": 4, "n_test": 9, "collapsed": False}
    scored = {**identity, "seed": 1, "predictions": "p.npz"}
    scored.update({name: 0.5 for name in METRICS})
    scored.update({name: 0.4 for name in ("accuracy_ci_low", "auroc_ci_low")})
    scored.update({name: 0.6 for name in ("accuracy_ci_high", "auroc_ci_high")})
    append_results(path, [scored, {**identity, "not_applicable": "k=200 >= 4 labelled images"}])
    check = check_results(path)
    assert not check.damaged and check.problems() == []
    assert check.results[1].not_applicable.startswith("k=200")
