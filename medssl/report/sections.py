"""Assemble the report ``Document``: an overview, then per dataset the study table, verdict and figures."""

from __future__ import annotations

import numpy as np

from medssl.report.budget import budget_status
from medssl.report.context import Context, note, provenance, slug
from medssl.report.crossval import comparison_section, fold_blocks
from medssl.report.document import (
    Block,
    Cell,
    Code,
    Document,
    Heading,
    Inline,
    Paragraph,
    Section,
    Span,
    Style,
    Table,
)
from medssl.report.finetune_rule import finetune_rule_blocks
from medssl.report.plots import (
    augment_blocks,
    confusion_blocks,
    label_efficiency_blocks,
    retrieval_blocks,
    training_blocks,
    tsne_blocks,
)
from medssl.report.probe_shift import probe_shift_blocks
from medssl.report.rundir import RunDir, SplitSummary
from medssl.report.scaling_report import scaling_blocks
from medssl.report.tables import (
    METRIC_NAMES,
    PROTOCOL_NAMES,
    TABLE_METRICS,
    Floor,
    StudyCell,
    StudyRow,
    StudyTable,
    format_fraction,
    format_metric,
    format_stat,
    fraction_tables,
    study_table,
)
from medssl.report.verdict import METRIC_WORDS, verdict_blocks

OVERVIEW_COLUMNS = ["Dataset", "Classes", "Split", "Train", "Val", "Test", "Groups", "Image size"]


def _dataset_row(run: RunDir, name: str) -> list[Cell]:
    settings = (run.config.get("datasets") or {}).get(name)
    settings = settings if isinstance(settings, dict) else {}
    sizes = run.image_sizes(name) or ([settings["image_size"]] if settings.get("image_size") else [])
    size = " / ".join(f"{s} px" for s in sizes) or "–"  # what the rows were made with, where recorded
    first = Cell(name, code=str(settings.get("path", "")))
    summary = run.split_summary(name)
    if summary is None:
        return [first, *[Cell("–")] * 6, Cell(size)]
    totals = {part: sum(counts) for part, counts in summary.counts.items()}
    every_image = (
        summary.counts.get("test", []) if summary.folds else np.sum(list(summary.counts.values()), axis=0)
    )
    classes = ", ".join(f"{c} ({int(n)})" for c, n in zip(summary.classes, every_image, strict=True))
    counts = [Cell(str(totals.get(part, 0))) for part in ("train", "val", "test")]
    groups = Cell(str(summary.patients), sub=f"{summary.group_kind}s") if summary.patients else Cell("–")
    return [
        first,
        Cell(str(len(summary.classes)), sub=classes),
        split_cell(summary),
        *counts,
        groups,
        Cell(size),
    ]


def split_cell(summary: SplitSummary) -> Cell:
    """The split policy: 'grouped, 5-fold CV', 'grouped' or '⚠ random (image-level)'."""
    policy = summary.policy or "not recorded"
    if summary.folds:
        return Cell(f"{policy}, {summary.folds}-fold CV", sub="train/val: fold 1; test: every image once")
    if policy == "random":
        return Cell("⚠ random", sub="image-level: leaks groups", warn=True)
    return Cell(policy)


def leakage_warning(summary: SplitSummary | None, dataset: str) -> str | None:
    """The warning for a ``split: random`` dataset whose groups straddle train and test (None otherwise)."""
    if summary is None or summary.policy != "random":
        return None
    kind = summary.group_kind
    shared = len(summary.straddling)
    where = (
        f"{shared} of {summary.patients} {kind}s have images in both the training and the test set"
        if summary.patients
        else f"the {kind}s are unknown, so images of one {kind} may sit on both sides"
    )
    return (
        f"Leakage warning ({dataset}): split: random splits image by image; {where}. A model can match the "
        f"{kind} (stain, scanner) instead of the class, so these test scores are inflated. Use split: grouped "
        "or folds: K for an honest estimate."
    )


def overview(run: RunDir, datasets: list[str]) -> Section:
    """Datasets with their classes and split sizes, and the command that reproduces the run."""
    caption = [Span("Datasets in this run (images per split, from each dataset's split.csv)")]
    rows = [_dataset_row(run, name) for name in datasets]
    blocks: list[Block] = [Table(OVERVIEW_COLUMNS, rows, caption=caption, kind="summary")]
    for name in datasets:
        warning = leakage_warning(run.split_summary(name), name)
        if warning:
            blocks.append(Paragraph([Span(warning)], "note"))
    if not run.results:
        blocks.insert(
            0, note("results.csv has no finished rows yet; run `medssl report` again when cells finish.")
        )
    blocks[:0] = [note(f"Warning: {problem}.") for problem in run.problems]
    if run.meta("command"):
        blocks += [
            Paragraph([Span("Reproduce every number in this report with:")]),
            Code(run.meta("command")),
        ]
    blocks.append(provenance(run, "config.yaml", *[f"{d}/split.csv" for d in datasets]))
    return Section("Overview", "overview", blocks)


