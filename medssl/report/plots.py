"""The figure parts of a dataset's section: label efficiency, training curves, t-SNE, confusion, retrieval."""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import confusion_matrix

from medssl.report import figures
from medssl.report.budget import GAIN, MONITORS, Budget, budget_status, duration
from medssl.report.context import Context, note, provenance, slug
from medssl.report.document import Block, Cell, Figure, Gallery, Heading, Span, Table
from medssl.report.tables import (
    CONTENDERS,
    PROTOCOL_NAMES,
    Contender,
    best_protocol,
    format_fraction,
    kind_curves,
    kinds_present,
    label_efficiency,
)
from medssl.report.verdict import METRIC_WORDS


def label_efficiency_blocks(ctx: Context) -> list[Block]:
    blocks: list[Block] = [Heading("Label efficiency", 3)]
    curves = label_efficiency(ctx.run.results, ctx.dataset)
    fractions = {p.fraction for by_encoder in curves.values() for pts in by_encoder.values() for p in pts}
    if len(fractions) < 2:
        text = (
            "Only one label fraction was run, so there is no curve; add label fractions to the study config."
        )
        return [*blocks, note(text)]
    blocks += kinds_figure_blocks(ctx)
    dashed = {row.info.encoder for row in ctx.table.rows if not row.info.is_ssl}
    style = figures.CurveStyle(ctx.labels, ctx.palette, dashed, floor=floor_values(ctx))
    png = figures.to_png(figures.draw_label_efficiency(curves, style))
    caption = [
        Span(
            "Test accuracy (top) and AUROC (bottom) against the fraction of training labels the probe used "
            "(log scale), one panel per protocol; mean ± sd over seeds. Solid: SSL; dashed: baselines"
            + ("; dotted grey: the floor, the better of majority class and chance." if style.floor else ".")
        )
    ]
    figure = Figure(f"{ctx.key}-label-efficiency", png, caption, "Label-efficiency curves")
    return [*blocks, figure, provenance(ctx.run, "results.csv")]


def floor_values(ctx: Context) -> dict[str, float]:
    """Accuracy and AUROC of the test set's floor (none where the test labels are unknown)."""
    floor = ctx.table.floor
    return {} if floor is None else {m: floor.value(m) for m in ("accuracy", "auroc")}


def kind_legend(contenders: list[Contender]) -> dict[str, str]:
    """Contender key → its curve's legend entry: 'Best foundation model'."""
    return {c.key: f"Best {c.title}" for c in contenders}


def kinds_figure_blocks(ctx: Context) -> list[Block]:
    """Where a foundation model is in the study: the best encoder of each kind against the label fraction, the
    three groups of the verdict, each with its 95% CI."""
    kinds = kinds_present(ctx.table)
    if len(kinds) < 2 or all(c.key != "foundation" for c in kinds):
        return []
    curves = kind_curves(ctx.by_fraction, kinds, ctx.primary_metric)
    palette = figures.colours([c.key for c in CONTENDERS])
    style = figures.CurveStyle(kind_legend(kinds), palette, intervals=True, floor=floor_values(ctx))
    png = figures.to_png(figures.draw_label_efficiency(curves, style))
    picked = sorted({p.encoder for by_kind in curves.values() for pts in by_kind.values() for p in pts})
    caption = [
        Span(
            f"The verdict's {len(kinds)} groups: at each label fraction and protocol, the best encoder of each "
            f"kind by {METRIC_WORDS[ctx.primary_metric]} (never a collapsed, not-applicable or floor cell), "
            "its test accuracy (top) and AUROC (bottom); error bars: the 95% bootstrap CI over the test images "
            "of a single run, ± sd over seeds where there are several. Picked from: "
        ),
        *[span for i, e in enumerate(picked) for span in (Span(", " if i else ""), Span(e, "code"))],
        Span(". Every encoder's own curve is in the next figure."),
    ]
    figure = Figure(f"{ctx.key}-label-efficiency-kinds", png, caption, "Label efficiency: best of each kind")
    return [figure, provenance(ctx.run, "results.csv")]


