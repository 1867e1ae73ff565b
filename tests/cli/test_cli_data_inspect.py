"""``medssl data inspect``: the default grid path, group options, --config and --set."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from medssl.cli import app
from medssl.data.inspect import LABEL_WIDTH

from ..data.datagen import make_flawed_chest, make_site_folder


@pytest.fixture
def flawed_chest(tmp_path: Path) -> Path:
    return make_flawed_chest(tmp_path / "chest_xray")


@pytest.fixture
def site_folder(tmp_path: Path) -> Path:
    return make_site_folder(tmp_path / "ds")


def test_inspect_cli_default_grid_path(
    flawed_chest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["data", "inspect", str(flawed_chest), "--image-size", "16"])
    assert result.exit_code == 0, result.output
    assert "layout     chest_xray (detected)" in result.output
    assert (tmp_path / "chest_xray-samples.png").is_file()
    with Image.open(tmp_path / "chest_xray-samples.png") as image:
        assert image.size == (LABEL_WIDTH + 8 * 18, 2 * 18)


def test_cli_inspect_group_options(site_folder: Path, tmp_path: Path) -> None:
    grid = str(tmp_path / "g.png")
    options = ["--group-pattern", r"site\d", "--group-kind", "site", "--folds", "4", "--out", grid]
    result = CliRunner().invoke(app, ["data", "inspect", str(site_folder), *options])
    assert result.exit_code == 0, result.output
    assert "groups     3 sites (12 images have one)" in result.output
    assert "class 'a' is in 3 sites (site1, site2, site3), fewer than 4 folds" in result.output
    assert "finds no group in 1 of 13 image paths" in result.output
    bad = CliRunner().invoke(
        app, ["data", "inspect", str(site_folder), "--group-pattern", "(", "--out", grid]
    )
    assert bad.exit_code != 0 and "not a valid regular expression" in str(bad.exception)


def test_inspect_reads_a_data_config_with_set_and_options_over_it(site_folder: Path, tmp_path: Path) -> None:
    config = tmp_path / "data.yaml"
    config.write_text(f"path: {site_folder}\ngroup_pattern: 'site\\d'\ngroup_kind: site\nfolds: 4\n")
    grid = str(tmp_path / "g.png")
    result = CliRunner().invoke(app, ["data", "inspect", "--config", str(config), "--out", grid])
    assert result.exit_code == 0, result.output
    assert "groups     3 sites (12 images have one)" in result.output
    assert "fewer than 4 folds" in result.output
    args = ["data", "inspect", "--config", str(config), "--set", "group_kind=slide", "--folds", "3"]
    result = CliRunner().invoke(app, [*args, "--out", grid])
    assert result.exit_code == 0, result.output
    assert "groups     3 slides" in result.output and "fewer than" not in result.output
    bad = CliRunner().invoke(app, ["data", "inspect", "--config", str(config), "--set", "colour=red"])
    assert "--set: colour: unknown key" in str(bad.exception)
    missing = CliRunner().invoke(app, ["data", "inspect", "--set", "layout=folder"])
    assert "the dataset: missing" in str(missing.exception)
