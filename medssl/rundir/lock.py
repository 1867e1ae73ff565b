"""An exclusive lock beside a shared file, safe across processes and hosts on one file system (NFS too).

POSIX record locks (``fcntl.lockf``) go through the NFS lock manager, where ``flock`` may be local to one
host; the lock is taken on ``<name>.lock`` beside the file, not on the file itself, so a writer that replaces
the file (a rename) cannot leave another writer appending to the old, unlinked copy.

``RunLock`` is the same kind of lock on a whole run folder (``run.lock``): one ``medssl benchmark`` at a time
per ``--out``, which its workers share.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from medssl.errors import ConfigError

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


RUN_LOCK = "run.lock"
"""The lock of a whole run folder: held exclusively by the process that runs a study into it, shared by the
workers and SLURM tasks that run its cells."""


def _ddp_child() -> bool:
    """A DDP rank that Lightning started by running the same command again: its rank 0 holds the lock."""
    return os.environ.get("LOCAL_RANK", "0") != "0"


def _holder() -> str:
    started = dt.datetime.now().isoformat(timespec="seconds")
    return f"PID {os.getpid()} on {socket.gethostname()}, started {started}"


class RunLock:
    """``folder/run.lock``, held with a POSIX record lock (NFS-safe, like ``locked``): the kernel (or the NFS
    lock manager) drops it when its process ends, so a killed run never leaves a folder locked."""

    def __init__(self, folder: Path, handle: IO[str] | None) -> None:
        self.folder, self.handle = folder, handle

    @classmethod
    def take(cls, folder: str | Path, shared: bool = False) -> RunLock:
        """Hold the lock, exclusive unless ``shared``; refuse at once, naming the holder, when another process
        holds it (an exclusive holder blocks everyone; shared holders block an exclusive taker)."""
        folder = Path(folder)
        if _ddp_child():
            return cls(folder, None)
        folder.mkdir(parents=True, exist_ok=True)
        handle = (folder / RUN_LOCK).open("a+")
        try:
            fcntl.lockf(handle, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except OSError:  # EAGAIN or EACCES: held by another process
            handle.seek(0)
            holder = handle.read().strip() or "a process that has not said which"
            handle.close()
            raise ConfigError(
                f"{folder}: another medssl run is writing into this folder ({holder}, or the workers it "
                "started); wait for it to finish or stop it, or use another --out"
            ) from None
        if not shared:
            handle.truncate(0)
            handle.write(_holder())
            handle.flush()
        return cls(folder, handle)

    def share(self) -> None:
        """Let workers join: the exclusive lock becomes a shared one (still refusing another exclusive taker)."""
        if self.handle is not None:
            fcntl.lockf(self.handle, fcntl.LOCK_SH)

    def release(self) -> None:
        if self.handle is not None:
            fcntl.lockf(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None


@contextmanager
def run_lock(folder: str | Path, shared: bool = False) -> Iterator[RunLock]:
    """Hold ``folder``'s run lock for the block (see ``RunLock.take``)."""
    lock = RunLock.take(folder, shared)
    try:
        yield lock
    finally:
        lock.release()
