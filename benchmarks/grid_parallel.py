"""Time a study grid run sequentially and with 1 and 2 (or more) local workers (`--launcher local`).

Each run is `medssl benchmark CONFIG --out DIR` in a fresh folder, single-threaded per worker
(OMP_NUM_THREADS=1, threads_per_worker=1), after the pixel cache is filled once. Reports:

- the wall time of each run and the ratio sequential / N workers;
- the launcher's overhead per task: (1 local worker - sequential) / tasks, i.e. what each task pays for its
  own process (start-up, imports, data cache load, encoder load) on top of the work itself;
- whether every run gives the same results table (set-wise: cell identity and accuracy).

    .venv/bin/python benchmarks/grid_parallel.py                      # the demo grid, 1 and 2 workers
    .venv/bin/python benchmarks/grid_parallel.py --config medssl/configs/cpu/chest_xray.yaml --workers 1,4

Prints one JSON line. Takes several demo runs' time: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import machine_info

from medssl.data.dataset import prepare_data
from medssl.study import load_study
from medssl.study.launch import pending_tasks


def benchmark(config: str | None, out: Path, *options: str) -> float:
    """Seconds of one ``medssl benchmark`` run into ``out`` (a fresh folder)."""
    command = [
        sys.executable,
        "-m",
        "medssl.cli",
        "benchmark",
        *([config] if config else []),
        "--out",
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    subprocess.run([*command, *options], env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def table(out: Path) -> set[tuple[str, ...]]:
    keys = ("dataset", "encoder", "protocol", "label_fraction", "seed", "accuracy")
    with (out / "results.csv").open(newline="") as handle:
        return {tuple(row[k] for k in keys) for row in csv.DictReader(handle)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="Study YAML (default: the embedded demo).")
    parser.add_argument("--workers", default="1,2", help="Comma-separated local worker counts to time.")
    parser.add_argument("--work-dir", default=None, help="Where the runs go (default: a temporary folder).")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    root = Path(args.work_dir or tempfile.mkdtemp(prefix="grid-parallel-"))
    tasks = len(pending_tasks(load_study(args.config), root / "none"))
    for name, data_config in load_study(args.config).datasets.items():  # the pixel cache, filled once
        prepare_data(data_config.model_copy(update={"name": name}))
    serial = ["--set", "threads_per_worker=1"]
    times = {"sequential": benchmark(args.config, root / "sequential")}
    for n in counts:
        times[f"local_{n}"] = benchmark(
            args.config, root / f"local-{n}", "--launcher", "local", "--workers", str(n), *serial
        )
    reference = table(root / "sequential")
    result = {
        "config": args.config or "demo",
        "tasks": tasks,
        "wall_s": {name: round(seconds, 1) for name, seconds in times.items()},
        "speed_up_vs_sequential": {
            name: round(times["sequential"] / seconds, 2)
            for name, seconds in times.items()
            if name != "sequential"
        },
        "same_table": all(table(root / f"local-{n}") == reference for n in counts),
        "machine": machine_info(torch.device("cuda" if torch.cuda.is_available() else "cpu")),
    }
    if 1 in counts:
        result["launcher_overhead_per_task_s"] = round((times["local_1"] - times["sequential"]) / tasks, 2)
    if 1 in counts and 2 in counts:
        result["ratio_1_over_2_workers"] = round(times["local_1"] / times["local_2"], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
