"""A study killed during pre-training (before any result exists) and rerun resumes that pre-training and runs
every cell exactly once. The kill during evaluation is tested in tests/study/test_grid.py
(``test_killed_grid_resumes_without_losing_or_repeating_cells``).
"""

from __future__ import annotations

import csv
import signal
import time
from collections import Counter
from pathlib import Path

import torch

from medssl.models.encoder import ENCODER_META
from medssl.train.api import LAST

from .cli import WAIT, history, medssl, start, tiny_study

KEY = ("dataset", "encoder", "protocol", "label_fraction", "seed")
CELLS = {
    ("tiny", "simclr-resnet18-random", "knn", "1.0", "0"),
    ("tiny", "random-resnet18", "knn", "1.0", "0"),
}


def study(tmp_path: Path) -> Path:
    return tiny_study(tmp_path, tmp_path / "cache", {"epochs": 3, "batch_size": 16}, k=10)


def test_grid_killed_during_pretraining_resumes_it_and_runs_each_cell_once(tmp_path: Path) -> None:
    config, out = study(tmp_path), tmp_path / "run"
    run = out / "tiny" / "pretrain" / "simclr-resnet18-random"
    process = start("benchmark", str(config), "--out", str(out), cwd=tmp_path, stderr=tmp_path / "killed.err")
    try:
        while process.poll() is None and not (run / "checkpoints" / LAST).exists():
            time.sleep(0.02)
        assert process.poll() is None, "the study finished before it could be killed"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=WAIT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not (out / "results.csv").exists() and not (run / ENCODER_META).exists()
    done = torch.load(run / "checkpoints" / LAST, weights_only=True)["epoch"]
    before = history(run)[: done + 1]
    assert done < 2 and len(before) == done + 1
    result = medssl("benchmark", str(config), "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = history(run)
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]  # each epoch once
    assert rows[: done + 1] == before  # the epochs before the kill were not trained again
    with (out / "results.csv").open(newline="") as handle:
        counts = Counter(tuple(r[k] for k in KEY) for r in csv.DictReader(handle))
    assert set(counts) == CELLS and max(counts.values()) == 1
    assert (out / "report.html").exists()
