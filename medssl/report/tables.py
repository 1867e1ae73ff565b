"""The study table and label-efficiency series, computed from results.csv rows."""

from __future__ import annotations

import math
from collections import defaultdict
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


def study_table(results: list[Result], dataset: str, fraction: float | None = None) -> StudyTable:
    """The study table of ``dataset`` at ``fraction`` (default: 1.0 or the largest run), best cells marked."""
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
                stats = {m: summarise(group, m, _CI_COLUMNS.get(m)) for m in TABLE_METRICS}
                cells[protocol] = StudyCell(stats, any(r.collapsed for r in group), [r.seed for r in group])
        rows.append(StudyRow(info, cells))
    table = StudyTable(
        dataset, fraction, protocols(results, dataset), rows, max((r.n_test for r in chosen), default=0)
    )
    _mark_best(table)
    return table


def _mark_best(table: StudyTable) -> None:
    """Mark the highest mean per (protocol, metric) among non-collapsed cells, when two or more compete."""
    for protocol in table.protocols:
        for metric in TABLE_METRICS:
            cells = [row.cells[protocol] for row in table.rows if protocol in row.cells]
            scored = [(c, c.stats[metric].mean) for c in cells if not c.collapsed]
            scored = [(c, v) for c, v in scored if math.isfinite(v)]
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


def verdict_pair(table: StudyTable, metric: str = "accuracy") -> tuple[StudyRow, StudyRow, str] | None:
    """(best in-domain SSL row, best ImageNet-frozen row, protocol), chosen by linear-probe ``metric``.

    kNN (then weighted kNN) is used when the two kinds do not both have a linear probe; collapsed cells
    never count as best.
    """
    for protocol in VERDICT_PROTOCOLS:
        best = []
        for is_ssl in (True, False):
            scored = [
                (row.cells[protocol].stats[metric].mean, i)
                for i, row in enumerate(table.rows)
                if (row.info.is_ssl if is_ssl else row.info.method == "imagenet")
                and protocol in row.cells
                and not row.cells[protocol].collapsed
                and math.isfinite(row.cells[protocol].stats[metric].mean)
            ]
            if scored:
                best.append(table.rows[max(scored, key=lambda t: (t[0], -t[1]))[1]])
        if len(best) == 2:
            return best[0], best[1], protocol
    return None


@dataclass(frozen=True)
class CurvePoint:
    fraction: float
    accuracy: Stat
    auroc: Stat


def label_efficiency(results: list[Result], dataset: str) -> dict[str, dict[str, list[CurvePoint]]]:
    """protocol → encoder id → points sorted by label fraction (mean ± sd over seeds)."""
    groups: dict[tuple[str, str, float], list[Result]] = defaultdict(list)
    for r in results:
        if r.dataset == dataset and math.isfinite(r.label_fraction):
            groups[(r.protocol, r.encoder, r.label_fraction)].append(r)
    out: dict[str, dict[str, list[CurvePoint]]] = {}
    for (protocol, encoder, fraction), rows in sorted(groups.items()):
        point = CurvePoint(fraction, summarise(rows, "accuracy"), summarise(rows, "auroc"))
        out.setdefault(protocol, {}).setdefault(encoder, []).append(point)
    return {p: out[p] for p in protocols(results, dataset) if p in out}


def best_protocol(table: StudyTable, encoder: str) -> str | None:
    """The protocol with the highest mean accuracy for ``encoder`` in the table."""
    for row in table.rows:
        if row.info.encoder == encoder:
            scored = [(c.stats["accuracy"].mean, p) for p, c in row.cells.items()]
            scored = [(v, p) for v, p in scored if math.isfinite(v)]
            return max(scored)[1] if scored else None
    return None
