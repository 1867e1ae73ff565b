"""``medssl status``."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from medssl.cli import app


def test_status_of_a_folder_without_a_run_is_one_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["status", str(tmp_path)])
    assert result.exit_code != 0 and "no config.yaml" in str(result.exception)
