"""The study table and label-efficiency series, computed from results.csv rows."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from medssl.evaluate.api import PROTOCOLS
from medssl.methods import METHODS
from medssl.report.rundir import Result

PROTOCOL_NAMES = {
    "knn": "kNN",
    "knn_weighted": "kNN (weighted)",
    "linear": "Linear probe",
    "finetune": "Fine-tune",
}
TABLE_METRICS = ("accuracy", "auroc", "balanced_accuracy")
METRIC_NAMES = {"accuracy": "Acc %", "auroc": "AUROC", "balanced_accuracy": "Bal. acc %"}
SSL_METHODS = tuple(METHODS)
METHOD_NAMES = {
    **{name: method.title for name, method in METHODS.items()},
    "imagenet": "ImageNet",
    "foundation": "Foundation model",
    "random": "Random init",
    "supervised": "Supervised from scratch",
}
BASELINE_ORDER = ("imagenet", "foundation", "random", "supervised")
WEIGHT_SOURCES = ("timm", "hf")
"""``init`` of the rows of ``timm:`` and ``hf:`` encoders: where their weights came from."""
VERDICT_PROTOCOLS = ("linear", "knn", "knn_weighted")


@dataclass(frozen=True)
class EncoderInfo:
    """What an encoder id stands for, from its results rows."""

    encoder: str
    method: str
    backbone: str
    init: str

    @property
    def is_ssl(self) -> bool:
        return self.method in SSL_METHODS

    @property
    def label(self) -> str:
        name = METHOD_NAMES.get(self.method, self.method)
        details = [self.backbone] if self.backbone else []
        if self.is_ssl and self.init in ("imagenet", "pretrained"):
            details.append("ImageNet init" if self.init == "imagenet" else "pretrained init")
        if self.init in WEIGHT_SOURCES:  # Foundation model (DINOv2 ViT-S/14, timm)
            details.append(self.init)
        return f"{name} ({', '.join(details)})" if details else name

    def sort_key(self) -> tuple[int, int, str]:
        if self.is_ssl:
            return (0, SSL_METHODS.index(self.method), self.encoder)
        rank = BASELINE_ORDER.index(self.method) if self.method in BASELINE_ORDER else len(BASELINE_ORDER)
        return (1, rank, self.encoder)


@dataclass(frozen=True)
class Stat:
    """Mean over seeds with sd (when n > 1) or the single run's 95% CI (when n == 1)."""

    mean: float
    sd: float
    ci_low: float
    ci_high: float
    n: int


@dataclass
class StudyCell:
    stats: dict[str, Stat]
    collapsed: bool
    seeds: list[int]
    best: set[str] = field(default_factory=set)
    floor: set[str] = field(default_factory=set)
    """Metrics whose mean is at or below the floor (the majority-class and chance rows)."""
    not_applicable: str = ""
    """Why the protocol cannot work on this cell ('' when it can); it then has no scores."""

    @property
    def flagged(self) -> bool:
        """Collapsed, or not applicable: never the encoder's result, never best, never in a verdict."""
        return self.collapsed or bool(self.not_applicable)

    def counts(self, metric: str) -> bool:
        """Whether the cell's ``metric`` is a result that can be marked best or picked for a verdict."""
        return not self.flagged and metric not in self.floor and math.isfinite(self.stats[metric].mean)


FLOOR_TOLERANCE = 1e-6
"""results.csv keeps six decimals: a score within this of a floor is at it."""


