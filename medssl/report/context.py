"""What every part of a dataset's report section shares: the run, the study table, labels and provenance."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import cached_property

from medssl.errors import DataError
from medssl.report import figures
from medssl.report.budget import Budget, budget_of
from medssl.report.document import Inline, Paragraph, Span
from medssl.report.rundir import Result, RunDir, SplitSummary
from medssl.report.tables import StudyTable
from medssl.rundir.predictions import Predictions, pool_predictions

IMBALANCED = 0.6
"""Majority-class share of the test images above which accuracy is not the primary metric."""


def slug(text: str) -> str:
    """A file-name and anchor safe form of ``text``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def note(text: str) -> Paragraph:
    """A highlighted remark (why something is missing)."""
    return Paragraph([Span(text)], "note")


def provenance(run: RunDir, *files: str) -> Paragraph:
    """'Source: <files> · produced by <command>' under a table or figure."""
    content: Inline = [Span("Source: ")]
    for i, name in enumerate(files):
        content += [Span(", " if i else ""), Span(name, "code")]
    if run.meta("command"):
        content += [Span(" · produced by "), Span(run.meta("command"), "code")]
    return Paragraph(content, "source")


@dataclass
class Context:
    """One dataset of the run, with its study table and class names."""

    run: RunDir
    dataset: str
    key: str
    """Slug unique within the report, used for anchors and figure file names."""
    table: StudyTable
    class_names: list[str] = field(default_factory=list)
    n_bootstrap: int = 2000
    tables: list[StudyTable] = field(default_factory=list)
    """The study table at every label fraction run, smallest first (default: ``table`` alone)."""

    @property
    def by_fraction(self) -> list[StudyTable]:
        return self.tables or [self.table]

    @cached_property
    def budgets(self) -> dict[str, list[Budget]]:
        """SSL encoder id → the budget of its pre-training (one per fold under cross-validation)."""
        out: dict[str, list[Budget]] = {}
        for fold in range(1, self.folds + 1) if self.folds else [None]:
            for encoder, history in self.run.histories(self.dataset, fold).items():
                if (budget := budget_of(history, self.primary_metric)) is not None:
                    out.setdefault(encoder, []).append(budget)
        return out

    @property
    def encoders(self) -> list[str]:
        return [row.info.encoder for row in self.table.rows]

    @property
    def labels(self) -> dict[str, str]:
        """Encoder id → display label; the id is appended where two encoders would share a label."""
        names = [row.info.label for row in self.table.rows]
        out = {}
        for row in self.table.rows:
            label = row.info.label
            out[row.info.encoder] = label if names.count(label) == 1 else f"{label} [{row.info.encoder}]"
        return out

    @property
    def palette(self) -> dict[str, str]:
        """A stable colour per encoder, shared by every figure of the dataset."""
        return figures.colours(self.encoders)

    def rows_for(self, encoder: str, protocol: str, fraction: float | None = None) -> list[Result]:
        """results.csv rows of one (encoder, protocol) at ``fraction`` (default: the table's), by seed."""
        fraction = self.table.fraction if fraction is None else fraction
        rows = [
            r
            for r in self.run.results
            if r.dataset == self.dataset
            and r.encoder == encoder
            and r.protocol == protocol
            and math.isclose(r.label_fraction, fraction)
        ]
        return sorted(rows, key=lambda r: (r.seed, r.fold or 0))

    @property
    def split(self) -> SplitSummary | None:
        return self.run.split_summary(self.dataset)

    @property
    def folds(self) -> int:
        """K under K-fold cross-validation (from split.csv, else the rows' fold numbers), 0 for a single
        split. While folds are unfinished, pooled out-of-fold predictions are not available."""
        if self.split is not None and self.split.folds:
            return self.split.folds
        return max((r.fold or 0 for r in self.run.results if r.dataset == self.dataset), default=0)

    @property
    def feature_fold(self) -> int | None:
        """The fold whose features and pre-training curves the figures show: 1 under CV, else None.

        Only one fold is drawn: each fold has its own encoders (pre-trained on its training images), so the
        folds' maps cannot share one t-SNE, and K times every encoder's map would be slow and unreadable.
        The figures' captions say "fold 1 of K"; the tables and confusion matrices cover every fold."""
        return 1 if self.folds else None

    @property
    def feature_dir(self) -> str:
        """The run-relative folder of the shown fold's ``eval/`` and ``pretrain/`` (the dataset's without CV)."""
        return f"{self.dataset}/fold{self.feature_fold}" if self.feature_fold else self.dataset

    @property
    def fold_shown(self) -> str:
        """'fold 1 of K' under cross-validation, else ''."""
        return f"fold {self.feature_fold} of {self.folds}" if self.feature_fold else ""

    @property
    def majority_share(self) -> float:
        """The largest class's share of the test images: from split.csv, else from the floor's test labels."""
        share = self.split.majority_share if self.split else math.nan
        floor = self.table.floor
        if not math.isfinite(share) and floor is not None:
            share = floor.rows()["majority"]["accuracy"]
        return share

    @property
    def primary_metric(self) -> str:
        """``balanced_accuracy`` where the majority class is over 60% of the test images, else ``accuracy``."""
        share = self.majority_share
        return "balanced_accuracy" if math.isfinite(share) and share > IMBALANCED else "accuracy"

    def predictions(
        self, encoder: str, protocol: str, seed: int, fraction: float | None = None
    ) -> tuple[Predictions | None, list[str]]:
        """(test predictions, their files) of one cell at ``fraction`` (default: the table's): under
        cross-validation the out-of-fold predictions pooled over every fold (each image once), else the single
        file. None where a file (or a fold) is missing."""
        rows = [r for r in self.rows_for(encoder, protocol, fraction) if r.seed == seed]
        files = [r.predictions for r in rows]
        loaded = [self.run.predictions(f) for f in files]
        if not rows or any(p is None for p in loaded):
            return None, files
        if not self.folds:
            return loaded[0], files[:1]
        if sorted(r.fold or 0 for r in rows) != list(range(1, self.folds + 1)):
            return None, files
        try:
            return pool_predictions([p for p in loaded if p is not None], files), files
        except DataError:
            return None, files
