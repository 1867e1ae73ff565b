"""A new user sees medssl's own lines only (issue 25, item 9): the first run of each command, as a user runs
it (a fresh process, a fresh pixel cache), prints no warning, banner or tip of the libraries under it."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .cli import ENV, WAIT

FOREIGN = re.compile(
    r"Warning\b|warnings\.warn|site-packages|Traceback|💡|\bTip\b|(GPU|TPU|HPU) available|LOCAL_RANK"
    r"|Trainer|dataloader|lightning|litlogger|litmodels|Matplotlib|^(INFO|DEBUG|WARNING)\b",
    re.IGNORECASE,
)
"""What a library prints: Python warnings, tracebacks, Lightning's banners and tips, logging records."""
ANSI = re.compile(r"\x1b\[[0-9;]*m")
REPO = Path(__file__).resolve().parents[2]


def study(folder: Path, data: Path) -> Path:
    config = {
        "datasets": {"tissue": {"path": str(data), "image_size": 32}},
        "methods": ["simclr"],
        "pretrain": {"epochs": 1, "batch_size": 8, "knn_k": 5, "accelerator": "cpu", "max_steps_per_epoch": 1},
        "baselines": ["random:resnet18"],
        "evaluation": {"protocols": ["knn"], "label_fractions": [1.0], "k": 5, "n_bootstrap": 100},
    }  # fmt: skip
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def commands(work: Path, data: Path) -> list[list[str]]:
    """Every command a new user meets, each on its first run."""
    return [
        ["data", "inspect", str(data), "--out", str(work / "grid.png")],
        ["augment-preview", "--data", str(data), "--out", str(work / "preview.png")],
        ["pretrain", "--data", str(data), "--image-size", "32", "--epochs", "1", "--batch-size", "8",
         "--knn-k", "5", "--set", "max_steps_per_epoch=1", "--out", str(work / "pre")],
        ["evaluate", "--encoder", str(work / "pre"), "--data", str(data), "--protocol", "knn,linear,finetune",
         "--set", "finetune_epochs=1", "--bootstrap", "100", "--out", str(work / "eval")],
        ["benchmark", str(study(work, data)), "--out", str(work / "study")],
        ["report", str(work / "study")],
        ["status", str(work / "study")],
    ]  # fmt: skip


CHILD = """
import json, sys
from medssl.cli import main
for args in json.loads(sys.argv[1]):
    print(f"=== medssl {args[0]}")
    sys.argv = ["medssl", *args]
    try:
        main()
    except SystemExit as stop:
        if stop.code:
            sys.exit(f"medssl {args[0]} exited with {stop.code}")
"""
"""Runs the commands one after the other in one fresh interpreter (one torch import, not seven), each
under a ``=== medssl <command>`` line; unbuffered, so each line follows the command that printed it."""


def foreign_lines(output: str) -> dict[str, list[str]]:
    """Lines a library printed, by the command that printed them."""
    found: dict[str, list[str]] = {}
    command = ""
    for line in ANSI.sub("", output).splitlines():
        if line.startswith("=== medssl "):
            command = line.removeprefix("=== medssl ")
        elif FOREIGN.search(line) and not line.startswith(("warning: ", "error: ")):  # medssl's own
            found.setdefault(command, []).append(line)
    return found


@pytest.mark.slow
@pytest.mark.timeout(2 * WAIT + 60)
def test_every_command_prints_only_medssl_lines(tmp_path: Path, tissue: Path) -> None:
    env = {**ENV, "MEDSSL_CACHE": str(tmp_path / "fresh-cache"), "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    child = [sys.executable, "-c", CHILD, json.dumps(commands(tmp_path, tissue))]
    done = subprocess.run(
        child, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=2 * WAIT
    )
    assert done.returncode == 0, done.stdout
    assert foreign_lines(done.stdout) == {}, done.stdout
    assert "\x1b[" not in done.stdout  # no colour codes in a pipe or a log file


HOOKS = """
import os, setuptools.build_meta as backend
os.mkdir("wheel")
backend.prepare_metadata_for_build_editable("wheel")
backend.build_editable("wheel")
"""
"""What pip runs in its build environment for ``pip install -e .``: the PEP 517 hooks of setuptools."""


def install_environment(venv: Path) -> dict[str, str]:
    """The variables that ``make install`` sets for ``pip install -e``, read from its dry run."""
    dry = subprocess.run(["make", "-n", "install", f"VENV={venv}"], capture_output=True, text=True, cwd=REPO)
    (line,) = [line for line in dry.stdout.splitlines() if "pip install" in line and " -e " in line]
    words = shlex.split(line)
    return dict(word.split("=", 1) for word in words[: next(i for i, w in enumerate(words) if "=" not in w)])


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_installing_medssl_prints_no_setuptools_notices(tmp_path: Path) -> None:
    """``make demo`` on a new machine: building medssl's editable wheel says nothing (it said the licence
    table was deprecated, three times, and warned about editable installs)."""
    setuptools = pytest.importorskip("setuptools")
    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip("pip builds with setuptools>=77 (pyproject.toml); this environment has an older one")
    project = tmp_path / "project"
    shutil.copytree(REPO / "medssl", project / "medssl", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, project / name)
    env = {**os.environ, **install_environment(tmp_path / "venv")}
    built = subprocess.run(
        [sys.executable, "-c", HOOKS], capture_output=True, text=True, cwd=project, env=env
    )
    assert built.returncode == 0, built.stderr
    notices = re.findall(r"^.*(?:Warning|InformationOnly): .*$", built.stderr, re.MULTILINE)
    assert notices == [], built.stderr
