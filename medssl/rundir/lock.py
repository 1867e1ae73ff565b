"""An exclusive lock beside a shared file, safe across processes and hosts on one file system (NFS too).

POSIX record locks (``fcntl.lockf``) go through the NFS lock manager, where ``flock`` may be local to one
host; the lock is taken on ``<name>.lock`` beside the file, not on the file itself, so a writer that replaces
the file (a rename) cannot leave another writer appending to the old, unlinked copy.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_SUFFIX = ".lock"


def lock_path(path: str | Path) -> Path:
    """``dir/<name>.lock``: the lock file that guards ``path``."""
    path = Path(path)
    return path.with_name(path.name + LOCK_SUFFIX)


@contextmanager
def locked(path: str | Path, shared: bool = False) -> Iterator[None]:
    """Hold the lock of ``path`` for the block: exclusive for writers, ``shared`` for readers (a reader of a
    read-only folder, where no lock file can be made, reads unlocked: nobody can be writing there)."""
    lock = lock_path(path)
    try:
        if not shared:
            lock.parent.mkdir(parents=True, exist_ok=True)
        handle = lock.open("a+")  # read+write: lockf needs write access for an exclusive lock
    except OSError:
        if not shared:
            raise
        yield
        return
    with handle:
        fcntl.lockf(handle, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.lockf(handle, fcntl.LOCK_UN)
