"""The report's scaling part: curves against the pre-training pool size, crossover statements, and the table
of pool size × label fraction, all drawn from result rows (see ``scaling``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure as PlotFigure
from matplotlib.legend_handler import HandlerTuple
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from medssl.report.context import Context, provenance
from medssl.report.document import Block, Cell, Figure, Heading, Paragraph, Span, Table
from medssl.report.figures import colours, label_text, to_png
from medssl.report.scaling import (
    Row,
    above,
    baseline_bands,
    best_family,
    crossover,
    full_label_fraction,
    label_fractions,
    pool_fractions,
    pool_protocols,
    reference_band,
    scaling_points,
)
from medssl.report.tables import (
    PROTOCOL_NAMES,
    VERDICT_PROTOCOLS,
    Floor,
    format_fraction,
    format_metric,
    format_stat,
)
from medssl.rundir.results import RESULTS, read_result_rows

# --- the figure -------------------------------------------------------------------------------------------

BAND_COLOURS = {"ImageNet frozen": "#b91c1c", "ImageNet fine-tuned": "#7c3aed", "Random init": "#6b7280"}
BAND_COLOURS["Supervised from scratch"] = "#6b7280"
METRIC_AXES = (("accuracy", "Test accuracy (%)"), ("auroc", "Test AUROC"))


def _band_colour(name: str) -> str:
    return next((c for prefix, c in BAND_COLOURS.items() if name.startswith(prefix)), "#374151")


def _band_handle(colour: str) -> tuple[Patch, Line2D]:
    """A legend entry drawn like the band: its shaded CI with the dashed line of its value."""
    return Patch(color=colour, alpha=0.13, linewidth=0), Line2D([], [], color=colour, linestyle="--")


def _draw_panel(
    ax, rows: Sequence[Row], dataset: str, protocol: str, metric: str, fraction: float, palette, bands
):
    scale = 100.0 if metric != "auroc" else 1.0
    sizes: set[int] = set()
    for name, pts in scaling_points(rows, dataset, protocol, metric, fraction).items():
        x = np.array([p.pool_images for p in pts], dtype=float)
        y = np.array([p.stat.mean for p in pts]) * scale
        err = np.nan_to_num(np.array([p.stat.sd for p in pts])) * scale
        ax.errorbar(x, y, yerr=err, color=palette[name], marker="o", markersize=4, capsize=3, linewidth=1.8,
                    label=label_text(pts[0].label, 40))  # fmt: skip
        sizes |= {p.pool_images for p in pts}
    for band in baseline_bands(rows, dataset, protocol, metric, fraction):
        stat, colour = band.point.stat, _band_colour(band.name)
        if math.isfinite(stat.ci_low) and math.isfinite(stat.ci_high):
            ax.axhspan(stat.ci_low * scale, stat.ci_high * scale, color=colour, alpha=0.13, linewidth=0)
        if math.isfinite(stat.mean):
            ax.axhline(stat.mean * scale, color=colour, linestyle="--", linewidth=1.2)
        bands.setdefault(label_text(band.name, 40), _band_handle(colour))
    ax.set_xscale("log")
    ticks = sorted(sizes)
    ax.set_xticks(ticks, [f"{t:,}" for t in ticks])
    ax.minorticks_off()
    ax.grid(True, which="both", alpha=0.25)


def scaling_figure(rows: Sequence[Row], dataset: str, label_fraction: float | None = None) -> bytes:
    """Accuracy (top) and AUROC (bottom) against pre-training images (log x), a panel per protocol.

    One line per SSL method (mean ± sd over pre-training seeds); ImageNet frozen, ImageNet fine-tuned and
    random init as horizontal bands of their 95% CI (dashed line: their value). ``ValueError`` without pools.
    """
    fraction = full_label_fraction(rows, dataset) if label_fraction is None else label_fraction
    columns = pool_protocols(rows, dataset)
    if not columns:
        raise ValueError(f"dataset '{dataset}' has no pre-training pool rows (pretrain_fraction) to plot")
    families = list(
        dict.fromkeys(f for p in columns for f in scaling_points(rows, dataset, p, "accuracy", fraction))
    )
    palette = colours(families)
    figure = PlotFigure(figsize=(max(4.2 * len(columns), 7.5), 7.2))
    axes = figure.subplots(2, len(columns), squeeze=False, sharex="col")
    bands: dict[str, tuple[Patch, Line2D]] = {}
    for col, protocol in enumerate(columns):
        for row_index, (metric, name) in enumerate(METRIC_AXES):
            ax = axes[row_index][col]
            _draw_panel(ax, rows, dataset, protocol, metric, fraction, palette, bands)
            ax.set_ylabel(name if col == 0 else "")
            if row_index == 0:
                ax.set_title(PROTOCOL_NAMES.get(protocol, protocol), fontsize=11)
            else:
                ax.set_xlabel("Pre-training images (log scale)")
    seen: dict[str, Any] = {}
    for ax in axes.ravel():
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    seen.update(bands)
    figure.legend(list(seen.values()), list(seen), loc="lower center", ncol=min(len(seen), 3), frameon=False,
                  fontsize=9.5, handler_map={tuple: HandlerTuple(ndivide=1)})  # fmt: skip
    figure.tight_layout(rect=(0, 0.03 + 0.04 * math.ceil(len(seen) / 3), 1, 1))
    return to_png(figure)


# --- the table and the report section ------------------------------------------------------------------


def pool_label_table(
    rows: Sequence[Row], dataset: str, protocol: str, metric: str = "accuracy", floor: Floor | None = None
) -> Table:
    """Pool size × label fraction for the best method (mean ± sd, or one run's CI), ImageNet frozen below,
    then the test set's ``floor`` (the better of majority class and chance) where given.

    ★ marks a cell whose CI lies above ImageNet's at the same label fraction.
    """
    best = best_family(rows, dataset, protocol, metric)
    if best is None:
        raise ValueError(f"dataset '{dataset}' has no pre-training pool rows for protocol '{protocol}'")
    labels = label_fractions(rows, dataset, protocol)
    per_label = {f: scaling_points(rows, dataset, protocol, metric, f).get(best.family, []) for f in labels}
    references = {f: reference_band(rows, dataset, protocol, metric, f) for f in labels}
    pools = sorted({(p.pool_fraction, p.pool_images) for pts in per_label.values() for p in pts})
    body = []
    for fraction, images in pools:
        cells = [Cell(f"{images:,} images ({format_fraction(fraction)})")]
        for f in labels:
            point = next((p for p in per_label[f] if math.isclose(p.pool_fraction, fraction)), None)
            reference = references[f]
            if point is None:
                cells.append(Cell("–"))
                continue
            main, sub = format_stat(metric, point.stat)
            cells.append(Cell(main, sub, best=reference is not None and above(point, reference.point)))
        body.append(cells)
    named = next((r for r in references.values() if r is not None), None)
    if named is not None:
        cells = [Cell(named.name)]
        for f in labels:
            reference = references[f]
            cells.append(Cell(*format_stat(metric, reference.point.stat)) if reference else Cell("–"))
        body.append(cells)
    if floor is not None:
        body.append(
            [
                Cell("Floor (majority class / chance)"),
                *[Cell(format_metric(metric, floor.value(metric)))] * len(labels),
            ]
        )
    columns = ["Pre-training pool", *(f"Labels {format_fraction(f)}" for f in labels)]
    what = {"accuracy": "accuracy (%)", "auroc": "AUROC"}.get(metric, metric)
    caption = [
        Span(
            f"{best.label}, {PROTOCOL_NAMES.get(protocol, protocol)}: test {what} by pre-training pool size × "
            "fraction of training labels; mean ± sd over pre-training seeds (one run: its 95% CI)"
        )
    ]
    notes = [[Span("★", "strong"), Span(" its 95% CI lies above ImageNet's at the same label fraction.")]]
    return Table(columns, body, caption, notes, kind="study")


IMBALANCED_NOTE = (
    "The classes are imbalanced (the largest over 60% of the test images), so the verdict's primary metric is "
    "balanced accuracy. Balanced accuracy has no confidence interval in results.csv, so the crossover is "
    "stated in AUROC first, then in accuracy, which rewards predicting the largest class."
)


def crossover_metrics(primary_metric: str) -> tuple[str, ...]:
    """The metrics a crossover is stated in: accuracy, or AUROC first where classes are imbalanced (the
    verdict's primary metric, balanced accuracy, has no CI columns)."""
    return ("accuracy",) if primary_metric == "accuracy" else ("auroc", "accuracy")


def scaling_blocks(ctx: Context) -> list[Block]:
    """The report's scaling part (figure, crossover statements, pool × label table); empty for one pool."""
    rows = read_result_rows(ctx.run.root / RESULTS)
    if len(pool_fractions(rows, ctx.dataset)) < 2:
        return []
    blocks: list[Block] = [Heading("Pre-training-set scaling", 3)]
    caption = [
        Span(
            "Test accuracy (top) and AUROC (bottom) against the number of images in-domain pre-training used "
            "(log scale; nested pools, the same step budget, the same probes and test set), one panel per "
            "protocol; mean ± sd over pre-training seeds. Bands: the baselines' 95% CI, dashed at their value."
        )
    ]
    png = scaling_figure(rows, ctx.dataset)
    blocks += [Figure(f"{ctx.key}-scaling", png, caption, "Pre-training-set scaling curves")]
    fraction = full_label_fraction(rows, ctx.dataset)
    metrics = crossover_metrics(ctx.primary_metric)
    if len(metrics) > 1:
        blocks.append(Paragraph([Span(IMBALANCED_NOTE)], "note"))
    for protocol in pool_protocols(rows, ctx.dataset):
        for metric in metrics:
            result = crossover(
                rows, ctx.dataset, protocol, metric, fraction, ctx.run.predictions, ctx.n_bootstrap
            )
            if result is not None:
                kind = "verdict-better" if result.reached else "verdict-same"
                text = result.sentence(PROTOCOL_NAMES.get(protocol, protocol))
                blocks.append(Paragraph([Span(text)], kind))
    protocol = next((p for p in VERDICT_PROTOCOLS if p in pool_protocols(rows, ctx.dataset)), None)
    if protocol is not None:
        blocks.append(pool_label_table(rows, ctx.dataset, protocol, floor=ctx.table.floor))
    return [*blocks, provenance(ctx.run, RESULTS)]
