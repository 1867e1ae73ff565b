"""Memory and scaling of pre-training and kNN evaluation.

Three measurements, each in a fresh process so that one's peak memory cannot hide another's:

* ``pretrain_peak_rss``: peak resident memory (``ru_maxrss``) of a whole ``medssl.train.api.pretrain`` run
  (SimCLR, ResNet-18, 64 px, batch 128, ``--rss-steps`` steps, then the epoch's kNN monitor and checkpoint) on
  the chest X-ray set, data preparation included. Target: < 3 GB.
* ``epoch_scaling``: training time of one epoch on 25 / 50 / 100 % of the training split (``--epochs`` epochs
  each, the last one timed, so that start-up costs are excluded). Steps per epoch are proportional to the
  images, so the time should grow linearly: the ratios to the 25 % epoch should be about 2 and 4. The kNN
  monitor and checkpoint after each epoch are reported apart (``epoch_total_s``).
* ``knn_memory``: ``medssl.common.knn.knn_scores`` (k = 200) with a ``--knn-bank`` × 512 float32 bank
  (default 100,000) and ``--knn-queries`` queries: the increase of peak RSS during the call over the RSS
  before it (the peak is reset through ``/proc/self/clear_refs``), against what a full bank × bank float32
  matrix (100k² × 4 B = 40 GB) and a full queries × bank matrix would need.

    .venv/bin/python benchmarks/memory_scale.py [--device auto|cpu|cuda] [--parts rss,scaling,knn]

Prints one JSON line. Peak RSS is host memory (GPU memory is not counted).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import re
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
from common import (
    accelerator,
    add_common_args,
    clock,
    data_config,
    load_data,
    machine_info,
    quiet,
    resolve_device,
)

from medssl.train.config import PretrainConfig

TARGET_PEAK_GB = 3.0
FEATURE_DIM = 512
PARTS = ("rss", "scaling", "knn")


def isolated(function: Callable[[argparse.Namespace], dict], args: argparse.Namespace) -> dict:
    """``function(args)`` in a fresh (spawned) Python process."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, args).result()


def pretrain_config(args: argparse.Namespace, **overrides) -> PretrainConfig:
    settings = {
        "method": "simclr",
        "backbone": "resnet18",
        "batch_size": args.batch_size,
        "accelerator": accelerator(resolve_device(args.device)),
        "precision": args.precision,
        "progress_bar": False,
        "data": data_config(args),
        **overrides,
    }
    return PretrainConfig(**settings)


