"""A study with ``pretrain_fractions``: one SSL cell per pool, a constant step budget, identical evaluation data,
and the report's scaling part; without the axis nothing changes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from medssl.errors import ConfigError
from medssl.report.scaling import scaling_points
from medssl.rundir.results import POOL_COLUMNS, RESULT_COLUMNS, read_result_rows
from medssl.study import load_study, run_study
from medssl.study.grid import ssl_jobs
from medssl.study.preflight import estimated_checkpoint_bytes

STEPS = 4
SSL = ("simclr-resnet18-random-p0.5", "simclr-resnet18-random")


def scaling_study(tmp_path: Path, cache: Path, **extra) -> Path:
    study = {
        "datasets": {
            "tiny": {"path": "synthetic", "image_size": 32, "cache_dir": str(cache),
                     "synthetic": {"n_images": 160, "size": 32}},
        },
        "methods": ["simclr"],
        "pretrain_fractions": [1.0, 0.5],
        "pretrain": {"steps": STEPS, "batch_size": 16, "knn_k": 10},
        "baselines": ["imagenet:efficientnet_lite0", "random:resnet18"],
        "evaluation": {"protocols": ["knn"], "label_fractions": [1.0], "k": 10, "n_bootstrap": 200},
        **extra,
    }  # fmt: skip
    path = tmp_path / "scaling.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def test_ids_name_only_the_pools_and_seeds_that_are_not_the_default(
    tmp_path: Path, pixel_cache: Path
) -> None:
    study = load_study(scaling_study(tmp_path, pixel_cache, pretrain_seeds=2))
    plain = study.model_copy(update={"pretrain_fractions": [1.0]})
    data = study.datasets["tiny"]
    assert [j.encoder_id for j in ssl_jobs(plain, data)] == [
        "simclr-resnet18-random",
        "simclr-resnet18-random-s1",
    ]
    assert all(j.pretrain.pool_fraction == 1.0 for j in ssl_jobs(plain, data))
    ids = [j.encoder_id for j in ssl_jobs(study, data)]
    assert ids == [
        "simclr-resnet18-random-p0.5", "simclr-resnet18-random-p0.5-s1",
        "simclr-resnet18-random", "simclr-resnet18-random-s1",
    ]  # fmt: skip
    # A one-seed, whole-pool study's encoder keeps its name in the grown study: its finished run is reused.
    single = study.model_copy(update={"pretrain_fractions": [1.0], "pretrain_seeds": 1})
    assert {j.encoder_id for j in ssl_jobs(single, data)} < set(ids)
    assert estimated_checkpoint_bytes(study) == 2 * estimated_checkpoint_bytes(
        plain
    )  # two pools, twice the runs


def test_scaling_study_end_to_end(tmp_path: Path, pixel_cache: Path) -> None:
    run = run_study(load_study(scaling_study(tmp_path, pixel_cache)), tmp_path / "run", show_progress=False)
    header = (run / "results.csv").read_text().splitlines()[0].split(",")
    assert header == [*RESULT_COLUMNS, *POOL_COLUMNS]
    rows = {r["encoder"]: r for r in read_result_rows(run / "results.csv")}
    assert set(rows) == {*SSL, "imagenet-efficientnet_lite0", "random-resnet18"}
    meta = {e: json.loads((run / "tiny" / "pretrain" / e / "encoder.json").read_text()) for e in SSL}
    half, full = (meta[e] for e in SSL)
    assert half["steps"] == full["steps"] == STEPS and half["epochs"] >= full["epochs"]
    assert half["pool_images"] < full["pool_images"]
    for encoder in SSL:
        assert rows[encoder]["pretrain_fraction"] == str(meta[encoder]["pool_fraction"])
        assert rows[encoder]["pretrain_images"] == str(meta[encoder]["pool_images"])
    assert rows["random-resnet18"]["pretrain_fraction"] == ""
    # Evaluation data is identical across pools: the same labelled images, kNN bank and test images.
    assert (
        rows[SSL[0]]["n_train"] == rows[SSL[1]]["n_train"]
        and rows[SSL[0]]["n_test"] == rows[SSL[1]]["n_test"]
    )
    features = [np.load(run / "tiny" / "eval" / e / "features.npz") for e in SSL]
    for key in ("train_index", "val_index", "test_index", "train_labels", "test_labels"):
        assert np.array_equal(features[0][key], features[1][key])
    predictions = [np.load(run / rows[e]["predictions"]) for e in SSL]
    assert np.array_equal(predictions[0]["test_index"], predictions[1]["test_index"])
    report = (run / "report.md").read_text()
    assert "### Pre-training-set scaling" in report and "-scaling.png" in report
    assert "pre-training images" in report and (
        "first beats ImageNet frozen" in report or "does not beat" in report
    )
    assert "by pre-training pool size × fraction of training labels" in report


def test_a_finished_study_grown_by_a_seed_and_a_pool_trains_only_the_new_encoders(
    tmp_path: Path, pixel_cache: Path
) -> None:
    run, old = tmp_path / "run", "simclr-resnet18-random"
    weights = run / "tiny" / "pretrain" / old / "encoder.pt"
    run_study(
        load_study(scaling_study(tmp_path, pixel_cache, pretrain_fractions=[1.0])), run, show_progress=False
    )
    before, trained_at = read_result_rows(run / "results.csv"), weights.stat().st_mtime_ns
    assert "pretrain_fraction" not in before[0]  # a study without the axis: the old schema
    grown = load_study(scaling_study(tmp_path, pixel_cache, pretrain_seeds=2))  # pools [1.0, 0.5], seeds 0-1
    run_study(grown, run, show_progress=False)
    assert weights.stat().st_mtime_ns == trained_at  # the finished run is reused, not trained again
    assert {p.name for p in (run / "tiny" / "pretrain").iterdir()} == {
        old,
        f"{old}-s1",
        f"{old}-p0.5",
        f"{old}-p0.5-s1",
    }
    rows = read_result_rows(run / "results.csv")
    mine = [r for r in rows if r["encoder"] == old]
    assert [{k: r[k] for k in before[0]} for r in mine] == [r for r in before if r["encoder"] == old]
    full = json.loads((run / "tiny" / "pretrain" / old / "encoder.json").read_text())
    assert all(
        r["pretrain_fraction"] == "1.0" and r["pretrain_images"] == str(full["pool_images"]) for r in mine
    )  # its pool is filled in, so the curve's whole-pool point has both seeds
    points = scaling_points(rows, "tiny", "knn")["simclr-resnet18-random"]
    assert [(p.pool_fraction, sorted(p.runs)) for p in points] == [
        (0.5, [f"{old}-p0.5", f"{old}-p0.5-s1"]), (1.0, [old, f"{old}-s1"])
    ]  # fmt: skip


def test_pools_without_a_step_budget_warn(tmp_path: Path, pixel_cache: Path) -> None:
    path = scaling_study(tmp_path, pixel_cache)
    with pytest.warns(UserWarning, match="without pretrain.steps: every pool trains 20 epochs"):
        load_study(path, ["pretrain.steps="])
    with pytest.raises(ConfigError, match=r"pretrain_fractions must be in \(0, 1\]"):
        load_study(path, ["pretrain_fractions=[0, 1]"])


def test_progress_counts_steps_under_a_step_budget(tmp_path: Path, pixel_cache: Path) -> None:
    from medssl.study.grid import StudyRunner, baseline_jobs

    study = load_study(scaling_study(tmp_path, pixel_cache))
    runner = StudyRunner(study, tmp_path / "run", show_progress=False)
    jobs = [*ssl_jobs(study, study.datasets["tiny"]), *baseline_jobs(study)]
    cells = sum(len(runner.eval_cells("tiny", job)) for job in jobs)
    assert runner.pending_units() == 2 * STEPS + cells  # two pools of STEPS steps each, then the cells
