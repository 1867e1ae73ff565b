"""Pre-training-set scaling: results per pool size, the crossover with ImageNet, its figure and table.

Everything here reads result rows as ``results.csv`` holds them (mappings of column → text or number), so the
report, a notebook or a test can call it. A row of an in-domain SSL encoder pre-trained on a pool carries
``pretrain_fraction`` (its share of the training images) and ``pretrain_images`` (the pool's size).

A *point* is one model family (method, backbone, init) at one pool fraction: each pre-training run (encoder)
is averaged over its evaluation seeds, then the point is the mean ± sd over the runs (pre-training seeds); its
CI is the runs' 95% bootstrap CI on the test images, averaged. Baselines are points of their own (no pool).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medssl.evaluate.compare import Comparison
from medssl.evaluate.metrics import classification_metrics, mean_sd, paired_bootstrap
from medssl.report.tables import (
    PROTOCOLS,
    SSL_METHODS,
    EncoderInfo,
    Stat,
    format_metric,
)
from medssl.report.verdict import align, p_text, points, signed
from medssl.rundir.results import NOT_APPLICABLE

Row = Mapping[str, Any]
Loader = Callable[[str], "dict[str, np.ndarray] | None"]
"""Reads a row's ``predictions`` file (path relative to the run) as y_true / y_prob / test_index arrays."""

CI_COLUMNS = {"accuracy": ("accuracy_ci_low", "accuracy_ci_high"), "auroc": ("auroc_ci_low", "auroc_ci_high")}
FROZEN = ("knn", "knn_weighted", "linear")


def number(row: Row, key: str) -> float:
    """A row's value as a float; NaN when missing or not a number."""
    try:
        value = row.get(key)
        return float(value) if value not in (None, "") else math.nan
    except (TypeError, ValueError):
        return math.nan


def _collapsed(row: Row) -> bool:
    return str(row.get("collapsed", "")).strip().lower() in ("1", "true", "yes")


def info(row: Row) -> EncoderInfo:
    return EncoderInfo(
        str(row.get("encoder", "")),
        str(row.get("method", "")),
        str(row.get("backbone", "")),
        str(row.get("init", "")),
    )


def family(row: Row) -> str:
    """``<method>-<backbone>-<init>`` for an SSL row (whatever its pool and seed), else the encoder id."""
    i = info(row)
    return f"{i.method}-{i.backbone}-{i.init}" if i.is_ssl else i.encoder


def is_pool_row(row: Row) -> bool:
    return info(row).is_ssl and math.isfinite(number(row, "pretrain_fraction"))


def pool_fractions(rows: Sequence[Row], dataset: str) -> list[float]:
    """The pre-training pool fractions of ``dataset``'s SSL rows, ascending."""
    return sorted(
        {number(r, "pretrain_fraction") for r in rows if r.get("dataset") == dataset and is_pool_row(r)}
    )


@dataclass(frozen=True)
class Point:
    """One family at one pool fraction (or a baseline): mean ± sd over runs, averaged CI, the rows behind it."""

    family: str
    info: EncoderInfo
    metric: str
    stat: Stat
    pool_fraction: float = math.nan
    pool_images: int = 0
    collapsed: bool = False
    runs: dict[str, list[Row]] = field(default_factory=dict)
    """Encoder id (one per pre-training seed) → its rows (one per evaluation seed)."""

    @property
    def label(self) -> str:
        return self.info.label


def _point(members: list[Row], metric: str) -> Point:
    """Aggregate rows of one family × pool (several encoders = pre-training seeds, several evaluation seeds)."""
    runs: dict[str, list[Row]] = defaultdict(list)
    for row in members:
        runs[str(row["encoder"])].append(row)
    low_key, high_key = CI_COLUMNS[metric]
    per_run = [
        [float(np.nanmean([number(r, key) for r in rows])) for key in (metric, low_key, high_key)]
        for rows in runs.values()
        if any(math.isfinite(number(r, metric)) for r in rows)
    ]
    values = np.array(per_run, dtype=float).reshape(-1, 3)
    mean, sd = mean_sd(values[:, 0])
    ci_low, ci_high = (float(np.nanmean(values[:, k])) if len(values) else math.nan for k in (1, 2))
    sizes = [number(r, "pretrain_images") for r in members]
    sizes = [s for s in sizes if math.isfinite(s)]
    first = min(members, key=lambda r: str(r["encoder"]))
    return Point(
        family(first),
        info(first),
        metric,
        Stat(mean, sd if len(values) > 1 else math.nan, ci_low, ci_high, len(values)),
        number(first, "pretrain_fraction"),
        round(float(np.mean(sizes))) if sizes else 0,
        any(_collapsed(r) for r in members),
        dict(runs),
    )


