"""Run a study grid: every finished cell is recorded at once, and a rerun skips what is finished.

Cells are pre-training runs (done when ``encoder.json`` exists; an interrupted one resumes from its last
checkpoint) and evaluation cells (done when ``results.csv`` has their row: dataset, encoder, protocol, label
fraction, seed, fold). So a killed grid continues where it stopped, with no cell run twice.

A dataset with ``folds: K`` runs every cell once per fold: fold k pre-trains on its own training images
only (``<out>/<dataset>/fold<k>/pretrain/<encoder>``), and its baselines and probes use the same fold.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import yaml
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from medssl.common.lightning import quiet_lightning_logs
from medssl.data.dataset import DataConfig, PreparedData, prepare_folds, save_prepared
from medssl.errors import ConfigError, Interrupted
from medssl.evaluate.api import evaluate_encoder
from medssl.models.encoder import ENCODER_META, Encoder, encoder_from_spec, load_encoder
from medssl.models.specs import path_safe, spec_id
from medssl.rundir.atomic import write_text
from medssl.rundir.data_record import DataChanged
from medssl.rundir.encoder_meta import recorded_meta, recorded_settings
from medssl.rundir.lock import RunLock, run_lock
from medssl.rundir.paths import START_OVER, check_apart, check_out, move_aside
from medssl.rundir.results import (
    POOL_COLUMNS,
    CellId,
    parse_fold,
    read_result_rows,
    read_results,
    repair_results,
    update_result_rows,
)
from medssl.rundir.settings import (
    cell_settings,
    changed_common,
    data_settings,
    evaluation_settings,
    pretrain_settings,
    read_registry,
    record_settings,
    refuse_changed,
    settings_key,
)
from medssl.rundir.split import SPLIT
from medssl.study.config import CELL_AXES, StudyConfig
from medssl.study.preflight import preflight
from medssl.study.state import cell_state, evaluation_name, pretrain_name
from medssl.train.api import pretrain
from medssl.train.config import PretrainConfig


@dataclass(frozen=True)
class EncoderJob:
    """One encoder of a dataset: an SSL run to pre-train, or a baseline spec; and how to evaluate it."""

    encoder_id: str
    spec: str | None = None
    pretrain: PretrainConfig | None = None
    frozen: bool = True
    finetune: bool = False


def fold_numbers(data_config: DataConfig) -> list[int | None]:
    """1..K under ``folds: K``; ``[None]`` (one split) otherwise."""
    return list(range(1, data_config.folds + 1)) if data_config.folds else [None]


def scaling(study: StudyConfig) -> bool:
    """Whether the study varies the pre-training pool (then SSL ids end in ``-p<fraction>``)."""
    return study.pretrain_fractions != [1.0]


def encoder_suffix(pool: float, seed: int) -> str:
    """``-p<pool>`` and ``-s<seed>`` only where they differ from the defaults (the whole pool, seed 0).

    So an encoder keeps its name when a study grows more pools or seeds: a rerun with ``pretrain_seeds: 3``
    or a ``pretrain_fractions`` axis reuses every finished run instead of training it again under a new one.
    """
    return (f"-p{pool:g}" if pool != 1.0 else "") + (f"-s{seed}" if seed else "")


def ssl_jobs(study: StudyConfig, data_config: DataConfig) -> list[EncoderJob]:
    finetune = "ssl" in study.evaluation.finetune
    jobs = []
    for ssl in study.ssl_cells():
        for pool in study.pretrain_fractions:
            for seed in range(study.pretrain_seeds):
                cell = {"method": ssl.method, "backbone": ssl.backbone, "init": ssl.init, "seed": seed}
                config = study.pretrain.model_copy(
                    update={
                        **ssl.recipe(),
                        **cell,
                        "pool_fraction": pool,
                        "data": data_config,
                        "progress_bar": False,
                    }
                )
                name = path_safe(ssl.backbone)  # timm:<name> -> timm-<name>
                encoder_id = f"{ssl.method}-{name}-{ssl.init}{encoder_suffix(pool, seed)}"
                jobs.append(EncoderJob(encoder_id, pretrain=config, finetune=finetune))
    return jobs


def baseline_jobs(study: StudyConfig) -> list[EncoderJob]:
    specs = list(dict.fromkeys([*study.baselines, *(s for s in study.evaluation.finetune if s != "ssl")]))
    return [
        EncoderJob(
            spec_id(spec),
            spec=spec,
            frozen=spec in study.baselines,
            finetune=spec in study.evaluation.finetune,
        )
        for spec in specs
    ]


def finished_cells(results: Path) -> set[CellId]:
    """(dataset, encoder, protocol, label_fraction, seed, fold) of every row already in ``results.csv``."""
    return {result.cell for result in read_results(results)}


ENUMERATING = ("protocols", "finetune", "label_fractions", "seeds")
"""Evaluation settings that say which cells exist, not how a cell is made: changing them adds cells."""


def keyed_study(payload: dict) -> dict:
    """The settings of a study dump (config.yaml) that change a result: per dataset, pre-training and
    evaluation. The lists of methods, backbones, baselines, fractions and seeds only add or drop cells."""
    datasets = payload.get("datasets") or {}
    return {
        "datasets": {name: data_settings(d) for name, d in datasets.items() if isinstance(d, dict)},
        "pretrain": pretrain_settings({**_template(payload.get("pretrain") or {}), "data": {}}),
        "evaluation": {k: v for k, v in (payload.get("evaluation") or {}).items() if k not in ENUMERATING},
    }


def _template(pretrain: dict) -> dict:
    """A study's pre-training template without the settings that vary per cell."""
    return {key: value for key, value in pretrain.items() if key not in CELL_AXES}


