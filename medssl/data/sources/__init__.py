"""Data source adapters, one small module per folder layout, registered by name.

Each adapter is a ``Source``: ``detect(path)`` says whether a path has its layout and ``load(path)``
returns an ``ImageTable``. ``load_table`` picks the named adapter or the first that detects the path.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from medssl.data.types import ImageTable
from medssl.errors import DataError


@dataclass(frozen=True)
class Source:
    name: str
    detect: Callable[[Path], bool]
    load: Callable[[Path], ImageTable]
    description: str


SOURCES: dict[str, Source] = {}
"""Registered adapters in detection order (most specific first)."""


def register(source: Source) -> Source:
    SOURCES[source.name] = source
    return source


BUILTIN = ("chest_xray", "breakhis", "kather", "medmnist_npz", "csv_manifest", "folder")
"""Adapter modules in detection order; ``folder`` is the catch-all and must stay last."""


def _register_builtin() -> None:
    # Imported for their side effect of registering, in detection order (an import list would be re-sorted).
    for module in BUILTIN:
        importlib.import_module(f"medssl.data.sources.{module}")
    SOURCES["folder"] = SOURCES.pop("folder")  # last even if imported early, e.g. by a test


def layout_names() -> tuple[str, ...]:
    """Every value of ``--layout`` / ``data.layout``: ``auto``, each registered adapter, ``synthetic``."""
    _register_builtin()
    return ("auto", *SOURCES, "synthetic")


def load_table(path: str | Path, layout: str = "auto") -> ImageTable:
    """Load ``path`` with the adapter named ``layout``, or the first one that recognises it."""
    _register_builtin()  # cheap after the first call
    path = Path(path).expanduser()
    if layout != "auto":
        if layout not in SOURCES:
            raise DataError(f"layout '{layout}' is unknown; choose one of: auto, {', '.join(SOURCES)}")
        return SOURCES[layout].load(path)
    for source in SOURCES.values():  # before the existence check: MedMNIST sets can be given by name
        if source.detect(path):
            return source.load(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder; check the --data path")
    raise DataError(
        f"{path}: unknown layout; expected one of {', '.join(SOURCES)} "
        "(see README 'Your own data'), or name it with --layout"
    )