def _status_kb(field: str) -> int | None:
    """A ``VmRSS``/``VmHWM`` line of ``/proc/self/status`` in KiB (None where there is no /proc)."""
    try:
        match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) of this process; False where that is impossible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _maxrss_mb() -> float:
    """Peak RSS of this process so far in MB (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6


# -- parts, each run in its own process ----------------------------------------------------------------------
def pretrain_peak_rss(args: argparse.Namespace) -> dict:
    """Peak RSS of data preparation + a short pre-training run + its epoch-end monitor."""
    quiet()
    from medssl.train.api import pretrain

    started = time.perf_counter()
    data = load_data(args)
    config = pretrain_config(args, epochs=1, max_steps_per_epoch=args.rss_steps)
    with tempfile.TemporaryDirectory(prefix="medssl-rss-") as out:
        pretrain(config, Path(out) / "run", data=data)
    peak_mb = _maxrss_mb()
    return {
        "data": data.name,
        "n_images": len(data.images),
        "pixels_mb": round(data.images.nbytes / 1e6, 1),
        "steps": args.rss_steps,
        "batch_size": args.batch_size,
        "peak_rss_mb": round(peak_mb, 1),
        "target_gb": TARGET_PEAK_GB,
        "within_target": peak_mb / 1e3 < TARGET_PEAK_GB,
        "seconds": round(time.perf_counter() - started, 1),
    }


class EpochTimer(pl.Callback):
    """Per epoch: training time (before the kNN monitor) and the whole epoch (monitor and checkpoint too).

    A plain callback: Lightning calls its ``on_train_epoch_end`` before the module's, where the monitor runs.
    """

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.train_s: list[float] = []
        self.total_s: list[float] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        now = clock(module.device)
        if self.starts:
            self.total_s.append(now - self.starts[-1])
        self.starts.append(now)

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.train_s.append(clock(module.device) - self.starts[-1])

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.total_s.append(clock(module.device) - self.starts[-1])


def epoch_scaling(args: argparse.Namespace) -> dict:
    """Last-epoch time of pre-training on growing random subsets of the training split."""
    quiet()
    from medssl.train.api import pretrain

    data = load_data(args)
    train = np.random.default_rng(0).permutation(data.split["train"])
    config = pretrain_config(args, epochs=args.epochs)
    rows = []
    with tempfile.TemporaryDirectory(prefix="medssl-scaling-") as scratch:
        for fraction in args.fractions:
            subset = np.sort(train[: max(args.batch_size, round(fraction * len(train)))])
            part = dataclasses.replace(data, split={**data.split, "train": subset})
            timer = EpochTimer()
            pretrain(config, Path(scratch) / f"f{fraction}", data=part, callbacks=[timer])
            rows.append(
                {
                    "fraction": fraction,
                    "n_train": len(subset),
                    "steps_per_epoch": len(subset) // args.batch_size,
                    "epoch_train_s": round(timer.train_s[-1], 2),
                    "epoch_total_s": round(timer.total_s[-1], 2),
                }
            )
    base = rows[0]
    for row in rows:
        row["train_s_ratio"] = round(row["epoch_train_s"] / base["epoch_train_s"], 2)
        row["steps_ratio"] = round(row["steps_per_epoch"] / max(1, base["steps_per_epoch"]), 2)
    return {"data": data.name, "epochs_per_run": args.epochs, "batch_size": args.batch_size, "runs": rows}


def knn_memory(args: argparse.Namespace) -> dict:
    """Peak RSS increase of ``knn_scores`` over a large random bank, for each number of queries."""
    from medssl.common.knn import _MAX_SIMILARITY_ELEMENTS, knn_scores

    rng = np.random.default_rng(0)
    bank = rng.standard_normal((args.knn_bank, FEATURE_DIM), dtype=np.float32)
    labels = rng.integers(0, 2, args.knn_bank)
    rows = []
    for n_queries in args.knn_queries:
        queries = rng.standard_normal((n_queries, FEATURE_DIM), dtype=np.float32)
        exact = _reset_peak() and _status_kb("VmRSS") is not None
        before_mb = _status_kb("VmRSS") * 1024 / 1e6 if exact else _maxrss_mb()
        started = time.perf_counter()
        knn_scores(bank, labels, queries, n_classes=2, k=200)
        seconds = time.perf_counter() - started
        peak_mb = _status_kb("VmHWM") * 1024 / 1e6 if exact else _maxrss_mb()
        rows.append(
            {
                "queries": n_queries,
                "seconds": round(seconds, 2),
                "rss_before_mb": round(before_mb, 1),
                "peak_rss_mb": round(peak_mb, 1),
                "extra_peak_mb": round(peak_mb - before_mb, 1),
                "full_query_by_bank_matrix_mb": round(n_queries * args.knn_bank * 4 / 1e6, 1),
                "peak_was_reset": exact,
            }
        )
        del queries
    return {
        "bank": args.knn_bank,
        "dim": FEATURE_DIM,
        "bank_mb": round(bank.nbytes / 1e6, 1),
        "chunk_rows": max(1, min(1024, _MAX_SIMILARITY_ELEMENTS // args.knn_bank)),
        "full_bank_by_bank_matrix_gb": round(args.knn_bank**2 * 4 / 1e9, 1),
        "runs": rows,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--parts", default=",".join(PARTS), help="Comma-separated subset of rss,scaling,knn.")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rss-steps", type=int, default=5, help="Training steps of the peak-RSS run.")
    parser.add_argument("--epochs", type=int, default=2, help="Epochs per scaling run (the last is timed).")
    parser.add_argument("--fractions", default="0.25,0.5,1.0", help="Training-split fractions to time.")
    parser.add_argument("--knn-bank", type=int, default=100_000, help="Feature bank rows for the kNN part.")
    parser.add_argument("--knn-queries", default="1000,10000", help="Comma-separated query counts.")
    args = parser.parse_args()
    args.parts = [part for part in args.parts.split(",") if part]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown --parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
    args.fractions = sorted(float(f) for f in args.fractions.split(","))
    args.knn_queries = [int(q) for q in args.knn_queries.split(",")]
    data_config(args)  # resolves a missing dataset folder to synthetic once, here
    return args


def main() -> None:
    args = parse_args()
    device = resolve_device(args.device)
    parts = {"rss": pretrain_peak_rss, "scaling": epoch_scaling, "knn": knn_memory}
    result = {"benchmark": "memory_scale", "image_size": args.image_size, "device": device.type}
    for name in args.parts:
        result[parts[name].__name__] = isolated(parts[name], args)
    result["machine"] = machine_info(device)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
