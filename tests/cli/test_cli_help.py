"""Every command's options: help text with defaults; the README says which take --config/--set."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.core import TyperOption

from medssl.cli import app

README = Path(__file__).resolve().parents[2] / "README.md"


def command_options() -> list[tuple[str, TyperOption]]:
    root = typer.main.get_command(app)
    found = []

    def walk(command: typer.core.TyperCommand, name: str) -> None:
        for sub_name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{name} {sub_name}".strip())
        found.extend((name, p) for p in command.params if isinstance(p, TyperOption) and p.name != "help")

    walk(root, "")
    return found


def test_every_option_has_help_and_says_its_default() -> None:
    for command, option in command_options():
        assert option.help, (command, option.name)
        if option.default is None and not option.required and option.name not in ("config", "set_"):
            assert "(default:" in option.help, (command, option.name, option.help)


def test_readme_says_which_commands_take_config_and_set() -> None:
    with_set = sorted({command for command, option in command_options() if option.name == "set_"})
    assert with_set == ["augment-preview", "benchmark", "data inspect", "evaluate", "pretrain"]
    with_config = sorted({command for command, option in command_options() if option.name == "config"})
    assert with_config == ["augment-preview", "data inspect", "evaluate", "pretrain"]  # benchmark: argument
    text = " ".join(README.read_text().split())
    commands = "`pretrain`, `benchmark`, `evaluate`, `data inspect` and `augment-preview`"
    assert f"{commands} take `--set key=value`" in text
    assert "Every setting can go in a YAML file" not in text
    assert "medssl never downloads data" not in text and "pneumoniamnist" in text