FLAG_NOTES: dict[str, tuple[str, Style, str]] = {
    "floor": (
        "Floor",
        "strong",
        ": what a classifier scores without looking at the images, from the test labels: always predicting "
        "the largest class (its accuracy is that class's share), and a uniform random guess (accuracy 1/K); "
        "both have balanced accuracy 1/K and AUROC 0.5.",
    ),
    "warn": (
        "⚠ collapsed or at the floor",
        "warn",
        ": collapsed (one class gets ≥95% of the predictions, or balanced accuracy is no better than chance) "
        "in at least one seed, or at or below the floor in that metric; these numbers are not the encoder's "
        "skill and are never marked best or picked for the verdict.",
    ),
    "n/a": (
        "n/a",
        "strong",
        ": not applicable, the protocol cannot work on this cell (a kNN whose k is at least the number of "
        "labelled images gives every test image the same vote), so it is not reported as the encoder's "
        "result; results.csv says why in not_applicable.",
    ),
}
"""The legend line of each flag a table shows: (label, style, text)."""


def _legend(seed_counts: set[int], flags: set[str], unit: str = "seeds") -> list[Inline]:
    spread = []
    several = sorted(n for n in seed_counts if n > 1)
    if several:
        spread.append(
            f"the mean over {'/'.join(map(str, several))} {unit} with the standard deviation (±) below"
        )
    if 1 in seed_counts:
        spread.append("for a single run, the value with its 95% bootstrap confidence interval below")
    notes: list[Inline] = [
        [
            Span("★", "strong"),
            Span(
                " best in its column. Acc = accuracy, Bal. acc = balanced accuracy (both in %), AUROC = "
                f"macro one-vs-rest. Cells show {'; '.join(spread) or 'no values'}. ImageNet × Fine-tune is "
                "ImageNet fine-tuned; Random init × Fine-tune is supervised training from scratch."
            ),
        ]
    ]
    notes += [
        [Span(label, style), Span(text)] for flag, (label, style, text) in FLAG_NOTES.items() if flag in flags
    ]
    return notes


Column = tuple[StudyTable, str, str]
"""One column of an encoder table: the study table at a label fraction, a protocol and a metric."""


def _floor_rows(floor: Floor | None, class_names: list[str], columns: list[Column]) -> list[list[Cell]]:
    """The majority-class and chance rows under ``columns``."""
    if floor is None:
        return []
    majority = class_names[floor.majority] if floor.majority < len(class_names) else ""
    names = {
        "majority": f"Majority class (always {majority})" if majority else "Majority class",
        "chance": "Chance (uniform random guess)",
    }
    return [
        [Cell(names[key]), *[Cell(format_metric(metric, values[metric])) for _, _, metric in columns]]
        for key, values in floor.rows().items()
    ]


def _metric_cell(cell: StudyCell, metric: str) -> Cell:
    if cell.not_applicable:
        return Cell("n/a", "not applicable")
    main, sub = format_stat(metric, cell.stats[metric])
    return Cell(main, sub, best=metric in cell.best, warn=cell.collapsed or metric in cell.floor)


def _flags(cell: StudyCell) -> set[str]:
    return {"n/a"} if cell.not_applicable else {"warn"} if cell.collapsed or cell.floor else set()


def _encoder_table(
    rows: list[StudyRow],
    columns: list[Column],
    class_names: list[str],
    notes: dict[str, str],
    unit: str,
) -> tuple[list[list[Cell]], dict[int, str], list[Inline]]:
    """(body, row headings, legend) of a table of encoders (SSL first, then baselines) and the floor rows."""
    body, headings, seed_counts, flags = [], {}, set(), set()
    for i, row in enumerate(rows):
        if i == 0 or row.info.is_ssl != rows[i - 1].info.is_ssl:
            headings[i] = "In-domain self-supervised" if row.info.is_ssl else "Baselines"
        cells = [Cell(row.info.label, notes.get(row.info.encoder, ""), code=row.info.encoder)]
        for table, protocol, metric in columns:
            cell = table.cell(row.info.encoder, protocol)
            if cell is None:
                cells.append(Cell("–"))
                continue
            seed_counts.add(len(cell.seeds))
            flags |= _flags(cell)
            cells.append(_metric_cell(cell, metric))
        body.append(cells)
    floor_rows = _floor_rows(columns[0][0].floor if columns else None, class_names, columns)
    if floor_rows:
        headings[len(body)] = "Floor (from the test labels)"
        body += floor_rows
        flags.add("floor")
    return body, headings, _legend(seed_counts, flags, unit)


