"""What the pre-training benchmark scripts share: the data they time, the device, synchronised clocks and the
machine description printed with every result."""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import platform
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

from medssl.data.cache import default_cache_dir
from medssl.data.dataset import DataConfig, PreparedData, prepare_data

CHEST_XRAY = Path(__file__).resolve().parents[2] / "shared" / "data" / "chest_xray_pneumonia"


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """``--data``, ``--image-size``, ``--device``, ``--precision``, the synthetic dataset's size, the pixel cache."""
    parser.add_argument(
        "--data",
        default=str(CHEST_XRAY),
        help="A dataset folder (default: the chest X-ray set) or 'synthetic' (generated, for smoke tests).",
    )
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument(
        "--precision",
        choices=("auto", "32-true", "bf16-mixed"),
        default="auto",
        help="Training precision (auto: medssl's default on this machine, bf16 on a GPU or an AMX CPU).",
    )
    parser.add_argument("--synthetic-images", type=int, default=2000, help="Images of --data synthetic.")
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir(), help="medssl's pixel cache.")


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when available, else the CPU; asking for CUDA without one is an error."""
    if name == "cuda" and not torch.cuda.is_available():
        sys.exit("error: --device cuda but torch sees no CUDA device")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def accelerator(device: torch.device) -> str:
    """The Lightning accelerator (``PretrainConfig.accelerator``) of ``device``."""
    return "gpu" if device.type == "cuda" else "cpu"


def data_config(args: argparse.Namespace) -> DataConfig:
    """The medssl data settings of ``--data``; synthetic images are generated at ``--image-size``."""
    if args.data != "synthetic" and not Path(args.data).is_dir():
        print(f"note: {args.data} not found; timing on synthetic data instead", file=sys.stderr)
        args.data = "synthetic"
    if args.data == "synthetic":
        synthetic = {"n_images": args.synthetic_images, "size": args.image_size}
        return DataConfig(
            path="synthetic", image_size=args.image_size, synthetic=synthetic, cache_dir=str(args.cache_dir)
        )
    return DataConfig(path=args.data, image_size=args.image_size, cache_dir=str(args.cache_dir))


def load_data(args: argparse.Namespace) -> PreparedData:
    """Decode (or read from the pixel cache) and split ``--data`` as ``medssl pretrain`` does."""
    return prepare_data(data_config(args))


def quiet() -> None:
    """Silence Lightning's start-up banners and warnings so stdout carries only the JSON result."""
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")


def sync(device: torch.device) -> None:
    """Wait for queued GPU work so that a clock reading covers it (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def clock(device: torch.device) -> float:
    """``time.perf_counter()`` after every queued kernel on ``device`` has finished."""
    sync(device)
    return time.perf_counter()


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else platform.machine()


def _commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def usable_cores() -> int:
    """CPU cores this process may run on (respects ``taskset``; ``os.cpu_count()`` does not)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def machine_info(device: torch.device) -> dict:
    """CPU model, cores, GPU, library versions, load and date: what a results table row needs."""
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cores": usable_cores(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "device": device.type,
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "commit": _commit(),
    }