@dataclass(frozen=True)
class Floor:
    """What a classifier scores without looking at the images, from the test labels (images per class)."""

    counts: tuple[int, ...]

    @property
    def n_test(self) -> int:
        return sum(self.counts)

    @property
    def n_classes(self) -> int:
        """The classes present in the test labels (balanced accuracy and AUROC average over these)."""
        return sum(1 for count in self.counts if count)

    @property
    def majority(self) -> int:
        """The index of the largest class."""
        return max(range(len(self.counts)), key=lambda i: self.counts[i])

    def rows(self) -> dict[str, dict[str, float]]:
        """Row name → metric → score: always the majority class, and a uniform random guess."""
        chance = 1 / self.n_classes
        return {
            "majority": {
                "accuracy": self.counts[self.majority] / self.n_test,
                "balanced_accuracy": chance,
                "auroc": 0.5,
            },
            "chance": {"accuracy": chance, "balanced_accuracy": chance, "auroc": 0.5},
        }

    def value(self, metric: str) -> float:
        """The floor of ``metric``: the better of the two rows (the majority class's accuracy, 1/K, 0.5)."""
        return max(row.get(metric, math.nan) for row in self.rows().values())

    def at_floor(self, metric: str, value: float) -> bool:
        return math.isfinite(value) and value <= self.value(metric) + FLOOR_TOLERANCE

    @classmethod
    def of(cls, counts: list[int] | tuple[int, ...] | None) -> Floor | None:
        """The floor of a test set with ``counts`` images per class; None without two classes."""
        counts = tuple(int(c) for c in counts or ())
        return cls(counts) if sum(1 for c in counts if c) >= 2 else None


@dataclass
class StudyRow:
    info: EncoderInfo
    cells: dict[str, StudyCell]


@dataclass
class StudyTable:
    """Rows = encoders (SSL first, then baselines), columns = protocols, at one label fraction."""

    dataset: str
    fraction: float
    protocols: list[str]
    rows: list[StudyRow]
    n_test: int
    floor: Floor | None = None

    def cell(self, encoder: str, protocol: str) -> StudyCell | None:
        for row in self.rows:
            if row.info.encoder == encoder:
                return row.cells.get(protocol)
        return None


def encoders(results: list[Result], dataset: str) -> list[EncoderInfo]:
    """The dataset's encoders in display order.

    An untrained encoder's fine-tune rows carry method ``supervised`` under the same id as its frozen
    ``random`` rows; the frozen rows name the encoder (its fine-tune cell is supervised-from-scratch).
    """
    found: dict[str, EncoderInfo] = {}
    for r in results:
        if r.dataset == dataset and (r.encoder not in found or found[r.encoder].method == "supervised"):
            found[r.encoder] = EncoderInfo(r.encoder, r.method, r.backbone, r.init)
    return sorted(found.values(), key=EncoderInfo.sort_key)


def protocols(results: list[Result], dataset: str) -> list[str]:
    present = {r.protocol for r in results if r.dataset == dataset}
    return [p for p in PROTOCOLS if p in present] + sorted(present - set(PROTOCOLS))


def full_fraction(results: list[Result], dataset: str) -> float:
    """1.0 when it was run, else the largest label fraction of the dataset."""
    fractions = {
        r.label_fraction for r in results if r.dataset == dataset and math.isfinite(r.label_fraction)
    }
    if not fractions:
        return math.nan
    return 1.0 if any(math.isclose(f, 1.0) for f in fractions) else max(fractions)