def table_block(
    table: StudyTable,
    folds: int = 0,
    class_names: list[str] | None = None,
    notes: dict[str, str] | None = None,
) -> Table:
    """The study table: encoders (SSL first, then baselines) × protocols × (accuracy, AUROC, bal. acc.), then
    the floor rows. ``notes`` adds a line under an encoder's name (e.g. 'still improving')."""
    columns, groups = ["Encoder"], [("", 1)]
    for protocol in table.protocols:
        columns += [METRIC_NAMES[m] for m in TABLE_METRICS]
        groups.append((PROTOCOL_NAMES.get(protocol, protocol), len(TABLE_METRICS)))
    shown = [(table, protocol, metric) for protocol in table.protocols for metric in TABLE_METRICS]
    unit = "folds × seeds" if folds else "seeds"
    body, headings, legend = _encoder_table(table.rows, shown, class_names or [], notes or {}, unit)
    tested = f" ({table.n_test} test images)" if table.n_test else ""
    if folds:
        tested = f", {folds}-fold cross-validation (mean ± sd over folds × seeds; up to {table.n_test} test images a fold)"
    caption = [Span(f"Test-set results at label fraction {format_fraction(table.fraction)}{tested}")]
    return Table(columns, body, caption, legend, groups, headings, kind="study")


def fraction_block(
    tables: list[StudyTable], metric: str, class_names: list[str], folds: int = 0
) -> list[Block]:
    """The primary metric of every encoder × protocol at every label fraction run, with the floor rows."""
    if len(tables) < 2:
        return []
    columns, groups = ["Encoder"], [("", 1)]
    for protocol in tables[0].protocols:
        columns += [format_fraction(t.fraction) for t in tables]
        groups.append((PROTOCOL_NAMES.get(protocol, protocol), len(tables)))
    shown = [(table, protocol, metric) for protocol in tables[0].protocols for table in tables]
    unit = "folds × seeds" if folds else "seeds"
    body, headings, legend = _encoder_table(tables[0].rows, shown, class_names, {}, unit)
    caption = [
        Span(
            f"{METRIC_WORDS[metric].capitalize()} (%) at every label fraction run (column = label "
            f"fraction): where a protocol cannot work, where a cell sits at the floor, and how each encoder "
            "holds up with fewer labels."
        )
    ]
    return [
        Heading("Results at every label fraction", 3),
        Table(columns, body, caption, legend, groups, headings, kind="fractions"),
    ]


def _class_count(run: RunDir, dataset: str) -> int:
    """Classes in split.csv, widened to the probability columns of the dataset's first predictions file."""
    summary = run.split_summary(dataset)
    count = len(summary.classes) if summary is not None else 0
    for r in run.results:
        data = run.predictions(r.predictions) if r.dataset == dataset else None
        if data is not None and "y_prob" in data:
            return max(count, int(data["y_prob"].shape[1]), 2)
    return max(count, 2)


def _budget_notes(ctx: Context) -> dict[str, str]:
    """Encoder id → 'still improving' / 'converged' under its name in the study table."""
    return {encoder: budget_status(budgets) for encoder, budgets in ctx.budgets.items()}


def dataset_section(run: RunDir, dataset: str, index: int, n_bootstrap: int) -> Section:
    floor = Floor.of(run.test_counts(dataset))
    table = study_table(run.results, dataset, floor=floor)
    classes = run.class_names(dataset, _class_count(run, dataset))
    tables = fraction_tables(run.results, dataset, floor)
    ctx = Context(run, dataset, f"d{index}-{slug(dataset)}", table, classes, n_bootstrap, tables)
    warning = leakage_warning(ctx.split, dataset)
    blocks: list[Block] = [
        *([Paragraph([Span(warning)], "note")] if warning else []),
        table_block(table, ctx.folds, classes, _budget_notes(ctx)),
        provenance(run, "results.csv"),
        *fraction_block(tables, ctx.primary_metric, classes, ctx.folds),
        *([provenance(run, "results.csv")] if len(tables) > 1 else []),
        *finetune_rule_blocks(ctx),
        *probe_shift_blocks(ctx),
        *fold_blocks(ctx),
        *verdict_blocks(ctx),
        *scaling_blocks(ctx),
        *label_efficiency_blocks(ctx),
        *training_blocks(ctx),
        *tsne_blocks(ctx),
        *confusion_blocks(ctx),
        *retrieval_blocks(ctx),
        *augment_blocks(ctx),
    ]
    return Section(dataset, ctx.key, blocks)


def build_document(run: RunDir, n_bootstrap: int = 2000) -> Document:
    """The whole report of a run directory."""
    datasets = run.datasets()
    evaluations = len({(r.dataset, r.encoder) for r in run.results})
    question = "In-domain self-supervised pre-training vs ImageNet transfer"
    question += " vs frozen foundation models" if any(r.method == "foundation" for r in run.results) else ""
    subtitle = [
        Span(
            f"{question} · {len(datasets)} dataset(s), "
            f"{evaluations} encoder evaluations, {len(run.results)} result rows"
        )
    ]
    meta = [("Run directory", str(run.root))]
    labels = (("command", "Command"), ("machine", "Machine"), ("started", "Started"))
    meta += [(label, run.meta(key)) for key, label in labels if run.meta(key)]
    sections = [overview(run, datasets)]
    comparison = comparison_section(run, datasets)
    sections += [comparison] if comparison else []
    sections += [dataset_section(run, name, i, n_bootstrap) for i, name in enumerate(datasets, 1)]
    return Document(f"Study report: {run.root.resolve().name}", subtitle, meta, sections)
