"""``medssl augment-preview``: presets, and a data config with --set and options over it."""

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


def test_augment_preview_reads_a_data_config_with_set_and_options_over_it(tmp_path) -> None:
    config = tmp_path / "data.yaml"
    config.write_text(
        f"path: synthetic\nimage_size: 32\ncache_dir: {tmp_path / 'cache'}\nsynthetic: {{n_images: 100}}\n"
    )
    out = tmp_path / "preview.png"
    for extra, size in (
        ([], 32),
        (["--set", "image_size=48"], 48),
        (["--set", "image_size=48", "--image-size", "40"], 40),
    ):
        result = CliRunner().invoke(
            app, ["augment-preview", "--config", str(config), *extra, "--out", str(out)]
        )
        assert result.exit_code == 0, result.output
        with Image.open(out) as png:
            assert png.size == grid_size(size, 1, 4, 6), extra


def test_cli_augment_preview_shows_a_methods_views(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MEDSSL_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "preview.png"
    args = ["augment-preview", "--data", "synthetic", "--image-size", "32", "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--method", "dino"])
    assert result.exit_code == 0, result.output
    assert "dino's views" in result.output
    with Image.open(out) as png:
        assert png.size == grid_size(32, 1, 4, 8)  # 2 global and 6 local crops
    result = CliRunner().invoke(app, [*args, "--method", "nope"])
    assert isinstance(result.exception, ConfigError)
