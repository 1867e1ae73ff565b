"""Cross-validation parts of the report: per-fold results with mean ± sd and the pooled out-of-fold scores,
and the side-by-side of a random (image-level) split against a grouped one on the same images."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from medssl.evaluate.metrics import classification_metrics
from medssl.report.context import Context, note, provenance, slug
from medssl.report.document import Block, Cell, Heading, Paragraph, Section, Span, Table
from medssl.report.rundir import RunDir
from medssl.report.tables import (
    METRIC_NAMES,
    PROTOCOL_NAMES,
    format_fraction,
    format_metric,
    study_table,
)
from medssl.report.verdict import METRIC_WORDS, points

POOLED = ("accuracy", "balanced_accuracy", "auroc")


def _fold_row(ctx: Context, encoder: str, label: str, protocol: str) -> list[Cell] | None:
    rows = ctx.rows_for(encoder, protocol)
    if not rows:
        return None
    seed = rows[0].seed
    by_fold = {r.fold: r.metric(ctx.primary_metric) for r in rows if r.seed == seed}
    not_applicable = {r.fold for r in rows if r.seed == seed and r.not_applicable}
    if not_applicable == set(by_fold):  # no fold where the protocol can work: the row says so throughout
        return [Cell(label, code=encoder), Cell(PROTOCOL_NAMES.get(protocol, protocol))] + [
            Cell("n/a", "not applicable") for _ in range(ctx.folds + 1 + len(POOLED))
        ]
    values = np.array([v for v in by_fold.values() if math.isfinite(v)])
    cells = [Cell(label, code=encoder), Cell(PROTOCOL_NAMES.get(protocol, protocol))]
    cells += [
        Cell("n/a", "not applicable")
        if k in not_applicable
        else Cell(format_metric(ctx.primary_metric, by_fold.get(k, math.nan)))
        for k in range(1, ctx.folds + 1)
    ]
    sd = f"± {format_metric(ctx.primary_metric, float(np.std(values, ddof=1)))}" if len(values) > 1 else ""
    cells.append(
        Cell(format_metric(ctx.primary_metric, float(values.mean()) if len(values) else math.nan), sd)
    )
    pooled, _ = ctx.predictions(encoder, protocol, seed)
    scores = classification_metrics(pooled["y_true"], pooled["y_prob"]) if pooled is not None else {}
    cells += [Cell(format_metric(m, scores.get(m, math.nan))) for m in POOLED]
    return cells


def fold_blocks(ctx: Context) -> list[Block]:
    """Under cross-validation: each encoder × protocol per fold, mean ± sd, and the pooled out-of-fold
    accuracy, balanced accuracy and AUROC (every image predicted once, by the fold that held it out)."""
    if not ctx.folds:
        return []
    metric = METRIC_NAMES[ctx.primary_metric]
    columns = ["Encoder", "Protocol", *[f"Fold {k}" for k in range(1, ctx.folds + 1)], f"Mean {metric}"]
    columns += [f"Pooled {METRIC_NAMES[m]}" for m in POOLED]
    body = [
        row
        for encoder, label in ctx.labels.items()
        for protocol in ctx.table.protocols
        if (row := _fold_row(ctx, encoder, protocol=protocol, label=label)) is not None
    ]
    caption = [
        Span(
            f"{ctx.folds}-fold grouped cross-validation at label fraction {format_fraction(ctx.table.fraction)}: "
            f"{METRIC_WORDS[ctx.primary_metric]} (%) of each fold's held-out groups, their mean ± sd, and the "
            "scores of the out-of-fold predictions pooled over all folds (every image tested exactly once)."
        )
    ]
    finished = {r.fold for r in ctx.run.results if r.dataset == ctx.dataset and r.fold}
    unfinished = [
        note(
            f"{len(finished)} of {ctx.folds} folds have results: the pooled out-of-fold scores, pooled confusion "
            "matrices and the verdict need every fold; rerun the same `medssl benchmark` command to continue."
        )
    ]
    return [
        Heading("Cross-validation: per fold and pooled out-of-fold", 3),
        *(unfinished if len(finished) < ctx.folds else []),
        Table(columns, body, caption, kind="summary"),
        provenance(ctx.run, "results.csv", f"{ctx.dataset}/fold*/eval/*/predictions/*.npz"),
    ]


def _policy(run: RunDir, name: str) -> str:
    summary = run.split_summary(name)
    if summary is None:
        return ""
    return f"grouped {summary.folds}-fold CV" if summary.folds else summary.policy


def policy_pairs(run: RunDir, datasets: list[str]) -> list[tuple[str, str]]:
    """(random-split dataset, grouped dataset) pairs that point at the same images."""
    settings = run.config.get("datasets") or {}

    def path(name: str) -> str:
        entry = settings.get(name)
        return str(Path(str(entry.get("path", ""))).expanduser()) if isinstance(entry, dict) else ""

    random = [d for d in datasets if _policy(run, d) == "random"]
    grouped = [d for d in datasets if _policy(run, d) not in ("", "random")]
    return [(r, g) for r in random for g in grouped if path(r) and path(r) == path(g)]


TABLE = ("accuracy", "balanced_accuracy")


def _pair_rows(run: RunDir, tile: str, honest: str) -> list[list[Cell]]:
    tile_table, honest_table = study_table(run.results, tile), study_table(run.results, honest)
    body = []
    for row in honest_table.rows:
        for protocol in honest_table.protocols:
            a, b = tile_table.cell(row.info.encoder, protocol), row.cells.get(protocol)
            if a is None or b is None:
                continue
            cells = [
                Cell(row.info.label, code=row.info.encoder),
                Cell(PROTOCOL_NAMES.get(protocol, protocol)),
            ]
            for metric in TABLE:
                x, y = a.stats[metric].mean, b.stats[metric].mean
                gap = points(x - y) if math.isfinite(x - y) else "–"
                cells += [
                    Cell(format_metric(metric, x)),
                    Cell(format_metric(metric, y)),
                    Cell(gap, warn=x - y > 0),
                ]
            body.append(cells)
    return body


def comparison_section(run: RunDir, datasets: list[str]) -> Section | None:
    """'Random vs grouped split': per encoder and protocol, how many points the image-level split adds."""
    pairs = policy_pairs(run, datasets)
    if not pairs:
        return None
    blocks: list[Block] = []
    for tile, honest in pairs:
        columns = ["Encoder", "Protocol"]
        for metric in TABLE:
            name = METRIC_NAMES[metric]
            columns += [f"{name} {tile}", f"{name} {honest}", "Inflation (points)"]
        body = _pair_rows(run, tile, honest)
        caption = [
            Span(
                f"The same images under two protocols: {tile} ({_policy(run, tile)}, image-level) and {honest} "
                f"({_policy(run, honest)}). Inflation = {tile} − {honest} in percentage points; positive means "
                "the random split overstates the encoder, because images of one group (slide, patient) are on "
                "both sides and a model can match the group instead of the class."
            )
        ]
        blocks += [Heading(f"{tile} vs {honest}", 3)]
        blocks += (
            [Table(columns, body, caption, kind="summary")] if body else [note("No encoder ran under both.")]
        )
        blocks.append(provenance(run, "results.csv", f"{tile}/split.csv", f"{honest}/split.csv"))
    text = (
        "How much a random (image-level) split inflates each encoder, against a grouped split of the same "
        "images. Trust the grouped numbers."
    )
    intro = Paragraph([Span(text)])
    return Section("Split protocols side by side", slug("split protocols"), [intro, *blocks])
