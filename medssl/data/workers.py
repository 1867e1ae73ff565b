"""Per-file work over a dataset: threads, or forked processes for work that holds the GIL.

Decoding PNG or JPEG happens in C with the GIL released, so threads spread it over the cores. pydicom parses
DICOM in Python, which holds the GIL: threads then run one at a time, and processes are what use the cores.
Processes are forked (on Linux, as PyTorch's DataLoader workers are), so they start at once with medssl
already imported; elsewhere, and for a few files, threads do the work.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

PROCESS_MIN_FILES = 256
"""Fewer files than this are done in threads: starting processes would cost more than it saves."""


def usable_cores() -> int:
    """CPU cores this process may run on (respects ``taskset``)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _use_processes(count: int) -> bool:
    return sys.platform.startswith("linux") and usable_cores() > 1 and count >= PROCESS_MIN_FILES


def file_map(
    fn: Callable[[Item], Result], items: Sequence[Item], threads: int, holds_gil: bool = False
) -> Iterator[Result]:
    """``fn`` over ``items``, results in order. ``holds_gil`` work (pydicom) runs in one forked process per
    core; ``fn`` must then be a module-level function (it is pickled by name)."""
    if holds_gil and _use_processes(len(items)):
        workers = usable_cores()
        chunk = max(1, min(64, len(items) // (4 * workers)))
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            yield from pool.map(fn, items, chunksize=chunk)
        return
    with ThreadPoolExecutor(threads) as pool:
        yield from pool.map(fn, items)
