"""One way to write a file so that a crash, a full disk or a kill never leaves a half-written one."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import torch

TEMP_MARK = ".tmp"
TORCH_WRITE_FAILURES = ("PytorchStreamWriter failed", "unexpected pos")
"""How ``torch.save`` words a write that stopped short (full disk, file-size limit): a RuntimeError."""


DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def write_advice(error: OSError) -> str:
    """What to do after a write failed with ``error``: free disk space only where the disk was full (torch's
    short write carries no errno); otherwise the file or folder changed under the run."""
    if error.errno in DISK_FULL or error.errno is None:
        cause = "free disk space"
    else:
        cause = "check that the run folder is still there and that no other process writes into it"
    return f"{cause}, then rerun the same command (`medssl pretrain` with --resume)"


def temporary_name(path: Path) -> Path:
    """``dir/.<name>.tmp<pid><suffix>``: hidden, unique per process, ending in the suffix numpy expects."""
    return path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}{path.suffix}")


def atomic_write(
    path: str | Path,
    write: Callable[[Path], object],
    on_error: Callable[[OSError], Exception] | None = None,
) -> Path:
    """Call ``write(temporary)``, fsync it and rename it over ``path``; the old ``path`` survives any failure.

    ``write`` receives the temporary path (its suffix is ``path``'s, so ``np.save`` keeps the name). An
    ``OSError`` becomes ``on_error(error)`` when given. The temporary file never outlives the call, also on
    Ctrl+C.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        write(tmp)
        with tmp.open("rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        if on_error is None:
            raise
        raise on_error(error) from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def torch_save(obj: object, path: Path) -> None:
    """``torch.save`` whose failed write is an ``OSError`` naming the free space, as every other write's is.

    torch's zip writer loses the errno of a full disk and raises ``RuntimeError: unexpected pos ...``.
    """
    try:
        torch.save(obj, path)
    except RuntimeError as error:
        if not any(words in str(error) for words in TORCH_WRITE_FAILURES):
            raise
        free = shutil.disk_usage(path.parent).free / 2**30
        raise OSError(f"the write stopped short; {free:.2f} GiB free on that disk") from None


def write_text(path: str | Path, text: str, on_error: Callable[[OSError], Exception] | None = None) -> Path:
    """``atomic_write`` of a UTF-8 text."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), on_error)


def write_bytes(
    path: str | Path, data: bytes, on_error: Callable[[OSError], Exception] | None = None
) -> Path:
    """``atomic_write`` of bytes."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data), on_error)


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Delete temporary files that a killed process left in ``folder`` (``.<name>.tmp<pid>...``)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.glob(f".*{TEMP_MARK}*") if p.is_file() and _is_temporary(p.name)]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def _is_temporary(name: str) -> bool:
    """``.best.ckpt.tmp123.ckpt`` (this helper's names) or ``.best.ckpt.tmp123`` (older releases')."""
    _, _, rest = name.rpartition(TEMP_MARK)
    digits = rest.split(".", 1)[0]
    return name.startswith(".") and digits.isdigit()
