"""The study's cells in parallel through submitit: local workers and the SLURM submission path."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import submitit
import torch

from medssl.study import grid as grid_module
from medssl.study import load_study, run_study
from medssl.study.cells import cell_statuses
from medssl.study.config import SlurmSettings
from medssl.study.launch import (
    LOG_DIR,
    launch_study,
    local_slots,
    pending_tasks,
    prepare_run,
    sbatch_script,
    submit_tasks,
)
from medssl.study.state import pretrain_name, state_path
from medssl.train.api import LAST

from .test_cells import PRETRAIN, small_study

KEY = ("dataset", "encoder", "protocol", "label_fraction", "seed", "fold")
FIGURES = ("accuracy", "auroc", "n_train", "n_test")
SERIAL = [
    "threads_per_worker=1",
    "slurm.cpus_per_cell=1",
]  # one thread per worker, as the sequential run here


def table(run: Path) -> Counter:
    """Each row of results.csv as (identity, figures), counted: the results set-wise, with repeats seen."""
    with (run / "results.csv").open(newline="") as handle:
        return Counter(tuple(row[k] for k in (*KEY, *FIGURES)) for row in csv.DictReader(handle))


def _run_sequentially(config: Path, out: Path) -> list[str]:
    """Run the study of ``config`` into ``out`` in this process; returns the cell names the grid marked."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread, as each worker below: the same floats
    marked, mark = [], grid_module.cell_state

    def marking(out: Path, name: str, log: str | None = None):
        marked.append(name)
        return mark(out, name, log)

    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(grid_module, "cell_state", marking)
            run_study(load_study(config), out, show_progress=False)
    finally:
        torch.set_num_threads(threads)
    return marked


@pytest.fixture(scope="module")
def sequential(tmp_path_factory: pytest.TempPathFactory, pixel_cache: Path) -> tuple[Path, Counter]:
    folder = tmp_path_factory.mktemp("sequential")
    config = small_study(folder, pixel_cache)
    _run_sequentially(config, folder / "run")
    return config, table(folder / "run")


@pytest.fixture(scope="module")
def cv_sequential(
    tmp_path_factory: pytest.TempPathFactory, pixel_cache: Path
) -> tuple[Path, Path, list[str]]:
    """The small study with 2 cross-validation folds, run sequentially: its config, run and marked cells."""
    folder = tmp_path_factory.mktemp("cv_sequential")
    config = small_study(folder, pixel_cache, folds=2)
    marked = _run_sequentially(config, folder / "run")
    return config, folder / "run", marked


def test_two_local_workers_give_the_sequential_results_each_cell_once(tmp_path: Path, sequential) -> None:
    config, reference = sequential
    study = load_study(config, ["launcher=local", "workers=2", *SERIAL])
    launch_study(study, tmp_path / "run", show_progress=False)
    assert table(tmp_path / "run") == reference and max(reference.values()) == 1
    assert len(list((tmp_path / "run" / LOG_DIR).glob("*_log.err"))) == 3  # 3 tasks, each one job
    assert (tmp_path / "run" / "report.html").exists()
    assert pending_tasks(study, tmp_path / "run") == []


def test_the_slurm_path_through_submitits_local_executor(
    tmp_path: Path, sequential, slurm_login_node
) -> None:
    config, reference = sequential
    study = load_study(config, ["launcher=slurm", *SERIAL])
    out = prepare_run(study, tmp_path / "run", "medssl benchmark").out
    tasks = pending_tasks(study, out)
    assert [(t.kind, t.needs) for t in tasks] == [
        ("pretrain", ()),
        ("evaluate", (PRETRAIN,)),
        ("evaluate", ()),
    ]
    executor = submitit.LocalExecutor(folder=out / LOG_DIR)
    executor.update_parameters(timeout_min=30)
    jobs = submit_tasks(study, out, tasks, executor)
    assert sorted(job.result() for job in jobs.values()) == sorted(t.name for t in tasks)
    assert table(out) == reference


def test_two_local_workers_on_a_cv_study_give_the_sequential_results(tmp_path: Path, cv_sequential) -> None:
    config, sequential_run, marked = cv_sequential
    study, out = load_study(config, ["launcher=local", "workers=2", *SERIAL]), tmp_path / "run"
    launch_study(study, out, show_progress=False)
    reference = table(sequential_run)
    assert table(out) == reference and max(reference.values()) == 1
    assert {row[KEY.index("fold")] for row in reference} == {"1", "2"} and len(reference) == 4
    assert len(list((out / LOG_DIR).glob("*_log.err"))) == 6  # per fold: pre-training, 2 evaluations
    split = Path("tiny", "split.csv")  # the folds the report reads: the sequential run's, byte for byte
    assert (out / split).read_bytes() == (sequential_run / split).read_bytes()
    for fold in (1, 2):
        assert (
            out / "tiny" / f"fold{fold}" / "pretrain" / "simclr-resnet18-random" / "encoder.json"
        ).exists()
    assert "Fold 2" in (out / "report.md").read_text()  # the report's per-fold table
    statuses = cell_statuses(study, out)
    assert {s.cell.name for s in statuses} == set(marked) and len(marked) == 6  # the names both runs use
    assert {s.state for s in statuses} == {"done"} and pending_tasks(study, out) == []


