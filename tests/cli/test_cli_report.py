"""``medssl report``."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from medssl.cli import app


def test_cli_report_command(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["report", str(tmp_path / "nope")])
    assert missing.exit_code != 0 and "no such run directory" in str(missing.exception)
    (tmp_path / "results.csv").write_text("dataset,encoder,protocol\n")
    done = runner.invoke(app, ["report", str(tmp_path)])
    assert done.exit_code == 0, done.output
    assert str(tmp_path / "report.html") in done.output and (tmp_path / "report.html").is_file()
