"""results.csv written by many processes at once: no row interleaved, none lost, also across rewrites."""

from __future__ import annotations

import csv
import multiprocessing
from pathlib import Path

from medssl.rundir.results import RESULT_COLUMNS, append_results, read_results, rewrite_results

WRITERS, ROWS_EACH = 8, 50


def _row(writer: int, index: int) -> dict:
    return {
        "dataset": f"d{writer}", "encoder": "e" * 300, "method": "m", "protocol": "knn",
        "label_fraction": 1.0, "seed": index, "accuracy": index / ROWS_EACH, "predictions": "x" * 2000,
    }  # fmt: skip  # long rows: one write is several pages, so unlocked writers would interleave


def _append(path: str, writer: int, rewrite_every: int) -> None:
    for index in range(ROWS_EACH):
        append_results(path, [_row(writer, index)])
        if rewrite_every and index % rewrite_every == 0:
            rewrite_results(path)  # a rewrite (``evaluate --replace``) renames a new file over the old one


def test_eight_processes_appending_fifty_rows_each_give_exactly_400_well_formed_rows(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_append, args=(str(path), writer, 10 if writer == 0 else 0))
        for writer in range(WRITERS)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    with path.open(newline="") as handle:
        lines = list(csv.reader(handle))
    assert lines[0] == list(RESULT_COLUMNS) and len(lines) == 1 + WRITERS * ROWS_EACH
    assert all(len(line) == len(RESULT_COLUMNS) for line in lines)
    cells = {(r.dataset, r.seed): r for r in read_results(path)}
    assert set(cells) == {(f"d{w}", i) for w in range(WRITERS) for i in range(ROWS_EACH)}
    assert all(
        r.metric("accuracy") == r.seed / ROWS_EACH and len(r.predictions) == 2000 for r in cells.values()
    )


def test_a_reader_where_no_lock_file_can_be_made_reads_unlocked(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    append_results(path, [_row(0, 0)])
    lock = tmp_path / "results.csv.lock"
    lock.unlink()
    lock.mkdir()  # unopenable as a file, as in a read-only folder (chmod does not stop root)
    assert len(read_results(path)) == 1