def training_blocks(ctx: Context) -> list[Block]:
    blocks: list[Block] = [Heading("Pre-training curves", 3)]
    histories = ctx.run.histories(ctx.dataset, ctx.feature_fold)
    if not histories:
        return [
            *blocks,
            note("No pre-training history.csv (no self-supervised encoder was trained in this run)."),
        ]
    labels = ctx.labels
    palette = figures.colours(ctx.encoders + [e for e in histories if e not in labels])
    named = {labels.get(e, e): history for e, history in histories.items()}
    png = figures.training_curves_figure(named, {labels.get(e, e): c for e, c in palette.items()})
    runs = (
        f"Pre-training runs of {ctx.fold_shown} (each fold pre-trains on its own training images)"
        if ctx.folds
        else "Per pre-training run"
    )
    caption = [
        Span(
            f"{runs}: training loss, kNN accuracy on the validation split, and effective rank "
            "of the embeddings (higher = less collapsed) against epoch."
        )
    ]
    files = [f"{ctx.feature_dir}/pretrain/{e}/history.csv" for e in histories]
    figure = Figure(f"{ctx.key}-training", png, caption, "Pre-training curves")
    return [*blocks, figure, provenance(ctx.run, *files), *budget_blocks(ctx)]


def _budget_row(label: str, encoder: str, budgets: list[Budget]) -> list[Cell]:
    shown = budgets[0]
    values = [f"{100 * v:.1f}" for _, v in shown.monitors]
    epochs = f"epochs {shown.monitors[0][0]}–{shown.monitors[-1][0]}" if len(shown.monitors) > 1 else ""
    gain = f"{100 * shown.gain:+.1f}".replace("-", "−") if math.isfinite(shown.gain) else "–"
    speed = f"{shown.images_per_s:.0f}" if math.isfinite(shown.images_per_s) else "–"
    status = budget_status(budgets)
    return [
        Cell(label, code=encoder),
        Cell(str(shown.epochs)),
        Cell(" → ".join(values) or "–", epochs),
        Cell(gain),
        Cell(status),
        Cell(speed),
        Cell(duration(shown.more_seconds)),
    ]


def budget_blocks(ctx: Context) -> list[Block]:
    """Per SSL encoder: was it still improving when its budget ran out, and what would another budget cost."""
    labels = ctx.labels
    rows = [_budget_row(labels.get(e, e), e, budgets) for e, budgets in ctx.budgets.items()]
    if not rows:
        return []
    columns = ["Encoder", "Epochs", "Validation kNN (%)", "Projected gain (points)", "Status", "Images/s"]
    columns.append("Wall time")
    fold = f" ({ctx.fold_shown}; the status counts every fold)" if ctx.folds else ""
    caption = [
        Span(
            f"Pre-training budget{fold}: validation kNN at the last {MONITORS} monitors, the least-squares line "
            "through them projected over another budget as long as the one each encoder had (which would take "
            "about its wall time again). Still improving: a projected gain of at least "
            f"{100 * GAIN:.0f} point; the encoder's scores are then a lower bound. Converged: less than that "
            "(under a cosine schedule: its learning rate had run down); unknown: fewer than two monitors."
        )
    ]
    files = (
        f"{ctx.dataset}/fold*/pretrain/*/history.csv"
        if ctx.folds
        else f"{ctx.dataset}/pretrain/*/history.csv"
    )
    return [Table(columns, rows, caption, kind="summary"), provenance(ctx.run, files)]


def _subsample(n: int, limit: int) -> np.ndarray:
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, limit, replace=False))


def _tsne_panel(ctx: Context, encoder: str, title: str) -> figures.Panel:
    features = ctx.run.features(ctx.dataset, encoder, ctx.feature_fold)
    if features is None or "test" not in features or "test_labels" not in features:
        return figures.Panel(title, None, note="no features.npz")
    keep = _subsample(len(features["test"]), figures.TSNE_MAX_POINTS)
    test = features["test"][keep]
    if len(keep) < 5 or float(np.ptp(test, axis=0).max(initial=0.0)) < 1e-9:
        return figures.Panel(title, None, note="collapsed: constant features")
    try:
        xy = figures.tsne_embed(test)
    except (ValueError, FloatingPointError, np.linalg.LinAlgError) as error:
        return figures.Panel(title, None, note=f"t-SNE failed ({error.__class__.__name__})")
    return figures.Panel(title, xy, features["test_labels"][keep], index=features["test_index"][keep])


