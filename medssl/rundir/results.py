"""``results.csv``: one row per finished evaluation cell; the schema, its typed reader and its writer.

Rows are appended under the exclusive lock of ``results.csv.lock`` (``medssl.rundir.lock``, NFS-safe) in a
single fsynced write, and rewrites take the same lock, so writers in many processes on many hosts never
interleave or lose a row, and a finished cell survives a crash. Every row carries the ``settings_key`` of the settings that made it
(see ``medssl.rundir.settings``); files written before that column existed still load (key ``""``).
Under cross-validation a row also carries its ``fold`` (1..K); it is empty for a single split and in files
written before the column existed.
"""

from __future__ import annotations

import csv
import io
import math
import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medssl.common.metric_names import METRICS
from medssl.rundir.atomic import atomic_write
from medssl.rundir.lock import locked
from medssl.rundir.paths import previous_name

RESULTS = "results.csv"
CI_COLUMNS = ("accuracy_ci_low", "accuracy_ci_high", "auroc_ci_low", "auroc_ci_high")
IDENTITY = ("dataset", "encoder", "protocol", "label_fraction", "seed", "fold")
"""What names a cell: a second row with the same identity is the same cell evaluated again."""
RESULT_COLUMNS = (
    *("dataset", "encoder", "method", "backbone", "init", "protocol", "label_fraction", "seed", "fold"),
    *("n_train", "n_test"),
    *METRICS,
    *CI_COLUMNS,
    *("collapsed", "predictions", "wall_s", "settings_key"),
)
FLOAT_COLUMNS = (*METRICS, *CI_COLUMNS, "wall_s")
POOL_COLUMNS = ("pretrain_fraction", "pretrain_images")
"""Trailing columns of a study with ``pretrain_fractions``: the SSL encoder's pool (share, images). A file
has them only once a row has them, so a study without pools writes exactly ``RESULT_COLUMNS``."""
NOT_APPLICABLE = "not_applicable"
"""Trailing column: why a protocol cannot work on a cell (e.g. a kNN whose k is at least the labelled images),
empty where it can. Such a row has no metrics and no predictions file. Like the pool columns, a file has it
only once a row has it; readers of files without it see every cell as applicable."""
OPTIONAL_COLUMNS = (*POOL_COLUMNS, NOT_APPLICABLE)

LATER_COLUMNS = ("fold", "settings_key")
"""Columns that files from an older medssl lack (empty fold, key ``""``)."""
NEEDED = tuple(name for name in RESULT_COLUMNS if name not in (*LATER_COLUMNS, "wall_s"))
"""The values every row has when medssl writes it: without one the report shows "–" or a wrong mark, so a
row that lacks one is incomplete and a rerun evaluates its cell again."""
NEEDED_NOT_APPLICABLE = tuple(name for name in NEEDED if name not in (*METRICS, *CI_COLUMNS, "predictions"))
"""What a not-applicable row has: it was never scored, so it has no metrics, CIs or predictions file."""


def missing_values(row: Mapping[str, str]) -> list[str]:
    """The needed values that ``row`` (as read from the file) lacks."""
    needed = NEEDED_NOT_APPLICABLE if row.get(NOT_APPLICABLE) else NEEDED
    return [name for name in needed if not row.get(name)]


CellId = tuple[str, str, str, float, int, int | None]


@dataclass(frozen=True)
class Result:
    """One finished cell of results.csv with typed values (missing numbers are NaN)."""

    dataset: str
    encoder: str
    method: str
    backbone: str
    init: str
    protocol: str
    label_fraction: float
    seed: int
    n_train: int
    n_test: int
    metrics: dict[str, float]
    collapsed: bool
    predictions: str
    settings_key: str = ""
    fold: int | None = None
    """The cross-validation fold (1..K); None for a single split."""
    not_applicable: str = ""
    """Why the protocol cannot work on this cell ('' when it can): its metrics are then missing."""

    def metric(self, name: str) -> float:
        return self.metrics.get(name, math.nan)

    @property
    def cell(self) -> CellId:
        return (self.dataset, self.encoder, self.protocol, self.label_fraction, self.seed, self.fold)


def cell_id(row: Mapping[str, Any]) -> CellId:
    """The identity of a row given as a mapping (e.g. a freshly evaluated row)."""
    return (
        str(row["dataset"]),
        str(row["encoder"]),
        str(row["protocol"]),
        float(row["label_fraction"]),
        int(row["seed"]),
        parse_fold(row.get("fold")),
    )