def study_changes(old: dict, new: dict) -> list[str]:
    """``key: old -> new`` for the keyed settings both studies have (new datasets and keys are not changes)."""
    return changed_common(keyed_study(old), keyed_study(new))


def _machine() -> str:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, {gpu}, torch {torch.__version__}"


def _previous_config(out: Path) -> dict:
    """The ``config.yaml`` of an earlier run into ``out`` (empty when there is none or it is unreadable)."""
    try:
        loaded = yaml.safe_load((out / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def command_line() -> str:
    """This process's command as a shell line to paste: each argument quoted where it needs it (an --out
    with spaces), and ``medssl`` for ``python -m medssl.cli``."""
    program = Path(sys.argv[0]).name
    return shlex.join(["medssl" if program in ("cli.py", "__main__.py") else program, *sys.argv[1:]])


def _write_config(study: StudyConfig, out: Path, command: str | None) -> None:
    path = out / "config.yaml"
    previous = _previous_config(out)
    payload = study.model_dump(mode="json")
    payload["pretrain"] = _template(payload["pretrain"])
    payload["command"] = command or command_line()
    payload["machine"] = previous.get("machine", _machine())
    payload["started"] = previous.get("started", dt.datetime.now().isoformat(timespec="seconds"))
    write_text(path, yaml.safe_dump(payload, sort_keys=False))


def pretrain_units(config: PretrainConfig) -> int:
    """A pre-training run's share of the progress bar: its optimiser steps under a step budget (its epochs
    then depend on the pool's size), else its epochs."""
    return config.steps or config.epochs


class _PretrainProgress(pl.Callback):
    """Advances the study's bar by one per epoch, or per optimiser step under a step budget."""

    def __init__(self, advance, per_step: bool) -> None:
        self.advance, self.per_step = advance, per_step

    def on_train_batch_end(self, trainer: pl.Trainer, *_) -> None:
        if self.per_step:
            self.advance(1)

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if not self.per_step:
            self.advance(1)


class StudyRunner:
    """Runs one study into ``out``; ``run()`` is idempotent and resumable."""

    def __init__(
        self,
        study: StudyConfig,
        out: str | Path,
        command: str | None = None,
        show_progress: bool = True,
        restart: bool = False,
        say: Callable[[str], object] | None = None,
    ):
        self.study = study
        self.out = Path(out)
        self.command = command
        self.show_progress = show_progress
        self.restart = restart
        """Start over: an earlier run in ``out`` is moved aside (once every check has passed), not compared."""
        self.say = say or (lambda line: None)
        self.results = self.out / "results.csv"
        self.log: str | None = None  # where this process's output goes, for ``medssl status`` (launchers)
        self.unrecorded: dict[str, dict] = {}
        """Settings of finished cells that settings.json lacks (found by ``check``, recorded by ``start``)."""

    def all_cells(self, job: EncoderJob) -> list[tuple[str, float, int]]:
        """(protocol, fraction, seed) of every evaluation cell of ``job``."""
        settings = self.study.evaluation
        protocols = [*(settings.protocols if job.frozen else []), *(["finetune"] if job.finetune else [])]
        return [
            (protocol, fraction, seed)
            for protocol in protocols
            for fraction in settings.label_fractions
            for seed in range(settings.seeds)
        ]

    def eval_cells(
        self, dataset: str, job: EncoderJob, fold: int | None = None
    ) -> list[tuple[str, float, int]]:
        """(protocol, fraction, seed) cells of ``job`` (in ``fold``) not yet in results.csv."""
        done = finished_cells(self.results)
        return [cell for cell in self.all_cells(job) if (dataset, job.encoder_id, *cell, fold) not in done]

    def recorded_encoder(self, dataset: str, job: EncoderJob, fold: int | None = None) -> dict | None:
        """The settings in ``encoder.json`` of a finished SSL job (None when it is not finished)."""
        return recorded_settings(self.pretrain_dir(dataset, job, fold))

    def changed_settings(self) -> list[str]:
        """How the settings of this study differ from those of the results already in ``out``: from
        config.yaml, then cell by cell from encoder.json and results.csv (empty when nothing changed)."""
        previous = _previous_config(self.out)
        if previous and (changes := study_changes(previous, self.study.model_dump(mode="json"))):
            return changes
        registry, done = read_registry(self.out), {r.cell: r for r in read_results(self.results)}
        for name, data_config in self.study.datasets.items():
            keyed_data = data_settings(data_config.model_dump(mode="json"))
            for fold in fold_numbers(data_config):
                for job in [*ssl_jobs(self.study, data_config), *baseline_jobs(self.study)]:
                    changes = self.changed_cells(name, job, fold, keyed_data, registry, done)
                    if changes:
                        return changes
        return []

    def changed_cells(
        self, name: str, job: EncoderJob, fold: int | None, keyed_data: dict, registry: dict, done: dict
    ) -> list[str]:
        """How the finished encoder and cells of ``job`` in ``fold`` differ from this study's settings."""
        encoder = {"spec": job.spec}
        if job.pretrain is not None:
            recorded = self.recorded_encoder(name, job, fold)
            if recorded is None:
                return []
            expected = pretrain_settings(job.pretrain.model_dump(mode="json"))
            old = {k: v for k, v in recorded.items() if k != "data_fingerprint"}
            if changes := changed_common(old, expected):
                return [f"{name}/{job.encoder_id}: {c}" for c in changes]
            encoder = recorded
        evaluation = self.study.evaluation.model_dump()
        for protocol, fraction, seed in self.all_cells(job):
            row = done.get((name, job.encoder_id, protocol, fraction, seed, fold))
            new = cell_settings(keyed_data, encoder, evaluation_settings(protocol, evaluation))
            if row is not None and row.settings_key not in registry and row.settings_key == settings_key(new):
                self.unrecorded[row.settings_key] = new  # settings.json lost it: started() records it again
            if row is None or row.settings_key in ("", settings_key(new)):
                continue
            old = registry.get(row.settings_key)
            changes = changed_common(old, new) if old else [f"results.csv key {row.settings_key}"]
            if changes:
                return changes
        return []

    def cell_ids(self) -> set[CellId]:
        """(dataset, encoder, protocol, label fraction, seed, fold) of every evaluation cell of this study."""
        return {
            (name, job.encoder_id, *cell, fold)
            for name, data_config in self.study.datasets.items()
            for fold in fold_numbers(data_config)
            for job in [*ssl_jobs(self.study, data_config), *baseline_jobs(self.study)]
            for cell in self.all_cells(job)
        }

    def dropped(self) -> list[str]:
        """What results.csv holds that this study no longer has (a rerun that narrows the study), by what was
        dropped: a dataset, an encoder, a protocol, a label fraction or a seed."""
        cells, settings = self.cell_ids(), self.study.evaluation
        encoders = {(dataset, encoder) for dataset, encoder, *_ in cells}
        dropped = set()
        for row in read_results(self.results):
            if row.cell in cells:
                continue
            if row.dataset not in self.study.datasets:
                dropped.add(f"dataset {row.dataset}")
            elif (row.dataset, row.encoder) not in encoders:
                dropped.add(f"encoder {row.encoder}")
            elif row.protocol not in [*settings.protocols, "finetune"]:
                dropped.add(f"protocol {row.protocol}")
            elif row.label_fraction not in settings.label_fractions:
                dropped.add(f"label fraction {row.label_fraction:g}")
            else:
                dropped.add(f"{row.encoder} {row.protocol} at {row.label_fraction:g}, seed {row.seed}")
        return sorted(dropped)

    def pending_units(self) -> int:
        """Epochs left to pre-train plus evaluation cells left: the progress bar's total."""
        units = 0
        for name, data_config in self.study.datasets.items():
            for fold in fold_numbers(data_config):
                for job in [*ssl_jobs(self.study, data_config), *baseline_jobs(self.study)]:
                    if job.pretrain and not (self.pretrain_dir(name, job, fold) / ENCODER_META).exists():
                        units += pretrain_units(job.pretrain)
                    units += len(self.eval_cells(name, job, fold))
        return units

    def pretrain_dir(self, dataset: str, job: EncoderJob, fold: int | None = None) -> Path:
        """``<out>/<dataset>/pretrain/<encoder>``; ``<out>/<dataset>/fold<k>/pretrain/<encoder>`` in fold k."""
        root = self.out / dataset
        return (root / f"fold{fold}" if fold else root) / "pretrain" / job.encoder_id

    def encoder(self, job: EncoderJob, data: PreparedData, advance) -> Encoder:
        """The baseline, or the SSL encoder pre-trained (now, or resumed) on ``data``'s training images."""
        if job.spec:
            return encoder_from_spec(job.spec)
        run_dir = self.pretrain_dir(data.name, job, data.fold)
        if not (run_dir / ENCODER_META).exists():
            with cell_state(self.out, pretrain_name(data.name, job.encoder_id, data.fold), self.log):
                pretrain(
                    job.pretrain,
                    run_dir,
                    data=data,
                    resume=True,
                    callbacks=[_PretrainProgress(advance, bool(job.pretrain.steps))],
                )
        encoder = load_encoder(run_dir)
        encoder.meta["encoder_id"] = job.encoder_id
        if scaling(self.study):  # results rows then say which pool the encoder learnt from
            encoder.meta["pretrain_fraction"] = encoder.meta["pool_fraction"]
            encoder.meta["pretrain_images"] = encoder.meta["pool_images"]
        return encoder

    def evaluate(
        self, data: PreparedData, job: EncoderJob, encoder: Encoder, keyed_data: dict, advance
    ) -> None:
        settings = self.study.evaluation
        for cell in self.eval_cells(data.name, job, data.fold):
            name = evaluation_name(data.name, job.encoder_id, *cell, data.fold)
            with cell_state(self.out, name, self.log):
                evaluate_encoder(encoder, data, self.out, settings, [cell], data_settings=keyed_data)
            advance(1)

    def run_dataset(self, name: str, folds: list[PreparedData], advance) -> None:
        """Every cell of one dataset, fold after fold under cross-validation (a fold's encoders are
        pre-trained on that fold's training images only)."""
        data_config = self.study.datasets[name].model_copy(update={"name": name})
        keyed_data = data_settings(data_config.model_dump(mode="json"))
        for data in folds:
            for job in [*ssl_jobs(self.study, data_config), *baseline_jobs(self.study)]:
                trained = (
                    not job.pretrain or (self.pretrain_dir(name, job, data.fold) / ENCODER_META).exists()
                )
                if trained and not self.eval_cells(name, job, data.fold):
                    continue  # a finished cell: nothing to build or load
                encoder = self.encoder(job, data, advance)
                self.evaluate(data, job, encoder, keyed_data, advance)

    def preview(self, data: PreparedData) -> None:
        path = self.out / data.name / "augment_preview.png"
        if path.exists():
            return
        from medssl.common.augment import detect_preset
        from medssl.train.preview import augment_preview

        preset = self.study.pretrain.augment
        preset = detect_preset(data.table.modality, data.channels) if preset == "auto" else preset
        augment_preview(data.images[data.split["train"][:64]], [preset], path)

    def check(self) -> None:
        """Before anything is written: ``out`` is a folder apart from every dataset and, unless restarting, the
        results already in it were made with this study's settings and are all cells of it."""
        check_out(self.out)
        for data_config in self.study.datasets.values():
            check_apart(data_config.path, self.out)
        if self.restart:
            return
        changes = self.changed_settings()
        if changes:
            raise refuse_changed(
                f"{self.out}: the study",
                changes,
                "Pass --restart to start over (the old run is kept beside it)",
            )
        if dropped := self.dropped():
            shown = ", ".join(dropped[:5]) + (f" and {len(dropped) - 5} more" if len(dropped) > 5 else "")
            raise ConfigError(
                f"{self.out}: results.csv holds results of {shown}, which this study no longer has, so its "
                "config.yaml and report would not describe them; nothing was changed. Keep them in the study "
                f"(their finished cells are skipped), or {START_OVER}"
            )

    def prepare_datasets(self, only_split: bool = False) -> dict[str, list[PreparedData]]:
        """Each dataset decoded (into the pixel cache) and split, writing nothing into ``out``: a split saved
        there is reused only while the data is the data it was made from. ``only_split``: just the datasets
        that already have a split in ``out`` (a dry run's check)."""
        prepared = {}
        for name, data_config in self.study.datasets.items():
            run_dir = None if self.restart else self.out / name
            if only_split and (run_dir is None or not (run_dir / SPLIT).exists()):
                continue
            try:
                config = data_config.model_copy(update={"name": name})
                prepared[name] = prepare_folds(config, run_dir=run_dir, write=False)
            except DataChanged as error:
                raise error.advise(START_OVER) from None
        return prepared

    @contextmanager
    def started(self) -> Iterator[tuple[RunLock, dict[str, list[PreparedData]]]]:
        """What every launcher does before the first cell, yielding ``out``'s run lock and each dataset's folds:
        the checks, each dataset decoded and split (nothing is written until all of them pass), then, holding
        the run lock for the block, config.yaml, the splits, previews and the pool columns of rows made before
        the study had a pool axis. Another process running into ``out`` is refused, naming its PID."""
        self.check()
        preflight(self.study, self.out)
        datasets = self.prepare_datasets()
        with ExitStack() as held:
            lock = held.enter_context(run_lock(self.out))
            if self.restart and (moved := move_aside(self.out)) is not None:
                lock = held.enter_context(run_lock(self.out))  # the new folder's; the old one's is kept
                self.say(f"the earlier run in {self.out} was moved to {moved}")
            self.check()  # again, holding the lock: a run that ended meanwhile may have changed ``out``
            _write_config(self.study, self.out, self.command)
            repair_results(self.results)  # duplicate, damaged or incomplete rows: kept aside, cells run again
            for settings in self.unrecorded.values():
                record_settings(self.out, settings)
            for name, folds in datasets.items():
                save_prepared(folds, self.out / name)
                self.preview(folds[0])
            self.fill_pools()
            yield lock, datasets

    def fill_pools(self) -> None:
        """Give the rows of an SSL encoder trained before this study had ``pretrain_fractions`` (so on the
        whole pool, under the same name) the pool its ``encoder.json`` records, so the curves include it."""
        results = self.out / "results.csv"
        if not scaling(self.study) or not results.is_file():
            return
        pools = self.recorded_pools()

        def pool(row: dict[str, str]) -> tuple | None:
            key = (row["dataset"], row["encoder"], parse_fold(row.get("fold")))
            return None if row.get(POOL_COLUMNS[0]) else pools.get(key)

        def filled(row: dict[str, str]) -> dict:
            found = pool(row)
            return {**row, **dict(zip(POOL_COLUMNS, found, strict=True))} if found else row

        if any(pool(row) for row in read_result_rows(results)):
            update_result_rows(results, filled)

    def recorded_pools(self) -> dict[tuple, tuple]:
        """(dataset, encoder id, fold) → (pool fraction, pool images) of every finished SSL encoder."""
        pools = {}
        for name, data_config in self.study.datasets.items():
            for fold in fold_numbers(data_config):
                for job in ssl_jobs(self.study, data_config):
                    meta = recorded_meta(self.pretrain_dir(name, job, fold))
                    if "pool_fraction" in meta and "pool_images" in meta:
                        pools[name, job.encoder_id, fold] = (meta["pool_fraction"], meta["pool_images"])
        return pools

    def run(self, report: bool = False) -> Path:
        """Run every pending cell (and with ``report`` write the report), holding ``out``'s run lock."""
        with self.started() as (_, datasets):
            self.run_cells(datasets)
            if report:
                from medssl.report.api import write_report

                write_report(self.out)
        return self.out

    def run_cells(self, datasets: dict[str, list[PreparedData]]) -> None:
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
        columns += [TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn()]
        with quiet_lightning_logs(), Progress(*columns, disable=not self.show_progress) as progress:
            task = progress.add_task(
                "study (pre-training epochs or steps + cells)", total=self.pending_units()
            )
            advance = lambda n: progress.advance(task, n)  # noqa: E731
            try:
                for name, folds in datasets.items():
                    progress.update(task, description=f"study: {name}")
                    self.run_dataset(name, folds, advance)
            except Interrupted:
                raise Interrupted(
                    "every finished cell and the last completed pre-training epoch are kept; rerun the same "
                    "`medssl benchmark` command to continue"
                ) from None


def run_study(study: StudyConfig, out: str | Path, **options: Any) -> Path:
    """Run (or continue) ``study`` into ``out`` and write its report; returns ``out``. ``options`` are those of
    ``StudyRunner``: ``command``, ``show_progress``, ``restart`` (move an earlier run in ``out`` aside once every
    check has passed) and ``say`` (receives such notes)."""
    return StudyRunner(study, out, **options).run(report=True)
