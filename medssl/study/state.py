"""The state of each running or failed cell of a study: one small file per cell under ``RUN_DIR/_state``,
written atomically, so parallel workers on many hosts never share a file. A finished cell's file is removed:
what is done is read from the results themselves (encoder.json, results.csv).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from medssl.rundir.atomic import write_text

STATE_DIR = "_state"


def cell_folder(dataset: str, fold: int | None = None) -> str:
    """Where a cell's name starts: ``<dataset>``, or ``<dataset>/fold<k>`` in fold k (as its run folders)."""
    return f"{dataset}/fold{fold}" if fold else dataset


def pretrain_name(dataset: str, encoder_id: str, fold: int | None = None) -> str:
    return f"{cell_folder(dataset, fold)}/pretrain/{encoder_id}"


def evaluation_name(
    dataset: str, encoder_id: str, protocol: str, fraction: float, seed: int, fold: int | None = None
) -> str:
    return f"{cell_folder(dataset, fold)}/{encoder_id}/{protocol}/f{fraction:g}/s{seed}"


def state_path(out: str | Path, name: str) -> Path:
    return Path(out) / STATE_DIR / (name.replace("/", "__") + ".json")


def _write_state(out: Path, name: str, state: str, **extra: object) -> None:
    payload = {
        "cell": name, "state": state, "host": socket.gethostname(), "pid": os.getpid(),
        "slurm_job": os.environ.get("SLURM_JOB_ID"), "time": dt.datetime.now().isoformat(timespec="seconds"),
        **extra,
    }  # fmt: skip
    write_text(state_path(out, name), json.dumps(payload, indent=1))


@contextmanager
def cell_state(out: str | Path, name: str, log: str | None = None) -> Iterator[None]:
    """Mark cell ``name`` running for the block; failed (with the error and ``log``) when it raises, and
    nothing once it is done (done is read from the results)."""
    out = Path(out)
    _write_state(out, name, "running", log=log)
    try:
        yield
    except BaseException as error:
        _write_state(out, name, "failed", log=log, error=f"{type(error).__name__}: {error}"[:500])
        raise
    state_path(out, name).unlink(missing_ok=True)


def read_state(out: str | Path, name: str) -> dict:
    try:
        state = json.loads(state_path(out, name).read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def alive(pid: int) -> bool:
    """Whether process ``pid`` of this host exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
