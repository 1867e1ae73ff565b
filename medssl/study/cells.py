"""A study as an explicit list of cells and their dependencies, and the status of each cell in a run folder.

A pre-training cell makes one SSL encoder (done when its ``encoder.json`` exists); an evaluation cell is one
row of results.csv (dataset, encoder, protocol, label fraction, seed) and needs its encoder's pre-training
cell. Baseline encoders need no pre-training. Done is read from the results themselves; running and failed
from the per-cell state files of ``medssl.study.state``.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from medssl.config import validate
from medssl.errors import ConfigError
from medssl.models.encoder import ENCODER_META
from medssl.study.config import StudyConfig
from medssl.study.grid import (
    EncoderJob,
    StudyRunner,
    _previous_config,
    baseline_jobs,
    finished_cells,
    fold_numbers,
    ssl_jobs,
)
from medssl.study.state import alive, evaluation_name, pretrain_name, read_state


@dataclass(frozen=True)
class Cell:
    """One cell of a study: ``kind`` is ``pretrain`` or ``evaluate`` (then ``evaluation`` is (protocol,
    label fraction, seed)); ``fold`` is its cross-validation fold (None for a single split); ``needs`` names
    the cells that must be done first."""

    name: str
    kind: str
    dataset: str
    job: EncoderJob
    needs: tuple[str, ...] = ()
    evaluation: tuple[str, float, int] | None = None
    fold: int | None = None


def encoder_jobs(study: StudyConfig, dataset: str) -> list[EncoderJob]:
    """The encoders of one dataset, in the order the sequential grid runs them."""
    return [*ssl_jobs(study, study.datasets[dataset]), *baseline_jobs(study)]


def study_cells(study: StudyConfig) -> list[Cell]:
    """Every cell of ``study``, fold after fold under cross-validation: each SSL encoder's pre-training, then
    its evaluation cells, which need it (a fold's evaluations need that fold's encoder). The names are those
    the sequential grid marks its cells with, so ``medssl status`` reads either run alike."""
    runner = StudyRunner(study, ".", show_progress=False)
    cells = []
    for dataset, data_config in study.datasets.items():
        for fold in fold_numbers(data_config):
            for job in encoder_jobs(study, dataset):
                needs: tuple[str, ...] = ()
                if job.pretrain is not None:
                    pretraining = pretrain_name(dataset, job.encoder_id, fold)
                    cells.append(Cell(pretraining, "pretrain", dataset, job, fold=fold))
                    needs = (pretraining,)
                for evaluation in runner.all_cells(job):
                    name = evaluation_name(dataset, job.encoder_id, *evaluation, fold)
                    cells.append(Cell(name, "evaluate", dataset, job, needs, evaluation, fold))
    return cells


def done_cells(cells: list[Cell], out: str | Path) -> set[str]:
    """Names of the ``cells`` already done in ``out``: encoder.json written, or the results.csv row there."""
    out = Path(out)
    finished = finished_cells(out / "results.csv")
    done = set()
    for cell in cells:
        if cell.kind == "pretrain":  # its name is its run folder: <dataset>[/fold<k>]/pretrain/<encoder>
            finished_cell = (out / cell.name / ENCODER_META).exists()
        else:
            finished_cell = (cell.dataset, cell.job.encoder_id, *cell.evaluation, cell.fold) in finished  # type: ignore[misc]
        if finished_cell:
            done.add(cell.name)
    return done


@dataclass(frozen=True)
class CellStatus:
    cell: Cell
    state: str  # done, running, failed or pending
    detail: str = ""
    log: str | None = None


def cell_statuses(study: StudyConfig, out: str | Path, fresh: bool = False) -> list[CellStatus]:
    """Each cell of ``study`` in ``out``: done, running, failed (with its log) or pending. A cell marked running
    by a process of this host that no longer exists (killed) is failed. ``fresh``: as in a new folder (every
    cell pending), what ``--restart`` would run."""
    cells = study_cells(study)
    done = set() if fresh else done_cells(cells, out)
    statuses = []
    for cell in cells:
        state = {} if cell.name in done or fresh else read_state(out, cell.name)
        kind = "done" if cell.name in done else state.get("state", "pending")
        where = f"{state.get('host')} pid {state.get('pid')}" + (
            f", SLURM job {state['slurm_job']}" if state.get("slurm_job") else ""
        )
        detail = ""
        if kind == "running":
            local = state.get("host") == socket.gethostname() and not state.get("slurm_job")
            if local and not alive(int(state.get("pid") or 0)):
                kind, detail = "failed", f"process {state.get('pid')} died (killed?); rerun to resume it"
            else:
                detail = f"since {state.get('time')} on {where}"
        elif kind == "failed":
            detail = state.get("error") or "failed"
        statuses.append(CellStatus(cell, kind, detail, state.get("log")))
    return statuses


def status_lines(statuses: list[CellStatus], needs: bool = False) -> list[str]:
    """One line per cell (its state, with ``needs`` its dependencies, and any detail and log), then a count."""
    lines = []
    for status in statuses:
        line = f"{status.state:<8} {status.cell.name}"
        if needs and status.cell.needs:
            line += f"  (needs {', '.join(status.cell.needs)})"
        if status.detail:
            line += f"  {status.detail}"
        if status.log:
            line += f"  log: {status.log}"
        lines.append(line)
    counts = {state: sum(s.state == state for s in statuses) for state in ("done", "running", "failed")}
    pending = len(statuses) - sum(counts.values())
    lines.append(
        f"{len(statuses)} cells: {counts['done']} done, {counts['running']} running, {counts['failed']} failed, "
        f"{pending} pending"
    )
    return lines


def run_study_config(out: str | Path) -> StudyConfig:
    """The study of the run in ``out``, from its config.yaml (a ConfigError when there is none)."""
    path = Path(out) / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"{out}: no config.yaml; pass the run directory of `medssl benchmark --out DIR`")
    payload = _previous_config(Path(out))
    if not payload:
        raise ConfigError(
            f"{path}: unreadable (not a YAML mapping of study settings; corrupt or edited?); rerun the "
            "`medssl benchmark` command that made this run, which keeps its results and writes the file again"
        )
    payload = {key: value for key, value in payload.items() if key not in RUN_KEYS}
    return validate(StudyConfig, payload, source=str(Path(out) / "config.yaml"))


RUN_KEYS = ("command", "machine", "started")
"""Keys of a run's config.yaml that record the run, not the study."""
