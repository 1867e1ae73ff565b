"""``medssl pretrain`` options: required data, help defaults, devices."""

from __future__ import annotations

from pathlib import Path

from medssl.train.config import PretrainConfig

from ..reliability.cli import assert_one_error_line, run_main
from .test_cli_help import command_options


def test_pretrain_without_data_is_an_error(tmp_path: Path, capsys, monkeypatch) -> None:
    code, err = run_main(capsys, monkeypatch, "pretrain", "--epochs", "1", "--out", str(tmp_path / "r"))
    assert_one_error_line(code, err, "--data: missing", "--data synthetic")
    assert not (tmp_path / "r").exists()


def test_unknown_accelerators_are_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    out = str(tmp_path / "r")
    code, err = run_main(
        capsys, monkeypatch, "pretrain", "--data", "synthetic", "--accelerator", "tpu", "--out", out
    )
    assert_one_error_line(code, err, "accelerator")


def test_pretrain_help_shows_the_config_defaults() -> None:
    helps = {option.name: option.help for command, option in command_options() if command == "pretrain"}
    for name in ("epochs", "seed", "image_size", "devices", "knn_k"):
        default = PretrainConfig().model_dump()[name] if name != "image_size" else 64
        assert f"(default: {default})" in helps[name], (name, helps[name])