def parse_float(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def parse_int(text: str | None) -> int:
    value = parse_float(text)
    return int(value) if math.isfinite(value) else 0


def parse_fold(value: Any) -> int | None:
    """A fold number, or None for an empty cell (a single split, or a file from before folds)."""
    if value in (None, ""):
        return None
    number = parse_float(str(value))
    return int(number) if math.isfinite(number) else None


def _bool(text: str | None) -> bool:
    return (text or "").strip().lower() in ("1", "true", "yes", "y")


def _typed(row: Mapping[str, str]) -> Result:
    return Result(
        dataset=row["dataset"],
        encoder=row["encoder"],
        method=row.get("method") or row["encoder"].split("-")[0],
        backbone=row.get("backbone") or "",
        init=row.get("init") or "",
        protocol=row["protocol"],
        label_fraction=parse_float(row.get("label_fraction")),
        seed=parse_int(row.get("seed")),
        n_train=parse_int(row.get("n_train")),
        n_test=parse_int(row.get("n_test")),
        metrics={name: parse_float(row.get(name)) for name in FLOAT_COLUMNS},
        collapsed=_bool(row.get("collapsed")),
        predictions=row.get("predictions") or "",
        settings_key=row.get("settings_key") or "",
        fold=parse_fold(row.get("fold")),
        not_applicable=row.get(NOT_APPLICABLE) or "",
    )


def _count(n: int, noun: str, plural: str | None = None) -> str:
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def _lines(numbers: list[int]) -> str:
    """``line 5`` or ``lines 5, 7 and 3 more``."""
    shown = ", ".join(map(str, numbers[:5])) + (f" and {len(numbers) - 5} more" if len(numbers) > 5 else "")
    return f"line{'s' if len(numbers) > 1 else ''} {shown}"


def _cell_text(row: Mapping[str, str]) -> str:
    fold = f" fold {row['fold']}" if row.get("fold") else ""
    fraction = f"{parse_float(row['label_fraction']):g}"
    return f"{row['dataset']}/{row['encoder']} {row['protocol']} f={fraction} seed={row['seed']}{fold}"


def _unreadable(row: Mapping[str | None, Any], width: int) -> str | None:
    """Why a parsed line is not a results row (None when it is one)."""
    fields = width + len(row.get(None) or []) - sum(value is None for value in row.values())
    if fields != width:
        return f"{fields} fields where the header has {width}"
    if not all(row.get(name) for name in ("dataset", "encoder", "protocol")):
        return "no dataset, encoder or protocol"
    if not math.isfinite(parse_float(row.get("label_fraction"))) or not str(row.get("seed")).isdigit():
        return "label_fraction or seed is not a number"
    return None


@dataclass
class ResultsCheck:
    """``results.csv`` as read back: the first row of each cell, and what else the file holds.

    A second row of a cell is dropped when it repeats the first exactly, and set aside (the first row counts)
    when its values differ; a line that is no row is set aside; a row without a needed value is kept but
    incomplete. ``repair_results`` writes the file without what is dropped or set aside."""

    path: Path
    header: list[str] = field(default_factory=list)
    kept: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    """(line number, row): the first row of each cell, in file order."""
    exact: list[tuple[int, int]] = field(default_factory=list)
    """(line, line of the row it repeats)."""
    conflicts: list[tuple[int, int, str]] = field(default_factory=list)
    """(line, line of the first row of its cell, the cell)."""
    unreadable: list[tuple[int, str]] = field(default_factory=list)
    """(line, why it is no row)."""

    @property
    def results(self) -> list[Result]:
        return [_typed(row) for _, row in self.kept]

    @property
    def missing_columns(self) -> list[str]:
        """Needed columns the header lacks (none for an empty file, which has no header yet)."""
        return [name for name in NEEDED if self.header and name not in self.header]

    @property
    def unknown_columns(self) -> list[str]:
        return [name for name in self.header if name not in (*RESULT_COLUMNS, *OPTIONAL_COLUMNS)]

    @property
    def incomplete(self) -> list[tuple[int, dict[str, str]]]:
        """(line, row) of the kept rows without a value the report needs."""
        return [(line, row) for line, row in self.kept if missing_values(row)]

    @property
    def damaged(self) -> bool:
        """Whether ``repair_results`` would change the file."""
        lists = (self.exact, self.conflicts, self.unreadable, self.incomplete, self.unknown_columns)
        return any(lists)

    def problems(self) -> list[str]:
        """One line per kind of damage: what the report makes of it and what a rerun does."""
        name, rerun = self.path.name, "a rerun of `medssl benchmark` or `evaluate` into this folder"
        kept_as = f"(the file as it is stays beside it as {name}.previous-<time>)"
        lines = []
        if self.exact:
            one = len(self.exact) == 1
            lines.append(
                f"{name}: {_lines([line for line, _ in self.exact])} {'repeats' if one else 'repeat'} "
                f"{_lines([first for _, first in self.exact])} exactly; counted once, and {rerun} removes "
                f"{'it' if one else 'them'}"
            )
        for line, first, cell in self.conflicts[:3]:
            lines.append(
                f"{name}: line {line} is a second row of cell {cell} with other values than line {first}; "
                f"the report uses line {first} (the first), and {rerun} moves line {line} out {kept_as}"
            )
        if len(self.conflicts) > 3:
            lines.append(f"{name}: and {_count(len(self.conflicts) - 3, 'more second row')} of a cell")
        if self.unreadable:
            line, why = self.unreadable[0]
            one = len(self.unreadable) == 1
            lines.append(
                f"{name}: {_lines([line for line, _ in self.unreadable])} "
                f"{'is not a results row' if one else 'are not results rows'} (line {line}: {why}); "
                f"ignored, and {rerun} moves {'it' if one else 'them'} out {kept_as}"
            )
        if missing := self.missing_columns:
            lines.append(
                f"{name} has no column {', '.join(missing)}: the report shows – for it; restore the file, or "
                f"{rerun} evaluates the cells again {kept_as}"
            )
        elif incomplete := self.incomplete:
            empty = sorted({n for _, row in incomplete for n in missing_values(row)}, key=NEEDED.index)
            lines.append(
                f"{name}: {_lines([line for line, _ in incomplete])} "
                f"{'lacks' if len(incomplete) == 1 else 'lack'} {', '.join(empty)}: the report shows – for "
                f"it, and {rerun} evaluates {'that cell' if len(incomplete) == 1 else 'those cells'} again "
                f"{kept_as}"
            )
        if unknown := self.unknown_columns:
            lines.append(
                f"{name} has columns medssl does not write ({', '.join(unknown)}): ignored, and {rerun} "
                f"drops them {kept_as}"
            )
        return lines


def _check(path: Path) -> ResultsCheck:
    """Read and check ``path`` (the caller holds its lock, or reads a file nobody writes)."""
    check = ResultsCheck(path)
    if not path.is_file():
        return check
    first: dict[CellId, tuple[int, dict[str, str]]] = {}
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        check.header = list(reader.fieldnames or [])
        for row in reader:
            why = _unreadable(row, len(check.header))
            if why:
                check.unreadable.append((reader.line_num, why))
                continue
            cell = cell_id(row)
            if cell not in first:
                first[cell] = (reader.line_num, row)
                check.kept.append((reader.line_num, row))
            elif row == first[cell][1]:
                check.exact.append((reader.line_num, first[cell][0]))
            else:
                check.conflicts.append((reader.line_num, first[cell][0], _cell_text(row)))
    return check


def check_results(path: str | Path) -> ResultsCheck:
    """``results.csv`` read back and checked (empty when it does not exist)."""
    path = Path(path)
    if not path.is_file():
        return ResultsCheck(path)
    with locked(path, shared=True):
        return _check(path)


def repair_results(path: str | Path) -> ResultsCheck:
    """Write ``path`` again without exact copies, second rows of a cell, lines that are no row and incomplete
    rows (so their cells are evaluated again), first keeping the file as it was beside it, and warn once
    saying what was repaired; returns the check of the (repaired) file."""
    path = Path(path)
    found = check_results(path)
    if not found.damaged:
        return found
    with locked(path):
        found, rows, kept_as = _sound_rows(path, drop_incomplete=True)
        if kept_as is None:  # another process repaired it meanwhile
            return found
        _write_rows(path, rows)
        repaired = _check(path)
    warnings.warn(
        f"{path}: repaired: {_repairs(found)}; the file as it was is kept as {kept_as.name}", stacklevel=2
    )
    return repaired


def _repairs(found: ResultsCheck) -> str:
    """What ``repair_results`` did to the file ``found`` describes, in a few words."""
    unreadable = len(found.unreadable)
    done = [
        (found.exact, f"removed {_count(len(found.exact), 'exact copy', 'exact copies')} of a row"),
        (found.conflicts, f"moved out {_count(len(found.conflicts), 'second row')} of a cell with other "
                          "values (the first row stays)"),
        (unreadable, f"moved out {_count(unreadable, 'line')} that {'is' if unreadable == 1 else 'are'} no row"),
        (found.incomplete, f"moved out {_count(len(found.incomplete), 'incomplete row')}, so their cells "
                           "count as not evaluated"),
        (found.unknown_columns, f"dropped the columns {', '.join(found.unknown_columns)}"),
    ]  # fmt: skip
    return "; ".join(text for present, text in done if present)


def _sound_rows(
    path: Path, drop_incomplete: bool = False
) -> tuple[ResultsCheck, list[dict[str, str]], Path | None]:
    """With the lock held: the check of ``path``, the rows a rewrite keeps (the first row of each cell, only
    the complete ones with ``drop_incomplete``), and where the file as it was is kept when the rewrite leaves
    anything out (None when it leaves nothing out): nothing is lost."""
    found = _check(path)
    dropped = {line for line, _ in found.incomplete} if drop_incomplete else set()
    if not (found.exact or found.conflicts or found.unreadable or found.unknown_columns or dropped):
        return found, [row for _, row in found.kept], None
    original = path.read_bytes()
    kept_as = atomic_write(previous_name(path), lambda tmp: tmp.write_bytes(original))
    return found, [row for line, row in found.kept if line not in dropped], kept_as


def read_result_rows(path: str | Path) -> list[dict[str, str]]:
    """The rows of ``results.csv`` as they are written (column → text), every column kept, the first row of
    each cell only (see ``check_results``); empty when missing.

    For readers of columns that ``Result`` does not type (e.g. the pre-training pool of a scaling study)."""
    return [row for _, row in check_results(path).kept]


def read_results(path: str | Path) -> list[Result]:
    """The rows of ``path``, the first of each cell (empty if it does not exist); a line that is no row (e.g.
    half-written) is ignored. ``check_results`` says what else the file holds."""
    return check_results(path).results


def _cell(value: Any) -> Any:
    if isinstance(value, float):  # numpy's float64 too: written as a plain number, never ``np.float64(...)``
        return "nan" if math.isnan(value) else repr(round(float(value), 6))
    return value


def _columns(header: Iterable[str], rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """``RESULT_COLUMNS``, then the optional columns that the file already has or that a row brings."""
    present = set(header).union(*(row.keys() for row in rows))
    return [*RESULT_COLUMNS, *(column for column in OPTIONAL_COLUMNS if column in present)]


def _csv_text(rows: list[Mapping[str, Any]], columns: list[str], header: bool) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    if header:
        writer.writeheader()
    for row in rows:
        writer.writerow({key: _cell(value) for key, value in row.items()})
    return buffer.getvalue()


def _header(path: Path) -> list[str]:
    with path.open(newline="") as handle:
        return next(csv.reader(handle), [])


def rewrite_results(
    path: str | Path,
    keep: Callable[[Result], bool] = lambda _: True,
    add: Iterable[Mapping[str, Any]] = (),
) -> int:
    """Rewrite ``path`` atomically in the current schema: the rows ``keep`` accepts, then ``add``; returns
    how many rows were dropped. Replaces a cell in one step, and upgrades a file written before
    ``settings_key`` or ``fold`` existed."""
    path = Path(path)
    with locked(path):
        return _rewrite(path, keep, add)


def _rewrite(path: Path, keep: Callable[[Result], bool], add: Iterable[Mapping[str, Any]]) -> int:
    """``rewrite_results`` with the lock already held."""
    _, rows, _ = _sound_rows(path)
    kept: list[Mapping[str, Any]] = [row for row in rows if keep(_typed(row))]
    dropped = len(rows) - len(kept)
    _write_rows(path, [*kept, *add])
    return dropped


def _write_rows(path: Path, rows: list[Mapping[str, Any]]) -> None:
    """Write ``rows`` over ``path`` atomically, in the current schema (lock held by the caller)."""
    columns = _columns(_header(path) if path.is_file() else [], rows)
    atomic_write(path, lambda tmp: tmp.write_text(_csv_text(rows, columns, header=True)))


def update_result_rows(path: str | Path, update: Callable[[dict[str, str]], Mapping[str, Any]]) -> None:
    """Rewrite ``path`` atomically with ``update(row)`` in place of each row, in the same order (for columns
    a row lacks, e.g. the pool of an encoder trained before its study had a ``pretrain_fractions`` axis)."""
    path = Path(path)
    with locked(path):
        _write_rows(path, [update(row) for row in _sound_rows(path)[1]])


def append_results(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Append ``rows`` (extra keys ignored, missing ones left empty), writing the header if the file is new."""
    rows = list(rows)
    path = Path(path)
    with locked(path):
        existing = _header(path) if path.is_file() and path.stat().st_size else []
        columns = _columns(existing, rows)
        if existing and existing != columns:
            _rewrite(
                path, lambda _: True, rows
            )  # an older schema or new pool columns: rewrite so they line up
            return
        with path.open("a", newline="") as handle:
            header = ",".join(columns) + "\n" if os.fstat(handle.fileno()).st_size == 0 else ""
            handle.write(header + _csv_text(rows, columns, header=False))
            handle.flush()
            os.fsync(handle.fileno())
