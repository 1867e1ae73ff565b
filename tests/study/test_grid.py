"""The study grid end to end on tiny synthetic data, and its resume after a kill."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from medssl.errors import ConfigError
from medssl.study import load_study, run_study
from medssl.study.grid import StudyRunner

KEY = ("dataset", "encoder", "protocol", "label_fraction", "seed")


def tiny_study(tmp_path: Path, cache: Path) -> Path:
    study = {
        "datasets": {
            "tiny": {"path": "synthetic", "image_size": 32, "cache_dir": str(cache),
                     "synthetic": {"n_images": 160, "size": 32}},
        },
        "methods": ["simclr", "simsiam"],
        "pretrain": {"epochs": 2, "batch_size": 32, "knn_k": 10, "max_steps_per_epoch": 3},
        "baselines": ["random:resnet18"],
        "evaluation": {"protocols": ["knn", "linear"], "finetune": ["random:resnet18"],
                       "label_fractions": [0.5, 1.0], "k": 10, "finetune_epochs": 1, "finetune_min_steps": 2,
                       "patience": 1, "n_bootstrap": 200},
    }  # fmt: skip
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def rows(run: Path) -> list[dict]:
    with (run / "results.csv").open() as handle:
        return list(csv.DictReader(handle))


EXPECTED_CELLS = (
    3 * 2 * 2 + 2
)  # (2 SSL + 1 baseline) × (knn, linear) × 2 fractions + supervised fine-tune × 2


def test_tiny_grid_end_to_end(tmp_path: Path, pixel_cache: Path) -> None:
    study = load_study(tiny_study(tmp_path, pixel_cache))
    run = run_study(study, tmp_path / "run", show_progress=False)
    results = rows(run)
    assert len(results) == EXPECTED_CELLS
    assert {r["encoder"] for r in results} == {
        "simclr-resnet18-random",
        "simsiam-resnet18-random",
        "random-resnet18",
    }
    assert {r["method"] for r in results if r["protocol"] == "finetune"} == {"supervised"}
    assert all(0 <= float(r["accuracy"]) <= 1 for r in results)
    assert (run / "tiny" / "split.csv").exists() and (run / "tiny" / "augment_preview.png").exists()
    assert (run / "report.html").exists() and (run / "report.md").exists()
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert "machine" in config and "started" in config and "command" in config
    # A second run finds everything finished and runs nothing.
    assert StudyRunner(study, run).pending_units() == 0
    run_study(study, run, show_progress=False)
    assert len(rows(run)) == EXPECTED_CELLS


def benchmark_args(config: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "medssl.cli", "benchmark", str(config), "--out", str(out)]


def kill_after_rows(config: Path, out: Path, env: dict, min_rows: int, timeout: float) -> list[dict]:
    """Run ``medssl benchmark`` in a child process, SIGKILL it once ``min_rows`` cells are in results.csv, and
    return the rows it left."""
    process = subprocess.Popen(
        benchmark_args(config, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if (out / "results.csv").exists() and len(rows(out)) >= min_rows:
            break
        time.sleep(0.1)
    assert process.poll() is None, "the grid finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    return rows(out)


def test_killed_grid_resumes_without_losing_or_repeating_cells(tmp_path: Path, pixel_cache: Path) -> None:
    config = tiny_study(tmp_path, pixel_cache)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed = tmp_path / "killed"
    before = kill_after_rows(config, killed, env, min_rows=3, timeout=240)
    assert 3 <= len(before) < EXPECTED_CELLS
    subprocess.run(benchmark_args(config, killed), env=env, check=True, capture_output=True, timeout=400)
    after = rows(killed)
    counts = Counter(tuple(r[k] for k in KEY) for r in after)
    assert len(counts) == EXPECTED_CELLS and max(counts.values()) == 1
    assert after[: len(before)] == before  # finished cells kept as they were
    # The same study run without interruption (same thread count) gives the same figures.
    whole = tmp_path / "whole"
    subprocess.run(benchmark_args(config, whole), env=env, check=True, capture_output=True, timeout=400)
    reference = {tuple(r[k] for k in KEY): r["accuracy"] for r in rows(whole) if r["protocol"] != "finetune"}
    resumed = {tuple(r[k] for k in KEY): r["accuracy"] for r in after if r["protocol"] != "finetune"}
    assert resumed == reference


def test_bad_study_config_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("datasets: {x: {path: synthetic}}\nmethods: [simclr]\nepochs: 3\n")
    with pytest.raises(ConfigError, match="epochs: unknown key"):
        load_study(path)
    path.write_text("datasets: {x: {path: synthetic}}\nbaselines: [imagenet]\n")
    with pytest.raises(ConfigError, match="random:<backbone>, imagenet:<backbone>, timm:<model name>"):
        load_study(path)


def test_shipped_configs_validate() -> None:
    configs = Path(__file__).resolve().parents[2] / "medssl" / "configs"
    paths = sorted(configs.rglob("*.yaml"))
    names = {path.relative_to(configs).as_posix() for path in paths}
    assert {"demo.yaml", "cpu/chest_xray.yaml", "paper/chest_xray.yaml", "paper/kather2016.yaml"} <= names
    for path in paths:
        study = load_study(path)
        assert study.datasets and study.methods, path


def test_the_pretrain_template_reaches_every_cell_and_refuses_per_cell_keys(tmp_path: Path) -> None:
    from medssl.study.grid import ssl_jobs

    path = tmp_path / "study.yaml"
    path.write_text(
        "datasets: {x: {path: synthetic}}\nmethods: [simclr, vicreg]\n"
        "pretrain: {epochs: 3, weight_decay: 0.001, precision: 32-true, knn_bank_size: 100}\n"
    )
    study = load_study(path)
    jobs = ssl_jobs(study, study.datasets["x"])
    assert [job.pretrain.method for job in jobs] == ["simclr", "vicreg"]
    for job in jobs:
        assert (job.pretrain.epochs, job.pretrain.weight_decay, job.pretrain.precision) == (
            3,
            0.001,
            "32-true",
        )
        assert job.pretrain.knn_bank_size == 100 and not job.pretrain.progress_bar
    with pytest.raises(ConfigError, match="pretrain: Value error, method vary per cell"):
        load_study(path, ["pretrain.method=byol"])


def test_an_extra_ssl_encoder_beside_the_grid_trains_from_imagenet_with_its_own_batch(
    tmp_path: Path, pixel_cache: Path
) -> None:
    import json

    path = tiny_study(tmp_path, pixel_cache)
    study = yaml.safe_load(path.read_text())
    study["methods"] = ["simclr"]
    study["ssl_encoders"] = [{"method": "simclr", "backbone": "efficientnet_lite0", "batch_size": 16}]
    study["evaluation"].update(protocols=["knn"], finetune=[], label_fractions=[1.0])
    path.write_text(yaml.safe_dump(study))
    run = run_study(load_study(path), tmp_path / "run", show_progress=False)
    assert {r["encoder"] for r in rows(run)} == {
        "simclr-resnet18-random",
        "simclr-efficientnet_lite0-imagenet",
        "random-resnet18",
    }
    meta = json.loads(next(run.rglob("simclr-efficientnet_lite0-imagenet/encoder.json")).read_text())
    assert (meta["init"], meta["recipe"]["batch_size"], meta["steps"]) == ("imagenet", 16, 6)
    grid = json.loads(next(run.rglob("simclr-resnet18-random/encoder.json")).read_text())
    assert grid["recipe"]["batch_size"] == 32
    study["ssl_encoders"] = [{"method": "simclr", "backbone": "resnet18", "init": "random"}]
    path.write_text(yaml.safe_dump(study))
    with pytest.raises(ConfigError, match="simclr/resnet18/random is listed twice"):
        load_study(path)