def _chosen(rows: Sequence[Row], dataset: str, protocol: str, label_fraction: float) -> list[Row]:
    return [
        r
        for r in rows
        if r.get("dataset") == dataset
        and r.get("protocol") == protocol
        and math.isclose(number(r, "label_fraction"), label_fraction)
        and not r.get(NOT_APPLICABLE)  # a protocol that cannot work on the cell has no result to plot
    ]


def scaling_points(
    rows: Sequence[Row], dataset: str, protocol: str, metric: str = "accuracy", label_fraction: float = 1.0
) -> dict[str, list[Point]]:
    """SSL family → its points by pool size (ascending), at one protocol and label fraction."""
    groups: dict[tuple[str, float], list[Row]] = defaultdict(list)
    for row in _chosen(rows, dataset, protocol, label_fraction):
        if is_pool_row(row):
            groups[(family(row), number(row, "pretrain_fraction"))].append(row)
    out: dict[str, list[Point]] = defaultdict(list)
    for (name, _), members in sorted(
        groups.items(), key=lambda item: (_family_order(item[0][0]), item[0][1])
    ):
        out[name].append(_point(members, metric))
    return dict(out)


def _family_order(name: str) -> tuple[int, str]:
    method = name.split("-")[0]
    return (SSL_METHODS.index(method) if method in SSL_METHODS else len(SSL_METHODS), name)


@dataclass(frozen=True)
class Band:
    """A baseline drawn as a horizontal band: its CI (and a line at its mean)."""

    name: str
    point: Point


def _baseline(rows: Sequence[Row], dataset: str, protocol: str, metric: str, fraction: float, method: str):
    """One point per encoder of ``method`` (imagenet, random, supervised) under ``protocol``."""
    groups: dict[str, list[Row]] = defaultdict(list)
    for row in _chosen(rows, dataset, protocol, fraction):
        if row.get("method") == method:
            groups[str(row["encoder"])].append(row)
    return [_point(members, metric) for _, members in sorted(groups.items())]


def baseline_bands(
    rows: Sequence[Row], dataset: str, protocol: str, metric: str = "accuracy", label_fraction: float = 1.0
) -> list[Band]:
    """ImageNet frozen (this protocol), ImageNet fine-tuned and random init (this protocol) as bands.

    On a fine-tuning panel the random-init baseline is supervised training from scratch.
    """
    args = (rows, dataset)
    bands = []
    if protocol in FROZEN:
        for p in _baseline(*args, protocol, metric, label_fraction, "imagenet"):
            bands.append(Band(f"ImageNet frozen ({p.info.backbone})", p))
    for p in _baseline(*args, "finetune", metric, label_fraction, "imagenet"):
        bands.append(Band(f"ImageNet fine-tuned ({p.info.backbone})", p))
    if protocol in FROZEN:
        for p in _baseline(*args, protocol, metric, label_fraction, "random"):
            bands.append(Band(f"Random init ({p.info.backbone})", p))
    else:
        for p in _baseline(*args, protocol, metric, label_fraction, "supervised"):
            bands.append(Band(f"Supervised from scratch ({p.info.backbone})", p))
    return bands


def _ranked(point: Point) -> tuple[float, int, str]:
    """Sort key of the best point: highest mean, then the method order of the tables, then the id."""
    return (-point.stat.mean, *_family_order(point.family))


def best_at(points_by_family: Mapping[str, list[Point]], fraction: float) -> Point | None:
    """The best non-collapsed SSL point at one pool fraction (ties: the tables' method order, then the id)."""
    found = [
        p
        for pts in points_by_family.values()
        for p in pts
        if math.isclose(p.pool_fraction, fraction) and not p.collapsed and math.isfinite(p.stat.mean)
    ]
    return min(found, key=_ranked) if found else None


