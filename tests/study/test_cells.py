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


def small_study(tmp_path: Path, cache: Path) -> Path:
    """One SSL encoder and one baseline, kNN only: three cells, the SSL one's evaluation needing its encoder."""
    study = {
        "datasets": {"tiny": {"path": "synthetic", "image_size": 32, "cache_dir": str(cache),
                              "synthetic": {"n_images": 96, "size": 32}}},
        "methods": ["simclr"],
        "pretrain": {"epochs": 1, "batch_size": 32, "knn_k": 10, "max_steps_per_epoch": 2, "knn_every": 5},
        "baselines": ["random:resnet18"],
        "evaluation": {"protocols": ["knn"], "k": 10, "n_bootstrap": 100},
    }  # fmt: skip
    path = tmp_path / "small.yaml"
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
        "tiny/pretrain/simclr-resnet18-random-s0", "tiny/pretrain/simclr-resnet18-random-s1",
        "tiny/simclr-resnet18-random-s0/knn/f1/s0", "tiny/simclr-resnet18-random-s1/knn/f1/s0", BASELINE_KNN,
    }  # fmt: skip
    assert cells["tiny/simclr-resnet18-random-s1/knn/f1/s0"].needs == (
        "tiny/pretrain/simclr-resnet18-random-s1",
    )
    assert cells[BASELINE_KNN].needs == () and cells["tiny/pretrain/simclr-resnet18-random-s0"].needs == ()


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


def test_launchers_refuse_cross_validation_before_writing_anything(tmp_path: Path) -> None:
    from medssl.errors import ConfigError
    from medssl.study.config import StudyConfig
    from medssl.study.launch import launch_study

    study = StudyConfig.model_validate(
        {"datasets": {"cv": {"path": "synthetic", "folds": 3}}, "methods": ["simclr"], "launcher": "local"}
    )
    with pytest.raises(ConfigError, match=r"cv use cross-validation folds.*launcher: sequential"):
        launch_study(study, tmp_path / "run")
    assert not (tmp_path / "run").exists()
