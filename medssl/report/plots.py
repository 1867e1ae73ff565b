"""The figure parts of a dataset's section: label efficiency, training curves, t-SNE, confusion, retrieval."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix

from medssl.report import figures
from medssl.report.context import Context, note, provenance, slug
from medssl.report.document import Block, Figure, Gallery, Heading, Span
from medssl.report.tables import PROTOCOL_NAMES, best_protocol, format_fraction, label_efficiency


def label_efficiency_blocks(ctx: Context) -> list[Block]:
    blocks: list[Block] = [Heading("Label efficiency", 3)]
    curves = label_efficiency(ctx.run.results, ctx.dataset)
    fractions = {p.fraction for by_encoder in curves.values() for pts in by_encoder.values() for p in pts}
    if len(fractions) < 2:
        text = (
            "Only one label fraction was run, so there is no curve; add label fractions to the study config."
        )
        return [*blocks, note(text)]
    dashed = {row.info.encoder for row in ctx.table.rows if not row.info.is_ssl}
    png = figures.label_efficiency_figure(curves, ctx.labels, ctx.palette, dashed)
    caption = [
        Span(
            "Test accuracy (top) and AUROC (bottom) against the fraction of training labels the probe used "
            "(log scale), one panel per protocol; mean ± sd over seeds. Solid: SSL; dashed: baselines."
        )
    ]
    figure = Figure(f"{ctx.key}-label-efficiency", png, caption, "Label-efficiency curves")
    return [*blocks, figure, provenance(ctx.run, "results.csv")]


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
    caption = [
        Span(
            "Per pre-training run: training loss, kNN accuracy on the validation split, and effective rank "
            "of the embeddings (higher = less collapsed) against epoch."
        )
    ]
    where = f"{ctx.dataset}/fold{ctx.feature_fold}" if ctx.feature_fold else ctx.dataset
    files = [f"{where}/pretrain/{e}/history.csv" for e in histories]
    figure = Figure(f"{ctx.key}-training", png, caption, "Pre-training curves")
    return [*blocks, figure, provenance(ctx.run, *files)]


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
    """The same maps coloured by group (slide, patient), or nothing where groups are unknown or single."""
    groups = ctx.split.groups if ctx.split else []
    names = sorted(set(groups) - {""})
    if len(names) < 2:
        return [], []
    code = {name: i for i, name in enumerate(names)}
    recoloured = []
    for panel in panels:
        if panel.data is None or panel.index is None or int(panel.index.max()) >= len(groups):
            continue
        colours = np.array([code.get(groups[int(i)], 0) for i in panel.index])
        recoloured.append(figures.Panel(panel.title, panel.data, colours, index=panel.index))
    return recoloured, names


def tsne_blocks(ctx: Context) -> list[Block]:
    blocks: list[Block] = [Heading("Embeddings (t-SNE of test features)", 3)]
    panels = [_tsne_panel(ctx, encoder, label) for encoder, label in ctx.labels.items()]
    if not any(p.data is not None for p in panels):
        return [*blocks, note("No encoder has test features to map.")]
    png = figures.tsne_figure(panels, ctx.class_names)
    fold = f" of fold {ctx.feature_fold}" if ctx.feature_fold else ""
    caption = [
        Span(
            f"t-SNE maps of each encoder's test-set features{fold} (cosine geometry), coloured by true class. "
            "Well-separated colours mean a simple probe can tell the classes apart."
        )
    ]
    where = f"{ctx.dataset}/fold{ctx.feature_fold}" if ctx.feature_fold else ctx.dataset
    blocks += [Figure(f"{ctx.key}-tsne", png, caption, "t-SNE maps of test features")]
    grouped, names = _by_group(ctx, panels)
    if grouped:
        kind = ctx.split.group_kind if ctx.split else "group"
        caption = [
            Span(
                f"The same maps coloured by {kind}: where one {kind}'s images cluster apart from the rest, the "
                f"encoder sees the {kind} (stain, scanner) more than the class, and an image-level split leaks."
            )
        ]
        png = figures.tsne_figure(grouped, names)
        blocks.append(Figure(f"{ctx.key}-tsne-groups", png, caption, f"t-SNE maps by {kind}"))
    return [*blocks, provenance(ctx.run, f"{where}/eval/*/features.npz", f"{ctx.dataset}/split.csv")]


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
    caption = [
        Span(label, "strong"),
        Span(
            f": {len(sample['query_labels'])} test images (left) and their {k} nearest training images by cosine "
            f"similarity of features; red border = a different class. Over all {n_test} test images, "
            f"{100 * float(sample['agreement']):.1f}% of the {k} nearest neighbours share the query's class."
        ),
    ]
    return Figure(f"{ctx.key}-retrieval-{slug(encoder)}", png, caption, f"Retrieval: {label}", wide=False)


def retrieval_blocks(ctx: Context) -> list[Block]:
    blocks: list[Block] = [Heading("Nearest-neighbour retrieval", 3)]
    gallery = []
    for encoder, label in ctx.labels.items():
        sample = ctx.run.retrieval(ctx.dataset, encoder, ctx.feature_fold)
        if sample is not None and len(sample["query_labels"]):
            gallery.append(_retrieval_figure(ctx, encoder, label, sample))
    if not gallery:
        return [*blocks, note("No encoder has retrieval images (they are written with the features).")]
    return [*blocks, Gallery(gallery), provenance(ctx.run, f"{ctx.dataset}/eval/*/retrieval.npz")]


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