def above(ssl: Point, reference: Point) -> bool:
    """Whether ``ssl``'s CI lies entirely above ``reference``'s (touching CIs do not count)."""
    return ssl.stat.ci_low > reference.stat.ci_high


@dataclass
class Crossover:
    """The smallest pool at which the best SSL method's CI lies above the reference's, with the paired test."""

    dataset: str
    protocol: str
    metric: str
    reference: Band
    best: list[tuple[float, Point]]
    """(pool fraction, best SSL point there), by pool size."""
    reached: Point | None
    sustained: bool
    """The CI stays above the reference's at every larger pool too."""
    tests: list[Comparison]
    """Paired bootstraps of the decisive point's runs vs the reference (same evaluation seed, same images)."""

    @property
    def largest_images(self) -> int:
        return max((p.pool_images for _, p in self.best), default=0)

    @property
    def decisive(self) -> Point | None:
        """The point the paired test is about: the crossover, or else the best at the largest pool."""
        return self.reached or (self.best[-1][1] if self.best else None)

    def sentence(self, protocol_name: str | None = None) -> str:
        return crossover_sentence(self, protocol_name or self.protocol)


def _value_ci(stat: Stat, metric: str) -> str:
    unit = "%" if metric != "auroc" else ""
    text = f"{format_metric(metric, stat.mean)}{unit} (95% CI {format_metric(metric, stat.ci_low)}–"
    text += f"{format_metric(metric, stat.ci_high)}"
    return text + (
        f"; ± {format_metric(metric, stat.sd)} over {stat.n} pre-training seeds)" if stat.n > 1 else ")"
    )


def _test_text(tests: list[Comparison], metric: str) -> str:
    if not tests:
        return "no paired test (the prediction files are missing or do not cover the same test images)"
    show = points if metric != "auroc" else signed
    unit = " points" if metric != "auroc" else ""
    parts = [
        f"{show(t.difference)}{unit} (95% CI {show(t.ci_low)} to {show(t.ci_high)}, {p_text(t.p_value)})"
        for t in tests
    ]
    runs = f" per pre-training seed ({len(tests)} runs)" if len(tests) > 1 else ""
    return f"paired bootstrap on the {tests[0].n_test} shared test images{runs}: " + "; ".join(parts)


def crossover_sentence(result: Crossover, protocol_name: str) -> str:
    """The plain statement: where the best SSL method first beats ImageNet, or that it does not."""
    ref = result.reference
    head = f"{protocol_name}, {result.metric}"
    point = result.decisive
    if point is None:
        return f"{head}: no in-domain SSL results to compare with {ref.name}."
    versus = f"{_value_ci(point.stat, result.metric)} vs {_value_ci(ref.point.stat, result.metric)}"
    test = _test_text(result.tests, result.metric)
    if result.reached is None:
        return (
            f"{head}: in-domain SSL does not beat {ref.name} within {result.largest_images:,} pre-training "
            f"images (its CI never lies above ImageNet's). At the largest pool the best, {point.label}, "
            f"scores {versus}; {test}."
        )
    later = "" if result.sustained else " Not sustained: at a larger pool the CIs overlap again."
    return (
        f"{head}: the best in-domain SSL method first beats {ref.name} at {point.pool_images:,} pre-training "
        f"images (pool {point.pool_fraction:g}): {point.label} {versus}; {test}.{later}"
    )


def _seed(row: Row) -> float:
    return number(row, "seed")


def _paired_test(row: Row, reference: Row, load: Loader, n: int, metric: str) -> Comparison | None:
    """``paired_bootstrap`` of two rows' prediction files on the test images both scored; None without them."""
    files = [load(str(r.get("predictions") or "")) for r in (row, reference)]
    data = align(*files) if all(f is not None for f in files) else None
    if data is None:
        return None
    y, a, b = data
    diff, (low, high), p = paired_bootstrap(y, a, b, metric, n, 0)
    value_a, value_b = (classification_metrics(y, prob)[metric] for prob in (a, b))
    return Comparison(metric, value_a, value_b, diff, low, high, p, len(y))


