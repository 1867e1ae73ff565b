"""history.csv: its exact bytes, a round trip, files of older releases, and interrupted rewrites."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from medssl.errors import TrainingError
from medssl.rundir.history import HISTORY, history_columns, history_row, read_history, write_history

FIRST = {"epoch": 0, "loss": 1.23456789, "knn_accuracy": math.nan, "images_per_s": 1234.5678, "lr": 1e-3}
SECOND = {"epoch": 1, "loss": 1.0, "knn_accuracy": 0.5, "knn_balanced_accuracy": 0.25, "embedding_std": 0.9}
EPOCHS = [
    {**FIRST, "wall_s": 3.0},
    {**SECOND, "effective_rank": 12.3456789, "images_per_s": 99, "lr": None, "wall_s": 6.5},
]
WRITTEN = (
    b"epoch,loss,knn_accuracy,knn_balanced_accuracy,embedding_std,effective_rank,images_per_s,lr,wall_s\r\n"
    b"0,1.23457,,,,,1234.57,0.001,3\r\n"
    b"1,1,0.5,0.25,0.9,12.3457,99,,6.5\r\n"
)
"""What the training history writer has always written for ``EPOCHS``: six digits, unmeasured cells empty."""


def test_epochs_are_written_exactly_as_before_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / HISTORY
    write_history(path, [history_row(epoch) for epoch in EPOCHS])
    assert path.read_bytes() == WRITTEN
    rows = read_history(path)
    assert [row["loss"] for row in rows] == ["1.23457", "1"] and rows[0]["knn_accuracy"] == ""
    write_history(path, rows)  # a resumed run rewrites the rows it read
    assert path.read_bytes() == WRITTEN


def test_columns_are_floats_with_nan_where_a_figure_was_not_measured(tmp_path: Path) -> None:
    path = tmp_path / HISTORY
    path.write_bytes(WRITTEN)
    columns = history_columns(path)
    np.testing.assert_allclose(columns["loss"], [1.23457, 1.0])
    assert math.isnan(columns["knn_accuracy"][0]) and columns["knn_accuracy"][1] == 0.5
    assert read_history(tmp_path / "missing.csv") == [] and history_columns(tmp_path / "missing.csv") == {}


def test_a_history_from_before_the_balanced_accuracy_column_still_reads(tmp_path: Path) -> None:
    path = tmp_path / HISTORY
    header = "epoch,loss,knn_accuracy,embedding_std,effective_rank,images_per_s,lr,wall_s"
    path.write_text(f"{header}\n0,2.5,0.4,0.8,9,500,0.05,1.5\n")
    columns = history_columns(path)
    assert "knn_balanced_accuracy" not in columns and columns["effective_rank"].tolist() == [9.0]


def test_an_interrupted_rewrite_leaves_the_old_history(tmp_path: Path, killed_before_rename) -> None:
    path = tmp_path / HISTORY
    write_history(path, [history_row(EPOCHS[0])])
    before = path.read_bytes()
    with pytest.raises(ValueError, match="not in fieldnames"):  # fails half-way: the header is written
        write_history(path, [history_row(EPOCHS[0]), {"epoch": 1, "unknown": 1}])
    killed_before_rename()
    with pytest.raises(KeyboardInterrupt):
        write_history(path, [history_row(epoch) for epoch in EPOCHS])
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [HISTORY]


def test_a_full_disk_is_one_clear_training_error(tmp_path: Path) -> None:
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro" / HISTORY).mkdir()  # a folder in the way: the rename fails with an OSError
    with pytest.raises(TrainingError, match=r"could not write the training history .*--resume"):
        write_history(tmp_path / "ro" / HISTORY, [history_row(EPOCHS[0])])