def _by_group(ctx: Context, panels: list[figures.Panel]) -> tuple[list[figures.Panel], list[str]]:
    """The same maps coloured by group (slide, patient), and the groups among their points (the legend), or
    nothing where groups are unknown or the points hold fewer than two."""
    groups = ctx.split.groups if ctx.split else []
    mapped = [
        p for p in panels if p.data is not None and p.index is not None and int(p.index.max()) < len(groups)
    ]
    names = sorted({groups[int(i)] for panel in mapped for i in panel.index} - {""})  # type: ignore[union-attr]
    if len(names) < 2:
        return [], []
    code = {name: i for i, name in enumerate(names)}
    recoloured = []
    for panel in mapped:
        colours = np.array([code.get(groups[int(i)], -1) for i in panel.index])  # type: ignore[union-attr]
        recoloured.append(figures.Panel(panel.title, panel.data, colours, index=panel.index))
    return recoloured, names


def tsne_blocks(ctx: Context) -> list[Block]:
    blocks: list[Block] = [Heading("Embeddings (t-SNE of test features)", 3)]
    panels = [_tsne_panel(ctx, encoder, label) for encoder, label in ctx.labels.items()]
    if not any(p.data is not None for p in panels):
        return [*blocks, note("No encoder has test features to map.")]
    png = figures.tsne_figure(panels, ctx.class_names)
    caption = [
        Span(
            "t-SNE maps of each encoder's test-set features (cosine geometry), coloured by true class. "
            f"Well-separated colours mean a simple probe can tell the classes apart.{_fold_caption(ctx)}"
        )
    ]
    alt = f"t-SNE maps of test features ({ctx.fold_shown})" if ctx.folds else "t-SNE maps of test features"
    blocks += [Figure(f"{ctx.key}-tsne", png, caption, alt)]
    grouped, names = _by_group(ctx, panels)
    if grouped:
        kind = ctx.split.group_kind if ctx.split else "group"
        total = len(set(ctx.split.groups) - {""}) if ctx.split else len(names)
        caption = [
            Span(
                f"The same maps coloured by {kind} ({len(names)} of the dataset's {total} {kind}s are in these "
                f"test images): where one {kind}'s images cluster apart from the rest, the encoder sees the "
                f"{kind} (stain, scanner) more than the class, and an image-level split leaks."
            )
        ]
        png = figures.tsne_figure(grouped, names)
        blocks.append(Figure(f"{ctx.key}-tsne-groups", png, caption, f"t-SNE maps by {kind}"))
    files = (f"{ctx.feature_dir}/eval/*/features.npz", f"{ctx.dataset}/split.csv")
    return [*blocks, provenance(ctx.run, *files)]


def _fold_caption(ctx: Context) -> str:
    """'' without cross-validation, else which fold the maps show and why only that one."""
    if not ctx.folds:
        return ""
    return (
        f" These are the test images of {ctx.fold_shown} only: each fold has its own encoders, so the other "
        f"folds' test images would need maps of their own. The tables cover all {ctx.folds} folds."
    )


def confusion_blocks(ctx: Context) -> list[Block]:
    blocks: list[Block] = [Heading("Confusion matrices", 3)]
    panels, files = [], []
    for encoder, label in ctx.labels.items():
        protocol = best_protocol(ctx.table, encoder)
        rows = ctx.rows_for(encoder, protocol) if protocol else []
        data, used = ctx.predictions(encoder, protocol, rows[0].seed) if protocol and rows else (None, [])
        if protocol is None or data is None or "y_true" not in data or "y_prob" not in data:
            panels.append(figures.Panel(label, None, note="no predictions file"))
            continue
        files += used
        predicted = data["y_prob"].argmax(axis=1)
        counts = confusion_matrix(data["y_true"], predicted, labels=np.arange(len(ctx.class_names)))
        accuracy = 100 * float(np.mean(predicted == data["y_true"]))
        subtitle = f"{PROTOCOL_NAMES.get(protocol, protocol)} · acc {accuracy:.1f}% · seed {rows[0].seed}"
        panels.append(figures.Panel(f"{label}\n{subtitle}", counts))
    if not files:
        return [*blocks, note("No prediction files found.")]
    png = figures.confusion_figure(panels, ctx.class_names)
    pooled = (
        f"pooled out-of-fold predictions of all {ctx.folds} folds (every image once), " if ctx.folds else ""
    )
    caption = [
        Span(
            "Test-set confusion matrix of each encoder with its best protocol at label fraction "
            f"{format_fraction(ctx.table.fraction)} ({pooled}first seed). Cells show counts; shading is the "
            "share of each true class; the diagonal's shares are the per-class recall."
        )
    ]
    figure = Figure(f"{ctx.key}-confusion", png, caption, "Confusion matrices")
    return [*blocks, figure, provenance(ctx.run, *files)]


