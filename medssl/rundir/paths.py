"""Where a run may write: checked before anything is written."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from medssl.errors import ConfigError


def check_out(out: str | Path) -> Path:
    """``out`` as a run folder: an existing file (or a file among its parents) is refused."""
    out = Path(out)
    for path in (out, *out.parents):
        if path.exists() and not path.is_dir():
            raise ConfigError(f"--out {out}: {path} is a file, not a folder; pass a folder for the run")
    return out


def check_apart(data: str | Path, out: str | Path) -> None:
    """Refuse an ``out`` inside the dataset folder ``data`` (its files would become classes) and a dataset
    inside ``out``. Names that are not paths (``synthetic``, MedMNIST names) pass."""
    data_path, out_path = Path(data).expanduser(), Path(out).expanduser()
    if not data_path.exists():
        return
    data_root, out_root = data_path.resolve(), out_path.resolve()
    if data_root.is_dir() and (out_root == data_root or data_root in out_root.parents):
        raise ConfigError(
            f"--out {out} is inside --data {data}: the run's files would become part of the dataset; "
            "choose an --out outside the dataset folder"
        )
    if out_root in data_root.parents:
        raise ConfigError(
            f"--data {data} is inside --out {out}: a rerun could overwrite or delete it; "
            "choose an --out that does not contain the dataset"
        )


def move_aside(out: str | Path) -> Path | None:
    """Rename a non-empty run folder ``out`` to ``<out>.previous-<UTC time>`` so a restart loses nothing;
    returns the new name (None when there was nothing to move)."""
    out = Path(out)
    if not out.is_dir() or not any(out.iterdir()):
        return None
    target = previous_name(out)
    out.rename(target)
    return target


def previous_name(path: Path) -> Path:
    """``<path>.previous-<UTC time>``, a name beside ``path`` that nothing has yet: where an old version of a
    run folder or file is kept."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.previous-{stamp}")
    suffix = 1
    while target.exists():
        target, suffix = path.with_name(f"{path.name}.previous-{stamp}-{suffix}"), suffix + 1
    return target
