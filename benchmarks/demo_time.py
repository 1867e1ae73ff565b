"""Where the demo's study time goes: ``medssl benchmark`` on a study config, once per CPU precision path.

Each run is a fresh subprocess (as ``make demo`` runs it) with ``MEDSSL_PRECISION`` forcing the path, into a
fresh temporary folder; the demo's generated images come from medssl's pixel cache after the first run. Printed, one JSON line:
the study's wall time and peak RSS per path, and its split: pre-training per method (``history.csv``'s
``wall_s``), each evaluation protocol (``results.csv``'s ``wall_s``), and the rest (start-up, data, features,
report).

    .venv/bin/python benchmarks/demo_time.py                       # the embedded demo, 32-bit and bf16
    .venv/bin/python benchmarks/demo_time.py --precisions 32-true --config path/to/study.yaml
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
from collections import defaultdict
from pathlib import Path

import torch
from common import machine_info

from medssl.study.config import DEFAULT_CONFIG


def _study(config: Path, out: Path, precision: str) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of ``medssl benchmark CONFIG --out OUT`` in a child process."""
    env = {**os.environ, "MEDSSL_PRECISION": precision}
    command = [sys.executable, "-m", "medssl.cli", "benchmark", str(config), "--out", str(out)]
    start = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)  # this child's own peak RSS, not the largest child's so far
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"error: {' '.join(command)} failed (exit {os.waitstatus_to_exitcode(status)})")
    return seconds, usage.ru_maxrss / 1024


def _split(out: Path) -> dict[str, float]:
    """Seconds of each pre-training run and of each evaluation protocol, from the run's own records."""
    parts: dict[str, float] = defaultdict(float)
    for history in sorted(out.glob("*/pretrain/*/history.csv")):
        with history.open() as handle:
            rows = list(csv.DictReader(handle))
        parts[f"pretrain {history.parent.name}"] = round(float(rows[-1]["wall_s"]), 1)
    with (out / "results.csv").open() as handle:
        for row in csv.DictReader(handle):
            parts[f"evaluate {row['protocol']}"] += float(row["wall_s"])
    return {key: round(value, 1) for key, value in parts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--precisions", default="32-true,bf16-mixed")
    args = parser.parse_args()
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in args.precisions.split(","):
            out = Path(tmp) / precision
            seconds, rss = _study(args.config, out, precision)
            split = _split(out)
            split["rest (start-up, data, features, report)"] = round(seconds - sum(split.values()), 1)
            runs[precision] = {"study_s": round(seconds, 1), "peak_rss_mb": round(rss), "split_s": split}
    print(
        json.dumps({"config": str(args.config), "runs": runs, "machine": machine_info(torch.device("cpu"))})
    )


if __name__ == "__main__":
    main()