def _retrieval_figure(ctx: Context, encoder: str, label: str, sample: dict[str, np.ndarray]) -> Figure:
    png = figures.retrieval_figure(
        sample["query_images"],
        sample["query_labels"],
        sample["neighbour_images"],
        sample["neighbour_labels"],
        ctx.class_names,
    )
    k, n_test = int(sample["k"]), int(sample["n_test"])
    of_fold = f" of {ctx.fold_shown}" if ctx.folds else ""
    over = (
        f"Over the {n_test} test images of {ctx.fold_shown}"
        if ctx.folds
        else f"Over all {n_test} test images"
    )
    caption = [
        Span(label, "strong"),
        Span(
            f": {len(sample['query_labels'])} test images{of_fold} (left) and their {k} nearest training images "
            f"by cosine similarity of features; red border = a different class. {over}, "
            f"{100 * float(sample['agreement']):.1f}% of the {k} nearest neighbours share the query's class"
            f"{_pooled_agreement(ctx, encoder)}."
        ),
    ]
    return Figure(f"{ctx.key}-retrieval-{slug(encoder)}", png, caption, f"Retrieval: {label}", wide=False)


def _pooled_agreement(ctx: Context, encoder: str) -> str:
    """Under cross-validation, the class agreement of the nearest neighbours over every fold's test images."""
    if not ctx.folds:
        return ""
    samples = [ctx.run.retrieval(ctx.dataset, encoder, fold) for fold in range(1, ctx.folds + 1)]
    if any(s is None for s in samples):
        return f" (not every fold has retrieval images, so there is no figure over all {ctx.folds} folds)"
    n_test = np.array([int(s["n_test"]) for s in samples if s is not None])
    agreement = np.array([float(s["agreement"]) for s in samples if s is not None])
    pooled = float((agreement * n_test).sum() / n_test.sum()) if n_test.sum() else float("nan")
    return f"; over all {int(n_test.sum())} test images of the {ctx.folds} folds, {100 * pooled:.1f}%"


def retrieval_blocks(ctx: Context) -> list[Block]:
    blocks: list[Block] = [Heading("Nearest-neighbour retrieval", 3)]
    gallery = []
    for encoder, label in ctx.labels.items():
        sample = ctx.run.retrieval(ctx.dataset, encoder, ctx.feature_fold)
        if sample is not None and len(sample["query_labels"]):
            gallery.append(_retrieval_figure(ctx, encoder, label, sample))
    if not gallery:
        return [*blocks, note("No encoder has retrieval images (they are written with the features).")]
    files = (
        f"{ctx.dataset}/fold*/eval/*/retrieval.npz" if ctx.folds else f"{ctx.dataset}/eval/*/retrieval.npz"
    )
    return [*blocks, Gallery(gallery), provenance(ctx.run, files)]


def augment_blocks(ctx: Context) -> list[Block]:
    png = ctx.run.augment_preview(ctx.dataset)
    if png is None:
        return []
    caption = [Span("Augmentation preview: training images and the random views the SSL methods learn from.")]
    return [
        Heading("Augmentation preview", 3),
        Figure(f"{ctx.key}-augment-preview", png, caption, "Augmentation preview"),
        provenance(ctx.run, f"{ctx.dataset}/augment_preview.png"),
    ]
