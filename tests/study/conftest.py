"""Fixtures of the study tests."""

from __future__ import annotations

import shutil

import pytest

from medssl.study import preflight


@pytest.fixture
def slurm_login_node(monkeypatch: pytest.MonkeyPatch) -> None:
    """SLURM's commands on PATH, as on a cluster's login node (submitit's local executor stands in for it)."""
    which = shutil.which
    monkeypatch.setattr(
        preflight.shutil,
        "which",
        lambda cmd: f"/usr/bin/{cmd}" if cmd in preflight.SLURM_COMMANDS else which(cmd),
    )
