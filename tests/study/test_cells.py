"""The study as cells with dependencies: ``benchmark --dry-run`` and ``medssl status``."""

from __future__ import annotations

import multiprocessing
import os
import signal
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from medssl.cli import app
from medssl.study import load_study, run_study
from medssl.study.cells import cell_statuses, study_cells
from medssl.study.grid import _write_config
from medssl.study.state import STATE_DIR, cell_state

PRETRAIN = "tiny/pretrain/simclr-resnet18-random"
SSL_KNN = "tiny/simclr-resnet18-random/knn/f1/s0"
BASELINE_KNN = "tiny/random-resnet18/knn/f1/s0"


def small_study(tmp_path: Path, cache: Path, folds: int | None = None) -> Path:
    """One SSL encoder and one baseline, kNN only: three cells, the SSL one's evaluation needing its encoder
    (three per fold with ``folds``)."""
    data = {
        "path": "synthetic",
        "image_size": 32,
        "cache_dir": str(cache),
        "synthetic": {"n_images": 96, "size": 32},
    }
    study = {
        "datasets": {"tiny": {**data, **({"folds": folds} if folds else {})}},
        "methods": ["simclr"],
        "pretrain": {"epochs": 1, "batch_size": 32, "knn_k": 10, "max_steps_per_epoch": 2, "knn_every": 5},
        "baselines": ["random:resnet18"],
        "evaluation": {"protocols": ["knn"], "k": 10, "n_bootstrap": 100},
    }  # fmt: skip
    path = tmp_path / ("small_cv.yaml" if folds else "small.yaml")
    path.write_text(yaml.safe_dump(study))
    return path


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_cells_and_their_dependencies_follow_the_study(tmp_path: Path) -> None:
    study = load_study(small_study(tmp_path, tmp_path / "cache"), ["pretrain_seeds=2"])
    cells = {cell.name: cell for cell in study_cells(study)}
    assert set(cells) == {
        "tiny/pretrain/simclr-resnet18-random", "tiny/pretrain/simclr-resnet18-random-s1",
        "tiny/simclr-resnet18-random/knn/f1/s0", "tiny/simclr-resnet18-random-s1/knn/f1/s0", BASELINE_KNN,
    }  # fmt: skip
    assert cells["tiny/simclr-resnet18-random-s1/knn/f1/s0"].needs == (
        "tiny/pretrain/simclr-resnet18-random-s1",
    )
    assert cells[BASELINE_KNN].needs == () and cells["tiny/pretrain/simclr-resnet18-random"].needs == ()


def test_dry_run_lists_cells_and_what_is_done_running_nothing(tmp_path: Path, pixel_cache: Path) -> None:
    config, out = small_study(tmp_path, pixel_cache), tmp_path / "run"
    listing = cli("benchmark", str(config), "--out", str(out), "--dry-run")
    assert f"pending  {SSL_KNN}  (needs {PRETRAIN})" in listing
    assert (
        f"pending  {PRETRAIN}\n" in listing and "3 cells: 0 done, 0 running, 0 failed, 3 pending" in listing
    )
    assert not out.exists()  # nothing written, nothing run
    plan = cli("benchmark", str(config), "--out", str(out), "--dry-run", "--launcher", "slurm")
    assert "SLURM: an array of 2 jobs, then 1 jobs each after" in plan and "#SBATCH --array=0-1%2" in plan
    assert not out.exists()
    run_study(load_study(config), out, show_progress=False)
    listing = cli("benchmark", str(config), "--out", str(out), "--dry-run")
    assert "3 cells: 3 done, 0 running, 0 failed, 0 pending" in listing
    assert not list((out / STATE_DIR).iterdir())  # a finished cell leaves no state file
    assert "3 cells: 3 done" in cli("status", str(out))


def _killed_inside(out: Path, name: str) -> None:
    with cell_state(out, name, log="worker.log"):
        os.kill(os.getpid(), signal.SIGKILL)


def test_status_shows_running_failed_with_log_and_a_killed_cell(tmp_path: Path, pixel_cache: Path) -> None:
    config, out = small_study(tmp_path, pixel_cache), tmp_path / "run"
    study = load_study(config)
    _write_config(study, out, "medssl benchmark")  # what a run writes first
    worker = multiprocessing.get_context("fork").Process(target=_killed_inside, args=(out, PRETRAIN))
    worker.start()
    worker.join()
    assert worker.exitcode == -signal.SIGKILL
    with pytest.raises(RuntimeError), cell_state(out, BASELINE_KNN, log="b.log"):
        raise RuntimeError("out of memory")
    with cell_state(out, SSL_KNN):
        states = {s.cell.name: s for s in cell_statuses(study, out)}
        assert states[SSL_KNN].state == "running" and str(os.getpid()) in states[SSL_KNN].detail
    assert states[PRETRAIN].state == "failed" and "died" in states[PRETRAIN].detail
    assert states[PRETRAIN].log == "worker.log"
    assert states[BASELINE_KNN].state == "failed" and "out of memory" in states[BASELINE_KNN].detail
    listing = cli("status", str(out))
    assert f"failed   {BASELINE_KNN}  RuntimeError: out of memory  log: b.log" in listing
    assert f"pending  {SSL_KNN}" in listing and "3 cells: 0 done, 0 running, 2 failed, 1 pending" in listing


def test_each_fold_has_its_cells_and_its_probes_need_that_folds_encoder(tmp_path: Path) -> None:
    study = load_study(small_study(tmp_path, tmp_path / "cache", folds=2), ["pretrain_fractions=[1.0, 0.5]"])
    cells = {cell.name: cell for cell in study_cells(study)}
    ssl = ("simclr-resnet18-random", "simclr-resnet18-random-p0.5")  # one SSL cell per pre-training pool
    expected = {}
    for fold in (1, 2):
        for encoder in ssl:
            expected[f"tiny/fold{fold}/pretrain/{encoder}"] = ()
            expected[f"tiny/fold{fold}/{encoder}/knn/f1/s0"] = (f"tiny/fold{fold}/pretrain/{encoder}",)
        expected[f"tiny/fold{fold}/random-resnet18/knn/f1/s0"] = ()  # a baseline per fold, needing nothing
    assert {name: cell.needs for name, cell in cells.items()} == expected
    assert {cell.fold for cell in cells.values()} == {1, 2}


def test_dry_run_of_a_cv_study_lists_the_fold_cells(tmp_path: Path, pixel_cache: Path) -> None:
    config, out = small_study(tmp_path, pixel_cache, folds=2), tmp_path / "run"
    listing = cli("benchmark", str(config), "--out", str(out), "--dry-run")
    for fold in (1, 2):
        ssl = f"tiny/fold{fold}/simclr-resnet18-random"
        assert f"pending  tiny/fold{fold}/pretrain/simclr-resnet18-random\n" in listing
        assert f"pending  {ssl}/knn/f1/s0  (needs tiny/fold{fold}/pretrain/simclr-resnet18-random)" in listing
        assert f"pending  tiny/fold{fold}/random-resnet18/knn/f1/s0\n" in listing
    assert "6 cells: 0 done, 0 running, 0 failed, 6 pending" in listing
    plan = cli("benchmark", str(config), "--out", str(out), "--dry-run", "--launcher", "slurm")
    assert "SLURM: an array of 4 jobs, then 2 jobs each after" in plan  # per fold: pre-training, baseline
    assert not out.exists()
