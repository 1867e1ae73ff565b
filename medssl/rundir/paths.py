"""Where a run may write: checked before anything is written."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from medssl.errors import ConfigError
from medssl.rundir.lock import RUN_LOCK


def check_out(out: str | Path) -> Path:
    """``out`` as a run folder: an existing file (or a file among its parents) is refused."""
    out = Path(out)
    for path in (out, *out.parents):
        if path.exists() and not path.is_dir():
            raise ConfigError(f"--out {out}: {path} is a file, not a folder; pass a folder for the run")
    return out


CHOOSE_ANOTHER = "make it writable (chmod u+w) or choose another folder"


def _inside(path: str | Path, data: str | Path) -> bool:
    """Whether ``path`` is the dataset folder ``data`` or lies inside it (False for names that are not
    folders: ``synthetic``, MedMNIST names, a CSV manifest or an .npz file)."""
    data_root = Path(data).expanduser()
    if not data_root.is_dir():
        return False
    data_root, target = data_root.resolve(), Path(path).expanduser().resolve()
    return target == data_root or data_root in target.parents


def check_apart(data: str | Path, out: str | Path) -> None:
    """Refuse an ``out`` inside the dataset folder ``data`` (its files would become classes) and a dataset
    inside ``out``. Names that are not paths (``synthetic``, MedMNIST names) pass."""
    if _inside(out, data):
        raise ConfigError(
            f"--out {out} is inside --data {data}: the run's files would become part of the dataset; "
            "choose an --out outside the dataset folder"
        )
    data_root, out_root = Path(data).expanduser().resolve(), Path(out).expanduser().resolve()
    if Path(data).expanduser().exists() and out_root in data_root.parents:
        raise ConfigError(
            f"--data {data} is inside --out {out}: a rerun could overwrite or delete it; "
            "choose an --out that does not contain the dataset"
        )


START_OVER = "pass --restart to start over (the old run is kept beside it), or use another --out"


def move_aside(out: str | Path) -> Path | None:
    """Rename a non-empty run folder ``out`` to ``<out>.previous-<UTC time>`` so a restart loses nothing;
    returns the new name (None when there was nothing to move: no folder, or only its run lock)."""
    out = Path(out)
    if not out.is_dir() or all(path.name == RUN_LOCK for path in out.iterdir()):
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


def check_writable(folder: str | Path, label: str | None = None, fix: str = CHOOSE_ANOTHER) -> Path:
    """Refuse a ``folder`` that cannot be made or written (read-only, or not ours) before anything is
    written: one line naming ``label`` (default ``--out <folder>``), the nearest existing folder and ``fix``."""
    folder = Path(folder)
    if problem := writable_problem(folder, label, fix):
        raise ConfigError(problem)
    return folder


def writable_problem(folder: Path, label: str | None = None, fix: str = CHOOSE_ANOTHER) -> str | None:
    """Why ``folder`` (or the parent it would be made in) cannot be written, or None; see ``check_writable``."""
    existing = next((p for p in [folder, *folder.parents] if p.exists()), Path("."))
    if os.access(existing, os.W_OK | os.X_OK):
        return None
    return f"{label or f'--out {folder}'}: {existing} is not writable; {fix}"


PICTURE_SUFFIX = ".png"


def picture_path(out: str | Path, data: str | Path, name: str) -> Path:
    """Where a command that draws a picture of a dataset writes it: ``out`` itself, or ``out/name`` when
    ``out`` is a folder. Refused before anything is read or written when it is not a .png name, cannot be
    written, or lies inside the dataset folder ``data`` (the next run would train on the picture)."""
    out = Path(out)
    path = out / name if out.is_dir() else out
    if path.suffix.lower() != PICTURE_SUFFIX:
        raise ConfigError(f"--out {out}: not a .png file name; pass a .png file or an existing folder")
    if _inside(path, data):
        raise ConfigError(
            f"--out {out}: {path} would be inside the dataset {data}, and the next run would train on it; "
            "choose an --out outside the dataset folder"
        )
    check_writable(path.parent)
    return path