def summarise(rows: list[Result], metric: str, ci: tuple[str, str] | None = None) -> Stat:
    """Mean ± sd over the rows' seeds, with the CI columns kept when there is exactly one row."""
    values = np.array([r.metric(metric) for r in rows], dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return Stat(math.nan, math.nan, math.nan, math.nan, 0)
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
    low = high = math.nan
    if len(rows) == 1 and ci is not None:
        low, high = rows[0].metric(ci[0]), rows[0].metric(ci[1])
    return Stat(float(np.mean(values)), sd, low, high, len(values))


_CI_COLUMNS = {
    "accuracy": ("accuracy_ci_low", "accuracy_ci_high"),
    "auroc": ("auroc_ci_low", "auroc_ci_high"),
}


def _cell(rows: list[Result], floor: Floor | None) -> StudyCell:
    """One (encoder, protocol) cell over its seeds (and folds); not applicable when any of its rows is."""
    reason = next((r.not_applicable for r in rows if r.not_applicable), "")
    scored = [] if reason else rows
    stats = {m: summarise(scored, m, _CI_COLUMNS.get(m)) for m in TABLE_METRICS}
    at_floor = {m for m, stat in stats.items() if floor is not None and floor.at_floor(m, stat.mean)}
    collapsed = any(r.collapsed for r in scored)
    return StudyCell(stats, collapsed, [r.seed for r in rows], floor=at_floor, not_applicable=reason)


def study_table(
    results: list[Result], dataset: str, fraction: float | None = None, floor: Floor | None = None
) -> StudyTable:
    """The study table of ``dataset`` at ``fraction`` (default: 1.0 or the largest run), best cells marked
    and, given the test set's ``floor``, cells at the floor flagged."""
    fraction = full_fraction(results, dataset) if fraction is None else fraction
    chosen = [r for r in results if r.dataset == dataset and math.isclose(r.label_fraction, fraction)]
    groups: dict[tuple[str, str], list[Result]] = defaultdict(list)
    for r in chosen:
        groups[(r.encoder, r.protocol)].append(r)
    rows = []
    for info in encoders(results, dataset):
        cells = {}
        for protocol in protocols(results, dataset):
            group = sorted(groups.get((info.encoder, protocol), []), key=lambda r: r.seed)
            if group:
                cells[protocol] = _cell(group, floor)
        rows.append(StudyRow(info, cells))
    n_test = max((r.n_test for r in chosen), default=0)
    table = StudyTable(dataset, fraction, protocols(results, dataset), rows, n_test, floor)
    _mark_best(table)
    return table


def label_fractions(results: list[Result], dataset: str) -> list[float]:
    """The label fractions run on ``dataset``, smallest first."""
    found = {r.label_fraction for r in results if r.dataset == dataset and math.isfinite(r.label_fraction)}
    return sorted(found)


def fraction_tables(results: list[Result], dataset: str, floor: Floor | None = None) -> list[StudyTable]:
    """The study table at every label fraction run, smallest first."""
    return [study_table(results, dataset, f, floor) for f in label_fractions(results, dataset)]


def _mark_best(table: StudyTable) -> None:
    """Mark the highest mean per (protocol, metric) among the cells that count (not collapsed, applicable,
    above the floor), when two or more compete."""
    for protocol in table.protocols:
        for metric in TABLE_METRICS:
            cells = [row.cells[protocol] for row in table.rows if protocol in row.cells]
            scored = [(c, c.stats[metric].mean) for c in cells if c.counts(metric)]
            if len(scored) < 2:
                continue
            top = max(v for _, v in scored)
            for cell, value in scored:
                if math.isclose(value, top, rel_tol=0, abs_tol=1e-12):
                    cell.best.add(metric)


def format_metric(metric: str, value: float) -> str:
    """Accuracy-like metrics in percent with one decimal, AUROC with three decimals, '–' when missing."""
    if not math.isfinite(value):
        return "–"
    if metric == "auroc":
        return f"{value:.3f}"
    return f"{100 * value:.1f}"


def format_stat(metric: str, stat: Stat) -> tuple[str, str]:
    """(value, secondary): the mean and '± sd' for several seeds, else the value and its 'low–high' 95% CI."""
    main = format_metric(metric, stat.mean)
    if stat.n > 1:
        return main, f"± {format_metric(metric, stat.sd)}"
    if math.isfinite(stat.ci_low) and math.isfinite(stat.ci_high):
        return main, f"{format_metric(metric, stat.ci_low)}–{format_metric(metric, stat.ci_high)}"
    return main, ""


def format_fraction(fraction: float) -> str:
    return f"{fraction:.2f}".rstrip("0").rstrip(".") if fraction < 1 else f"{fraction:.1f}"


@dataclass(frozen=True)
class Contender:
    """A kind of encoder the verdict weighs against the others: its best member at each label fraction."""

    key: str
    title: str
    """How sentences name the kind: 'in-domain SSL'."""
    member: Callable[[EncoderInfo], bool]


CONTENDERS = (
    Contender("ssl", "in-domain SSL", lambda info: info.is_ssl),
    Contender("imagenet", "ImageNet transfer", lambda info: info.method == "imagenet"),
    Contender("foundation", "foundation model", lambda info: info.method == "foundation"),
)
"""The verdict's kinds, in the order they are named; each pair of them gets its own paired test."""


def best_row(table: StudyTable, contender: Contender, protocol: str, metric: str) -> StudyRow | None:
    """``contender``'s row with the highest mean ``metric`` at ``protocol`` among the cells that count (the
    first in table order on ties); None when it has none."""
    scored = [
        (row.cells[protocol].stats[metric].mean, -i)
        for i, row in enumerate(table.rows)
        if contender.member(row.info) and protocol in row.cells and row.cells[protocol].counts(metric)
    ]
    return table.rows[-max(scored)[1]] if scored else None


def verdict_picks(
    table: StudyTable, metric: str = "accuracy", contenders: tuple[Contender, ...] = CONTENDERS
) -> tuple[str, dict[str, StudyRow]] | None:
    """(protocol, contender key → its best row) for the verdict at the table's label fraction.

    The protocol is the first of linear probe, kNN, weighted kNN at which the most contenders (at least two)
    have a cell that counts; cells that are collapsed, not applicable or at the floor in ``metric`` never do.
    """
    found = []
    for protocol in VERDICT_PROTOCOLS:
        rows = {c.key: best_row(table, c, protocol, metric) for c in contenders}
        picks = {key: row for key, row in rows.items() if row is not None}
        found.append((len(picks), protocol, picks))
    count, protocol, picks = max(found, key=lambda t: t[0])  # max keeps the first on ties
    return (protocol, picks) if count >= 2 else None


@dataclass(frozen=True)
class CurvePoint:
    fraction: float
    accuracy: Stat
    auroc: Stat
    encoder: str = ""
    """The encoder behind a kind's point (``kind_curves``); '' on an encoder's own curve."""


def label_efficiency(results: list[Result], dataset: str) -> dict[str, dict[str, list[CurvePoint]]]:
    """protocol → encoder id → points sorted by label fraction (mean ± sd over seeds); cells that are not
    applicable are left out."""
    groups: dict[tuple[str, str, float], list[Result]] = defaultdict(list)
    for r in results:
        if r.dataset == dataset and math.isfinite(r.label_fraction) and not r.not_applicable:
            groups[(r.protocol, r.encoder, r.label_fraction)].append(r)
    out: dict[str, dict[str, list[CurvePoint]]] = {}
    for (protocol, encoder, fraction), rows in sorted(groups.items()):
        point = CurvePoint(fraction, summarise(rows, "accuracy"), summarise(rows, "auroc"))
        out.setdefault(protocol, {}).setdefault(encoder, []).append(point)
    return {p: out[p] for p in protocols(results, dataset) if p in out}


def kinds_present(table: StudyTable) -> list[Contender]:
    """The contenders with at least one encoder in ``table``, in the order they are named."""
    return [c for c in CONTENDERS if any(c.member(row.info) for row in table.rows)]


def kind_curves(
    tables: list[StudyTable], contenders: list[Contender], metric: str = "accuracy"
) -> dict[str, dict[str, list[CurvePoint]]]:
    """protocol → contender key → its best encoder's point at every label fraction where one counts, picked by
    ``metric`` as the verdict picks (never collapsed, not applicable or at the floor)."""
    out: dict[str, dict[str, list[CurvePoint]]] = {}
    for table in tables:
        for protocol in table.protocols:
            for contender in contenders:
                row = best_row(table, contender, protocol, metric)
                if row is not None:
                    stats = row.cells[protocol].stats
                    point = CurvePoint(table.fraction, stats["accuracy"], stats["auroc"], row.info.encoder)
                    out.setdefault(protocol, {}).setdefault(contender.key, []).append(point)
    return {p: out[p] for p in (tables[0].protocols if tables else []) if p in out}


def best_protocol(table: StudyTable, encoder: str) -> str | None:
    """The protocol with the highest mean accuracy for ``encoder`` in the table."""
    for row in table.rows:
        if row.info.encoder == encoder:
            scored = [(c.stats["accuracy"].mean, p) for p, c in row.cells.items()]
            scored = [(v, p) for v, p in scored if math.isfinite(v)]
            return max(scored)[1] if scored else None
    return None
