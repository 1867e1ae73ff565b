"""Run ``medssl`` as a user does: in-process through ``main()`` (fast) or as a subprocess (real signals)."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from medssl.cli import main

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
"""Subprocess environment: one thread, so two runs of the same command compute the same floats."""
WAIT = 540
"""Seconds a subprocess may take: far above what an idle machine needs; pytest-timeout bounds it."""


def run_main(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[int, str]:
    """``medssl ARGS`` through the real entry point; returns (exit code, stderr)."""
    monkeypatch.setattr(sys, "argv", ["medssl", *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main()
    return int(stop.value.code or 0), capsys.readouterr().err


def medssl(*args: str, cwd: Path, timeout: float = WAIT) -> subprocess.CompletedProcess[str]:
    """``python -m medssl.cli ARGS`` in a subprocess (single-threaded, output captured)."""
    command = [sys.executable, "-m", "medssl.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=ENV, timeout=timeout)


def _default_sigint() -> None:
    # A child inherits an ignored SIGINT, and Python then installs no Ctrl+C handler: Lightning ignores SIGINT
    # in this test process after any in-process KeyboardInterrupt, so give the child the default back.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(*args: str, cwd: Path, stderr: Path) -> subprocess.Popen:
    """``python -m medssl.cli ARGS`` started in the background, stderr to a file, with Ctrl+C handled."""
    with stderr.open("w") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "medssl.cli", *args],
            cwd=cwd,
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=sink,
            preexec_fn=_default_sigint,
        )


def assert_one_error_line(code: int, stderr: str, *fragments: str) -> str:
    """Exit code 2 and a single ``error: ...`` line containing every fragment, no traceback."""
    assert code == 2, stderr
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def tiny_pretrain(out: Path, cache: Path, *extra: str, epochs: int = 3) -> list[str]:
    """``pretrain`` arguments for a seconds-long CPU run on 160 synthetic 32-px images (4 steps per epoch)."""
    return [
        "pretrain", "--data", "synthetic", "--image-size", "32", "--epochs", str(epochs),
        "--batch-size", "16", "--knn-k", "10", "--accelerator", "cpu", "--seed", "0",
        "--set", "data.synthetic.n_images=160", "--set", "data.synthetic.size=32",
        "--set", f"data.cache_dir={cache}", "--set", "progress_bar=false", "--set", "max_steps_per_epoch=4",
        "--out", str(out), *extra,
    ]  # fmt: skip


def history(run: Path) -> list[dict[str, str]]:
    path = run / "history.csv"
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def tiny_study(folder: Path, cache: Path, pretrain: dict, k: int) -> Path:
    """``folder/study.yaml``: SimCLR and an untrained ResNet-18 on 160 synthetic 32-px images, kNN only."""
    config = {
        "datasets": {"tiny": {"path": "synthetic", "image_size": 32, "cache_dir": str(cache),
                              "synthetic": {"n_images": 160, "size": 32}}},
        "methods": ["simclr"],
        "pretrain": {"knn_k": 10, "accelerator": "cpu", **pretrain},
        "baselines": ["random:resnet18"],
        "evaluation": {"protocols": ["knn"], "label_fractions": [1.0], "k": k, "n_bootstrap": 100},
    }  # fmt: skip
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def evaluate(out: Path, data: Path | str, *extra: str) -> list[str]:
    """``evaluate`` arguments for a seconds-long kNN run of an untrained ResNet-18 on ``data``."""
    return ["evaluate", "--encoder", "random:resnet18", "--data", str(data), "--image-size", "32",
            "--protocol", "knn", "--k", "3", "--bootstrap", "100", "--device", "cpu", "--out", str(out),
            *extra]  # fmt: skip