def test_the_slurm_path_with_folds_waits_for_each_folds_encoder(
    tmp_path: Path, cv_sequential, slurm_login_node
) -> None:
    config, sequential_run, _ = cv_sequential
    study = load_study(config, ["launcher=slurm", *SERIAL])
    out = prepare_run(study, tmp_path / "run", "medssl benchmark").out
    tasks = pending_tasks(study, out)
    ssl = [f"tiny/fold{fold}/pretrain/simclr-resnet18-random" for fold in (1, 2)]
    assert [(t.name, t.needs, t.fold) for t in tasks] == [
        (ssl[0], (), 1),
        (ssl[1], (), 2),
        ("tiny/fold1/simclr-resnet18-random/evaluate", (ssl[0],), 1),
        ("tiny/fold1/random-resnet18/evaluate", (), 1),
        ("tiny/fold2/simclr-resnet18-random/evaluate", (ssl[1],), 2),
        ("tiny/fold2/random-resnet18/evaluate", (), 2),
    ]
    executor = submitit.LocalExecutor(folder=out / LOG_DIR)
    executor.update_parameters(timeout_min=30)
    jobs = submit_tasks(study, out, tasks, executor)
    assert sorted(job.result() for job in jobs.values()) == sorted(t.name for t in tasks)
    assert table(out) == table(sequential_run)


def test_the_sbatch_script_holds_the_configured_resources(tmp_path: Path) -> None:
    settings = SlurmSettings(partition="gpu-a100", time_min=90, gpus_per_cell=2, cpus_per_cell=6, mem_gb=40,
                             array_parallelism=5, setup=["module load cuda"])  # fmt: skip
    script = sbatch_script(settings, tmp_path / LOG_DIR, array=12)
    for line in ("#SBATCH --partition=gpu-a100", "#SBATCH --time=90", "#SBATCH --gpus-per-node=2",
                 "#SBATCH --cpus-per-task=6", "#SBATCH --mem=40GB", "#SBATCH --array=0-11%5",
                 "module load cuda"):  # fmt: skip
        assert line in script.splitlines(), line
    assert "--array" not in sbatch_script(settings, tmp_path / LOG_DIR)


def test_local_slots_one_per_gpu_else_per_group_of_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert [(s.gpu, s.threads) for s in local_slots(None, None)] == [(None, 4)] * 4
    assert [(s.gpu, s.threads) for s in local_slots(2, None)] == [(None, 8)] * 2
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    assert [s.gpu for s in local_slots(None, None)] == [0, 1, 2]
    assert [s.gpu for s in local_slots(4, 1)] == [0, 1, 2, 0]


def _history_epochs(run: Path) -> list[int]:
    with (run / "history.csv").open(newline="") as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


@pytest.mark.parametrize("folds", [None, 2], ids=["one-split", "two-folds"])
def test_a_sigkilled_worker_loses_nothing_and_its_cell_resumes_on_the_rerun(
    tmp_path: Path, pixel_cache: Path, folds: int | None
) -> None:
    config, out = small_study(tmp_path, pixel_cache, folds), tmp_path / "run"
    killed = pretrain_name("tiny", "simclr-resnet18-random", 1 if folds else None)  # fold 1's under CV
    command = [sys.executable, "-m", "medssl.cli", "benchmark", str(config), "--out", str(out), "--launcher",
               "local", "--workers", "2", "--set", "pretrain.epochs=3", *(f"--set={s}" for s in SERIAL)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    parent = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not (out / killed / "checkpoints" / LAST).exists():
        time.sleep(0.05)
    worker = json.loads(state_path(out, killed).read_text())["pid"]
    os.kill(worker, signal.SIGKILL)  # the worker process that is pre-training, not the launcher
    _, stderr = parent.communicate(timeout=400)
    assert parent.returncode == 2, stderr
    tasks = 3 * (folds or 1)  # per fold: pre-training, its evaluation, the baseline's
    assert f"2 of {tasks} tasks failed" in stderr and "not started" in stderr, stderr
    status = subprocess.run([sys.executable, "-m", "medssl.cli", "status", str(out)], env=env,
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert f"failed   {killed}  process {worker} died" in status and "_log.err" in status
    before = _history_epochs(out / killed)
    assert len(before) < 3
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=500)
    for fold in range(1, folds + 1) if folds else [None]:  # the epochs before the kill were not trained again
        assert _history_epochs(out / pretrain_name("tiny", "simclr-resnet18-random", fold)) == [0, 1, 2]
    counts = Counter((row[0], row[1], row[KEY.index("fold")]) for row in table(out).elements())
    expected = [str(fold) for fold in range(1, folds + 1)] if folds else [""]
    assert counts == {
        ("tiny", encoder, fold): 1
        for encoder in ("simclr-resnet18-random", "random-resnet18")
        for fold in expected
    }  # each cell once
