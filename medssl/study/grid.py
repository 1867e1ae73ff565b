"""Run a study grid: every finished cell is recorded at once, and a rerun skips what is finished.

Cells are pre-training runs (done when ``encoder.json`` exists; an interrupted one resumes from its last
checkpoint) and evaluation cells (done when ``results.csv`` has their row: dataset, encoder, protocol, label
fraction, seed). So a killed grid continues where it stopped, with no cell run twice.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

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
from medssl.data.dataset import DataConfig, PreparedData, prepare_data
from medssl.evaluate.api import evaluate_encoder
from medssl.models.encoder import ENCODER_META, Encoder, encoder_from_spec, load_encoder
from medssl.study.config import StudyConfig
from medssl.study.preflight import preflight
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


def ssl_jobs(study: StudyConfig, data_config: DataConfig) -> list[EncoderJob]:
    settings = study.pretrain.model_dump()
    finetune = "ssl" in study.evaluation.finetune
    jobs = []
    for method in study.methods:
        for backbone in study.backbones:
            for init in study.inits:
                for seed in range(study.pretrain_seeds):
                    suffix = f"-s{seed}" if study.pretrain_seeds > 1 else ""
                    config = PretrainConfig(
                        **settings, method=method, backbone=backbone, init=init, seed=seed,
                        data=data_config, progress_bar=False,
                    )  # fmt: skip
                    jobs.append(
                        EncoderJob(f"{method}-{backbone}-{init}{suffix}", pretrain=config, finetune=finetune)
                    )
    return jobs


def baseline_jobs(study: StudyConfig) -> list[EncoderJob]:
    specs = list(dict.fromkeys([*study.baselines, *(s for s in study.evaluation.finetune if s != "ssl")]))
    return [
        EncoderJob(
            spec.replace(":", "-"),
            spec=spec,
            frozen=spec in study.baselines,
            finetune=spec in study.evaluation.finetune,
        )
        for spec in specs
    ]


def finished_cells(results: Path) -> set[tuple[str, str, str, float, int]]:
    """(dataset, encoder, protocol, label_fraction, seed) of every row already in ``results.csv``."""
    if not results.exists():
        return set()
    with results.open(newline="") as handle:
        return {
            (r["dataset"], r["encoder"], r["protocol"], float(r["label_fraction"]), int(r["seed"]))
            for r in csv.DictReader(handle)
        }


def _machine() -> str:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, {gpu}, torch {torch.__version__}"


def _write_config(study: StudyConfig, out: Path, command: str | None) -> None:
    path = out / "config.yaml"
    previous = yaml.safe_load(path.read_text()) if path.exists() else {}
    payload = study.model_dump(mode="json")
    payload["command"] = command or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
    payload["machine"] = previous.get("machine", _machine())
    payload["started"] = previous.get("started", dt.datetime.now().isoformat(timespec="seconds"))
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(payload, sort_keys=False))


class _EpochProgress(pl.Callback):
    def __init__(self, advance) -> None:
        self.advance = advance

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.advance(1)


class StudyRunner:
    """Runs one study into ``out``; ``run()`` is idempotent and resumable."""

    def __init__(
        self, study: StudyConfig, out: str | Path, command: str | None = None, show_progress: bool = True
    ):
        self.study = study
        self.out = Path(out)
        self.command = command
        self.show_progress = show_progress
        self.results = self.out / "results.csv"

    def eval_cells(self, dataset: str, job: EncoderJob) -> list[tuple[str, float, int]]:
        """(protocol, fraction, seed) cells of ``job`` not yet in results.csv."""
        settings = self.study.evaluation
        protocols = [*(settings.protocols if job.frozen else []), *(["finetune"] if job.finetune else [])]
        done = finished_cells(self.results)
        return [
            (protocol, fraction, seed)
            for protocol in protocols
            for fraction in settings.label_fractions
            for seed in range(settings.seeds)
            if (dataset, job.encoder_id, protocol, fraction, seed) not in done
        ]

    def pending_units(self) -> int:
        """Epochs left to pre-train plus evaluation cells left: the progress bar's total."""
        units = 0
        for name, data_config in self.study.datasets.items():
            for job in [*ssl_jobs(self.study, data_config), *baseline_jobs(self.study)]:
                if job.pretrain and not (self.pretrain_dir(name, job) / ENCODER_META).exists():
                    units += job.pretrain.epochs
                units += len(self.eval_cells(name, job))
        return units

    def pretrain_dir(self, dataset: str, job: EncoderJob) -> Path:
        return self.out / dataset / "pretrain" / job.encoder_id

    def encoder(self, dataset: str, job: EncoderJob, data: PreparedData, advance) -> Encoder:
        if job.spec:
            return encoder_from_spec(job.spec)
        run_dir = self.pretrain_dir(dataset, job)
        if not (run_dir / ENCODER_META).exists():
            pretrain(job.pretrain, run_dir, data=data, resume=True, callbacks=[_EpochProgress(advance)])
        encoder = load_encoder(run_dir)
        encoder.meta["encoder_id"] = job.encoder_id
        return encoder

    def evaluate(self, data: PreparedData, job: EncoderJob, encoder: Encoder, advance) -> None:
        settings = self.study.evaluation
        for protocol, fraction, seed in self.eval_cells(data.name, job):
            evaluate_encoder(
                encoder, data, [protocol], [fraction], [seed], self.out, k=settings.k,
                n_bootstrap=settings.n_bootstrap, finetune_epochs=settings.finetune_epochs,
                patience=settings.patience,
            )  # fmt: skip
            advance(1)

    def run_dataset(self, name: str, data_config: DataConfig, advance) -> None:
        data_config = data_config.model_copy(update={"name": name})
        data = prepare_data(data_config, run_dir=self.out / name)
        self.preview(data)
        for job in [*ssl_jobs(self.study, data_config), *baseline_jobs(self.study)]:
            encoder = self.encoder(name, job, data, advance)
            self.evaluate(data, job, encoder, advance)

    def preview(self, data: PreparedData) -> None:
        path = self.out / data.name / "augment_preview.png"
        if path.exists():
            return
        from medssl.train.augment import detect_preset
        from medssl.train.preview import augment_preview

        preset = self.study.pretrain.augment
        preset = detect_preset(data.table.modality, data.channels) if preset == "auto" else preset
        augment_preview(data.images[data.split["train"][:64]], [preset], path)

    def run(self) -> Path:
        preflight(self.study, self.out)  # every prerequisite, before anything is written or trained
        _write_config(self.study, self.out, self.command)
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
        columns += [TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn()]
        with quiet_lightning_logs(), Progress(*columns, disable=not self.show_progress) as progress:
            task = progress.add_task("study (epochs + cells)", total=self.pending_units())
            advance = lambda n: progress.advance(task, n)  # noqa: E731
            for name, data_config in self.study.datasets.items():
                progress.update(task, description=f"study: {name}")
                self.run_dataset(name, data_config, advance)
        return self.out


def run_study(
    study: StudyConfig, out: str | Path, command: str | None = None, show_progress: bool = True
) -> Path:
    """Run (or continue) ``study`` into ``out`` and write its report; returns ``out``."""
    out = StudyRunner(study, out, command, show_progress).run()
    from medssl.report.api import write_report

    write_report(out)
    return out