def _paired_tests(point: Point, reference: Point, load: Loader | None, n: int) -> list[Comparison]:
    """One paired bootstrap per run of ``point``, against the reference row of the same evaluation seed."""
    if load is None:
        return []
    by_seed = {_seed(r): r for rows in reference.runs.values() for r in rows}
    out = []
    for encoder in sorted(point.runs):
        shared = [r for r in sorted(point.runs[encoder], key=_seed) if _seed(r) in by_seed]
        test = _paired_test(shared[0], by_seed[_seed(shared[0])], load, n, point.metric) if shared else None
        out += [test] if test is not None else []
    return out


def reference_band(
    rows: Sequence[Row], dataset: str, protocol: str, metric: str, fraction: float
) -> Band | None:
    """The ImageNet encoder to beat: frozen under a frozen protocol, fine-tuned under fine-tuning; the best."""
    found = _baseline(rows, dataset, protocol, metric, fraction, "imagenet")
    found = [p for p in found if math.isfinite(p.stat.mean)]
    if not found:
        return None
    best = min(found, key=lambda p: (-p.stat.mean, p.family))
    kind = "fine-tuned" if protocol == "finetune" else "frozen"
    return Band(f"ImageNet {kind} ({best.info.backbone})", best)


def crossover(
    rows: Sequence[Row],
    dataset: str,
    protocol: str,
    metric: str = "accuracy",
    label_fraction: float = 1.0,
    load: Loader | None = None,
    n_bootstrap: int = 2000,
) -> Crossover | None:
    """Where in-domain SSL overtakes ImageNet as the pre-training pool grows; None without both kinds.

    At each pool size the best SSL method (highest mean) is compared with the best ImageNet encoder of the
    protocol; the crossover is the smallest pool at which its CI lies entirely above ImageNet's. The paired
    bootstrap (``paired_bootstrap``, as in the verdict) of that point's runs against ImageNet, on the same test
    images, is the test behind it; when the crossover is not reached, the test is at the largest pool.
    ``load`` reads a predictions file (e.g. ``RunDir.predictions``); without it there is no paired test.
    """
    reference = reference_band(rows, dataset, protocol, metric, label_fraction)
    by_family = scaling_points(rows, dataset, protocol, metric, label_fraction)
    if reference is None or not by_family:
        return None
    fractions = sorted({p.pool_fraction for pts in by_family.values() for p in pts})
    best = [(f, b) for f in fractions if (b := best_at(by_family, f)) is not None]
    wins = [above(p, reference.point) for _, p in best]
    first = wins.index(True) if True in wins else None
    reached = best[first][1] if first is not None else None
    sustained = first is not None and all(wins[first:])
    result = Crossover(dataset, protocol, metric, reference, best, reached, sustained, [])
    if result.decisive is not None:
        result.tests = _paired_tests(result.decisive, reference.point, load, n_bootstrap)
    return result


def full_label_fraction(rows: Sequence[Row], dataset: str) -> float:
    """1.0 when the pool rows have it, else their largest label fraction (NaN without pool rows)."""
    found = {number(r, "label_fraction") for r in rows if r.get("dataset") == dataset and is_pool_row(r)}
    found = {f for f in found if math.isfinite(f)}
    if not found:
        return math.nan
    return 1.0 if any(math.isclose(f, 1.0) for f in found) else max(found)


def pool_protocols(rows: Sequence[Row], dataset: str) -> list[str]:
    present = {str(r.get("protocol")) for r in rows if r.get("dataset") == dataset and is_pool_row(r)}
    return [p for p in PROTOCOLS if p in present] + sorted(present - set(PROTOCOLS))


def label_fractions(rows: Sequence[Row], dataset: str, protocol: str) -> list[float]:
    """The label fractions of the dataset's pool rows under ``protocol``, ascending."""
    found = {number(r, "label_fraction") for r in rows if r.get("dataset") == dataset and is_pool_row(r)}
    return sorted(f for f in found if math.isfinite(f) and any(_chosen(rows, dataset, protocol, f)))


def best_family(rows: Sequence[Row], dataset: str, protocol: str, metric: str = "accuracy") -> Point | None:
    """The best SSL point at the largest pool and the full label fraction: the method the table follows."""
    by_family = scaling_points(rows, dataset, protocol, metric, full_label_fraction(rows, dataset))
    pools = sorted({p.pool_fraction for pts in by_family.values() for p in pts})
    return best_at(by_family, pools[-1]) if pools else None
