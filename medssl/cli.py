"""The ``medssl`` command line: a thin typer layer over the library API."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from medssl.errors import MedsslError

app = typer.Typer(
    help="In-domain self-supervised pre-training vs ImageNet transfer for small medical image datasets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Look at a dataset before training on it.", no_args_is_help=True)
app.add_typer(data_app, name="data")

DataPath = Annotated[str, typer.Argument(help="Dataset folder, .npz, .csv manifest, MedMNIST name or 'synthetic'.")]
LayoutOpt = Annotated[str, typer.Option("--layout", help="Folder layout; 'auto' detects it.")]
SkipBad = Annotated[bool, typer.Option("--skip-bad-images", help="Log and skip unreadable images.")]


@data_app.command("inspect")
def data_inspect(
    path: DataPath,
    layout: LayoutOpt = "auto",
    image_size: Annotated[int, typer.Option(help="Working resolution for the sample grid.")] = 64,
    out: Annotated[Path | None, typer.Option(help="Where to write the sample grid PNG.")] = None,
) -> None:
    """Detected layout, classes, counts per split, image sizes, patients, problems, and a sample grid."""
    from medssl.data.inspect import inspect_dataset

    report = inspect_dataset(path, layout=layout, image_size=image_size, grid_path=out)
    typer.echo(report.to_text())


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback."""
    try:
        app()
    except MedsslError as error:
        typer.secho(f"error: {error}", fg="red", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True)
        sys.exit(130)
