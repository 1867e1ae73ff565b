"""Fixtures of the report tests: a real run directory (see runfixture.py) and its report, built once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.report.runfixture import build_run


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("report-run")
    return build_run(base / "run", base / "cache")


@pytest.fixture(scope="session")
def report(run_dir: Path) -> tuple[Path, Path]:
    from medssl.report import write_report

    return write_report(run_dir)
