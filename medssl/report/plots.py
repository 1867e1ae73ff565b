"""The figure parts of a dataset's section: label efficiency, training curves, t-SNE, confusion, retrieval."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix

from medssl.common.knn import nearest_neighbours
from medssl.report import figures
from medssl.report.context import Context, note, provenance, slug
from medssl.report.document import Block, Figure, Gallery, Heading, Span
from medssl.report.tables import PROTOCOL_NAMES, best_protocol, format_fraction, label_efficiency

RETRIEVAL_QUERIES = 6
RETRIEVAL_K = 5
FEATURE_KEYS = ("train", "test", "train_index", "test_index", "train_labels", "test_labels")


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


def query_positions(labels: np.ndarray, count: int) -> np.ndarray:
    """Up to ``count`` test positions, cycling through the classes (first of each class, then second...)."""
    per_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    chosen: list[int] = []
    for rank in range(max((len(p) for p in per_class), default=0)):
        chosen += [int(p[rank]) for p in per_class if rank < len(p)]
    return np.array(chosen[:count], dtype=np.int64)


def _matches(features: dict[str, np.ndarray], images: np.ndarray, labels: np.ndarray) -> bool:
    """Whether the features' image indices and labels agree with the dataset loaded now."""
    indices = np.concatenate([features["train_index"], features["test_index"]])
    if len(indices) == 0 or indices.min() < 0 or indices.max() >= len(images):
        return False
    return np.array_equal(labels[features["train_index"]], features["train_labels"]) and np.array_equal(
        labels[features["test_index"]], features["test_labels"]
    )


def _retrieval_figure(ctx: Context, encoder: str, label: str, f: dict[str, np.ndarray], images) -> Figure:
    k = min(RETRIEVAL_K, len(f["train"]))
    nearest = nearest_neighbours(f["train"], f["test"], k)
    agreement = 100 * float(np.mean(f["train_labels"][nearest] == f["test_labels"][:, None]))
    q = query_positions(f["test_labels"], RETRIEVAL_QUERIES)
    png = figures.retrieval_figure(
        images[f["test_index"][q]],
        f["test_labels"][q],
        images[f["train_index"][nearest[q]]],
        f["train_labels"][nearest[q]],
        ctx.class_names,
    )
    caption = [
        Span(label, "strong"),
        Span(
            f": {len(q)} test images (left) and their {k} nearest training images by cosine similarity of "
            f"features; red border = a different class. Over all {len(f['test'])} test images, "
            f"{agreement:.1f}% of the {k} nearest neighbours share the query's class."
        ),
    ]
    return Figure(f"{ctx.key}-retrieval-{slug(encoder)}", png, caption, f"Retrieval: {label}", wide=False)


def retrieval_blocks(ctx: Context) -> list[Block]:
    blocks: list[Block] = [Heading("Nearest-neighbour retrieval", 3)]
    pixels = ctx.run.pixels(ctx.dataset)
    if pixels.images is None or pixels.labels is None:
        return [
            *blocks,
            note(f"Pictures skipped: {pixels.problem}. The numbers and other figures are unaffected."),
        ]
    gallery, mismatched = [], []
    for encoder, label in ctx.labels.items():
        f = ctx.run.features(ctx.dataset, encoder, ctx.feature_fold)
        if f is None or any(key not in f for key in FEATURE_KEYS) or len(f["test"]) == 0:
            continue
        if not _matches(f, pixels.images, pixels.labels):
            mismatched.append(label)
            continue
        gallery.append(_retrieval_figure(ctx, encoder, label, f, pixels.images))
    if mismatched:
        blocks.append(
            note(f"Skipped {', '.join(mismatched)}: the dataset's images no longer match the features.")
        )
    if not gallery:
        return blocks if mismatched else [*blocks, note("No encoder has features to retrieve with.")]
    return [
        *blocks,
        Gallery(gallery),
        provenance(ctx.run, f"{ctx.dataset}/eval/*/features.npz", "config.yaml"),
    ]


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
