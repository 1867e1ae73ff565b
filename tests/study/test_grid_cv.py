"""Cross-validation cells of the grid: per-fold pre-training on that fold's training images only, per-fold
rows and run directories, out-of-fold pooling, and a killed CV grid that resumes without loss."""

from __future__ import annotations

import csv
import os
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import yaml

from medssl.data.dataset import DataConfig, prepare_folds
from medssl.study import grid as grid_module
from medssl.study import load_study, run_study
from medssl.study.grid import StudyRunner

from .test_grid import benchmark_args, kill_after_rows, rows

KEY = ("dataset", "encoder", "protocol", "label_fraction", "seed", "fold")
FOLDS = 3
ENCODERS = ("simclr-resnet18-random", "random-resnet18")
CELLS_PER_FOLD = len(ENCODERS) * 2  # × (knn, linear) at one fraction


def cv_study(tmp_path: Path, cache: Path, epochs: int = 1) -> Path:
    data = {"path": "synthetic", "image_size": 32, "cache_dir": str(cache), "folds": FOLDS,
            "synthetic": {"n_images": 160, "size": 32}}  # fmt: skip
    study = {
        "datasets": {"tiny_cv": data},
        "methods": ["simclr"],
        "pretrain": {"epochs": epochs, "batch_size": 32, "knn_k": 10, "max_steps_per_epoch": 3},
        "baselines": ["random:resnet18"],
        "evaluation": {"protocols": ["knn", "linear"], "k": 10, "n_bootstrap": 100},
    }
    path = tmp_path / "cv.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def test_cv_grid_pretrains_each_fold_on_its_training_images_only(tmp_path, pixel_cache, monkeypatch) -> None:
    seen: dict[int, np.ndarray] = {}
    real_pretrain = grid_module.pretrain

    def recording_pretrain(config, run_dir, data, **kwargs):
        seen[data.fold] = np.asarray(data.split["train"]).copy()
        return real_pretrain(config, run_dir, data=data, **kwargs)

    monkeypatch.setattr(grid_module, "pretrain", recording_pretrain)
    study = load_study(cv_study(tmp_path, pixel_cache))
    run = run_study(study, tmp_path / "run", show_progress=False)
    folds = prepare_folds(study.datasets["tiny_cv"].model_copy(update={"name": "tiny_cv"}), run / "tiny_cv")
    assert sorted(seen) == list(range(1, FOLDS + 1))
    for data in folds:
        test = set(np.asarray(data.split["test"]).tolist())
        assert test and not test & set(seen[data.fold].tolist())  # never pre-trained on its test images
        assert (run / "tiny_cv" / f"fold{data.fold}" / "pretrain" / ENCODERS[0] / "encoder.json").exists()
    results = rows(run)
    counts = Counter(tuple(r[k] for k in KEY) for r in results)
    assert len(counts) == FOLDS * CELLS_PER_FOLD and max(counts.values()) == 1
    assert {r["fold"] for r in results} == {str(k) for k in range(1, FOLDS + 1)}
    tested = Counter()
    for r in results:
        if r["encoder"] == ENCODERS[1] and r["protocol"] == "knn":
            with np.load(run / r["predictions"]) as handle:
                tested.update(handle["test_index"].tolist())
    assert len(tested) == len(folds[0].labels) and set(tested.values()) == {1}  # every image tested once
    assert StudyRunner(study, run).pending_units() == 0


def test_killed_cv_grid_resumes_without_losing_or_repeating_cells(tmp_path: Path, pixel_cache: Path) -> None:
    config = cv_study(tmp_path, pixel_cache, epochs=2)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed = tmp_path / "killed"
    before = kill_after_rows(config, killed, env, min_rows=CELLS_PER_FOLD, timeout=300)  # fold 1's cells done
    assert CELLS_PER_FOLD <= len(before) < FOLDS * CELLS_PER_FOLD
    subprocess.run(benchmark_args(config, killed), env=env, check=True, capture_output=True, timeout=500)
    after = rows(killed)
    counts = Counter(tuple(r[k] for k in KEY) for r in after)
    assert len(counts) == FOLDS * CELLS_PER_FOLD and max(counts.values()) == 1  # none lost, none twice
    assert after[: len(before)] == before  # finished cells kept as they were
    for fold in range(1, FOLDS + 1):
        history = killed / "tiny_cv" / f"fold{fold}" / "pretrain" / ENCODERS[0] / "history.csv"
        with history.open() as handle:
            epochs = [int(r["epoch"]) for r in csv.DictReader(handle)]
        assert epochs == [0, 1]  # each fold's pre-training ran each epoch once


def test_single_split_rows_have_an_empty_fold(tmp_path: Path, pixel_cache: Path) -> None:
    data = DataConfig(path="synthetic", image_size=32, cache_dir=str(pixel_cache))
    assert grid_module.fold_numbers(data) == [None]
    assert grid_module.fold_numbers(data.model_copy(update={"folds": 4})) == [1, 2, 3, 4]
