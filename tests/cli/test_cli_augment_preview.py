"""``medssl augment-preview``."""

from __future__ import annotations

from PIL import Image
from typer.testing import CliRunner

from medssl.cli import app
from medssl.errors import ConfigError
from medssl.train.preview import grid_size


def test_cli_augment_preview_on_synthetic(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MEDSSL_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "preview.png"
    result = CliRunner().invoke(
        app, ["augment-preview", "--data", "synthetic", "--image-size", "32", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "histology" in result.output  # the synthetic data is stained tissue
    with Image.open(out) as png:
        assert png.size == grid_size(32, 1, 4, 6)
    result = CliRunner().invoke(
        app, ["augment-preview", "--data", "synthetic", "--preset", "all", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    with Image.open(out) as png:
        assert png.size == grid_size(64, 3, 4, 6)
    result = CliRunner().invoke(app, ["augment-preview", "--data", "synthetic", "--preset", "mri"])
    assert isinstance(result.exception, ConfigError)
