"""The report's figures, drawn with matplotlib (Agg, no pyplot state) and returned as PNG bytes."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import matplotlib
import numpy as np
from matplotlib.colors import hsv_to_rgb, to_hex
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from medssl.report.tables import PROTOCOL_NAMES, CurvePoint, Stat

TSNE_MAX_POINTS = 1500
OPENTSNE_MIN_POINTS = 100
HISTORY_PANELS = (
    ("loss", "Loss"),
    ("knn_accuracy", "Validation kNN accuracy"),
    ("effective_rank", "Effective rank"),
)
DODGE = 0.015
"""Sideways step between curves with error bars, in decades of the log label-fraction axis."""
_PALETTE = list(
    dict.fromkeys(
        to_hex(c) for name in ("tab10", "Dark2", "tab20", "tab20b") for c in matplotlib.colormaps[name].colors
    )
)
"""Distinct colours, the clearest first: tab10 and Dark2, then the lighter and darker shades of tab20(b)."""


def label_text(text: str, limit: int = 24) -> str:
    """Data text made safe for matplotlib: '$' would start mathtext; long names are shortened."""
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("$", r"\$")


def to_png(figure: Figure, dpi: int = 110) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(
        buffer, format="png", dpi=dpi, bbox_inches="tight", facecolor="white", metadata={"Software": None}
    )
    return buffer.getvalue()


def colours(keys: Sequence[str]) -> dict[str, str]:
    """A stable colour per key (encoder), shared by all figures of a dataset."""
    return {key: _PALETTE[i % len(_PALETTE)] for i, key in enumerate(keys)}


def class_colours(n_classes: int) -> list[str]:
    """A different colour for each of ``n_classes`` classes (or groups): the palette, or, for more than it
    holds, as many hues around the colour wheel, neighbours told apart by their brightness."""
    if n_classes <= len(_PALETTE):
        return _PALETTE[:n_classes]
    hues = np.arange(n_classes) / n_classes
    brightness = np.where(np.arange(n_classes) % 2, 0.6, 0.9)
    return [to_hex(hsv_to_rgb((h, 0.85, v))) for h, v in zip(hues, brightness, strict=True)]


def _error_bars(stats: list[Stat], scale: float, intervals: bool) -> np.ndarray:
    """(2, n) lower and upper error-bar lengths: ± sd over seeds, or with ``intervals`` a single run's 95% CI
    where one is recorded."""
    bars = np.zeros((2, len(stats)))
    for i, stat in enumerate(stats):
        if stat.n > 1 and math.isfinite(stat.sd):
            bars[:, i] = stat.sd
        elif intervals and math.isfinite(stat.ci_low) and math.isfinite(stat.ci_high):
            bars[:, i] = (stat.mean - stat.ci_low, stat.ci_high - stat.mean)
    return np.clip(np.nan_to_num(bars), 0, None) * scale


@dataclass(frozen=True)
class CurveStyle:
    """How the label-efficiency curves are drawn: their legend names, colours, dashed ones, and error bars
    (± sd over seeds; with ``intervals`` also a single run's 95% CI, and each curve nudged sideways so that
    the bars of one fraction do not hide each other)."""

    labels: dict[str, str]
    palette: dict[str, str]
    dashed: set[str] = field(default_factory=set)
    intervals: bool = False
    floor: dict[str, float] = field(default_factory=dict)
    """Metric → the score of a classifier that ignores the images (drawn as a grey dotted line)."""


def _curves(ax, curves: dict[str, list[CurvePoint]], metric: str, style: CurveStyle) -> None:
    """One panel's lines: ``metric`` of each curve against the label fraction, with its error bars."""
    scale = 100.0 if metric == "accuracy" else 1.0
    order = list(style.labels)
    for key, points in curves.items():
        stats = [getattr(p, metric) for p in points]
        rank = order.index(key) - (len(order) - 1) / 2 if style.intervals and key in order else 0
        ax.errorbar(
            np.array([p.fraction for p in points]) * 10 ** (DODGE * rank),
            np.array([s.mean for s in stats]) * scale,
            yerr=_error_bars(stats, scale, style.intervals),
            color=style.palette.get(key, "#333333"),
            linestyle="--" if key in style.dashed else "-",
            marker="o",
            markersize=4,
            capsize=2,
            linewidth=1.6,
            label=label_text(style.labels.get(key, key), 40),
        )


FLOOR_LABEL = "Floor (majority class / chance)"


def draw_label_efficiency(curves: dict[str, dict[str, list[CurvePoint]]], style: CurveStyle) -> Figure:
    """Accuracy (top) and AUROC (bottom) vs label fraction (log x): panel per protocol, line per curve (an
    encoder, or a kind's best encoder)."""
    columns = list(curves)
    figure = Figure(figsize=(max(3.4 * len(columns), 7.0), 6.8))
    axes = figure.subplots(2, len(columns), squeeze=False, sharex=True)
    for col, protocol in enumerate(columns):
        for row, (metric, name) in enumerate((("accuracy", "Accuracy (%)"), ("auroc", "AUROC"))):
            ax = axes[row][col]
            _curves(ax, curves[protocol], metric, style)
            if metric in style.floor:
                scale = 100.0 if metric == "accuracy" else 1.0
                ax.axhline(style.floor[metric] * scale, color="#888888", linestyle=":", label=FLOOR_LABEL)
            ax.set_xscale("log")
            ax.grid(True, which="both", alpha=0.25)
            ax.set_ylabel(name if col == 0 else "")
            if row == 0:
                ax.set_title(PROTOCOL_NAMES.get(protocol, protocol), fontsize=11)
            else:
                ax.set_xlabel("Label fraction (log scale)")
            fractions = sorted({p.fraction for pts in curves[protocol].values() for p in pts})
            ax.set_xticks(fractions, [f"{f:g}" for f in fractions])
            ax.minorticks_off()
    legend = {}
    for ax in axes[0]:  # every curve once, though a panel may lack some
        handles, names = ax.get_legend_handles_labels()
        legend |= {name: handle for name, handle in zip(names, handles, strict=True) if name not in legend}
    figure.legend(
        list(legend.values()),
        list(legend),
        loc="lower center",
        ncol=min(len(legend), 4),
        frameon=False,
        fontsize=9.5,
    )
    figure.tight_layout(rect=(0, 0.03 + 0.045 * math.ceil(len(legend) / 4), 1, 1))
    return figure


def training_curves_figure(histories: dict[str, dict[str, np.ndarray]], palette: dict[str, str]) -> bytes:
    """One row per pre-training run: loss, validation kNN accuracy and effective rank vs epoch."""
    figure = Figure(figsize=(11, 2.3 * len(histories) + 0.4))
    axes = figure.subplots(len(histories), len(HISTORY_PANELS), squeeze=False, sharex="row")
    for row, (name, history) in enumerate(histories.items()):
        epochs = history.get("epoch", np.arange(1, len(next(iter(history.values()))) + 1))
        for col, (column, title) in enumerate(HISTORY_PANELS):
            ax = axes[row][col]
            values = history.get(column)
            if values is None or not np.isfinite(values).any():
                ax.text(
                    0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes, color="#888"
                )
            else:
                scale = 100.0 if column == "knn_accuracy" else 1.0
                ax.plot(epochs, values * scale, color=palette.get(name, "#1f77b4"), marker=".", linewidth=1.6)
            ax.grid(True, alpha=0.25)
            if row == 0:
                ax.set_title(title + (" (%)" if column == "knn_accuracy" else ""), fontsize=11)
            if row == len(histories) - 1:
                ax.set_xlabel("Epoch")
            if col == 0:
                ax.set_ylabel(label_text(name, 28), fontsize=9)
    figure.tight_layout()
    return to_png(figure)


def tsne_embed(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D t-SNE of L2-normalised features: openTSNE, or scikit-learn's TSNE for very few points."""
    x = np.asarray(features, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    n = len(x)
    perplexity = float(max(2.0, min(30.0, (n - 1) / 3.0)))
    if n >= OPENTSNE_MIN_POINTS:
        from openTSNE import TSNE as OpenTSNE

        return np.asarray(OpenTSNE(perplexity=perplexity, n_jobs=1, random_state=seed, verbose=False).fit(x))
    from sklearn.manifold import TSNE

    tsne = TSNE(
        perplexity=min(perplexity, n - 1.0), init="pca", method="exact", max_iter=500, random_state=seed
    )
    return tsne.fit_transform(x)


@dataclass
class Panel:
    """One small-multiple panel: a title and either data or a note explaining why there is none."""

    title: str
    data: np.ndarray | None
    labels: np.ndarray | None = None
    note: str = ""
    index: np.ndarray | None = None
    """Dataset index of each point (t-SNE), so the same map can be coloured by group."""


def _grid(n: int, max_cols: int) -> tuple[int, int]:
    cols = min(n, max_cols)
    return math.ceil(n / cols), cols


def tsne_figure(panels: list[Panel], class_names: list[str]) -> bytes:
    """Small multiples of t-SNE maps coloured by class, one shared legend."""
    rows, cols = _grid(len(panels), 4)
    figure = Figure(figsize=(3.3 * cols, 3.3 * rows + 0.6))
    axes = figure.subplots(rows, cols, squeeze=False).ravel()
    tints = class_colours(len(class_names))
    for ax, panel in zip(axes, panels, strict=False):
        ax.set_title(label_text(panel.title, 34), fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        if panel.data is None or panel.labels is None:
            ax.text(0.5, 0.5, panel.note, ha="center", va="center", transform=ax.transAxes, color="#888")
            continue
        size = float(np.clip(6000 / max(len(panel.data), 1), 8, 60))
        for c in range(len(class_names)):
            mask = panel.labels == c
            ax.scatter(*panel.data[mask].T, s=size, color=tints[c], alpha=0.85, linewidths=0)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    handles = [
        Line2D([], [], marker="o", linestyle="", color=tints[c], label=label_text(n))
        for c, n in enumerate(class_names)
    ]
    figure.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), frameon=False, fontsize=9)
    legend_rows = math.ceil(len(handles) / 6)
    figure.tight_layout(rect=(0, (0.3 + 0.25 * legend_rows) / figure.get_figheight(), 1, 1))
    return to_png(figure)


def confusion_figure(panels: list[Panel], class_names: list[str]) -> bytes:
    """Small multiples of row-normalised confusion matrices with counts written in the cells."""
    rows, cols = _grid(len(panels), 3)
    k = len(class_names)
    side = max(3.0, 0.5 * k + 1.8)
    figure = Figure(figsize=(side * cols, side * rows))
    axes = figure.subplots(rows, cols, squeeze=False).ravel()
    names = [label_text(n, 16) for n in class_names]
    for ax, panel in zip(axes, panels, strict=False):
        ax.set_title("\n".join(label_text(line, 40) for line in panel.title.split("\n")), fontsize=9.5)
        if panel.data is None:
            ax.axis("off")
            ax.text(0.5, 0.5, panel.note, ha="center", va="center", transform=ax.transAxes, color="#888")
            continue
        counts = panel.data
        share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for i in range(k):
            for j in range(k):
                colour = "white" if share[i, j] > 0.55 else "#222"
                ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=8, color=colour)
        ax.set_xticks(range(k), names, rotation=40, ha="right", fontsize=8)
        recalls = [f"{name} · {100 * share[i, i]:.0f}%" for i, name in enumerate(names)]
        ax.set_yticks(range(k), recalls, fontsize=8)
        ax.set_xlabel("Predicted", fontsize=9)
        ax.set_ylabel("True · recall", fontsize=9)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    figure.tight_layout()
    return to_png(figure)


def _tile(image: np.ndarray, size: int) -> np.ndarray:
    """An image as a (size, size, 3) uint8 tile: nearest-neighbour when enlarging, smooth when shrinking."""
    from PIL import Image

    rgb = np.repeat(image, 3, axis=-1) if image.ndim == 3 and image.shape[-1] == 1 else image
    rgb = np.stack([rgb] * 3, axis=-1) if rgb.ndim == 2 else rgb
    resample = Image.NEAREST if rgb.shape[0] <= size else Image.BILINEAR
    return np.asarray(
        Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).resize((size, size), resample)
    )


def retrieval_figure(
    queries: np.ndarray,
    query_labels: np.ndarray,
    neighbours: np.ndarray,
    neighbour_labels: np.ndarray,
    class_names: list[str],
    tile: int = 84,
) -> bytes:
    """Rows: a test image, then its nearest training images; wrong-class neighbours get a thick red border.

    The grid is composed as one image (fast, exact pixels) and class names are written above each tile.
    """
    n_queries, k = neighbour_labels.shape
    border, gap, label, header = 4, 18, 18, 22
    cell_w, cell_h = tile + 2 * border + 6, tile + 2 * border + label
    width, height = (k + 1) * cell_w + gap, header + n_queries * cell_h
    canvas = np.full((height, width, 3), 255, np.uint8)
    texts = []
    for i in range(n_queries):
        top = header + i * cell_h + label
        for j in range(k + 1):
            left = j * cell_w + (gap if j else 0)
            if j == 0:
                image, name, colour = queries[i], class_names[query_labels[i]], (31, 41, 55)
                text_colour, weight = "#111827", "bold"
            else:
                wrong = neighbour_labels[i, j - 1] != query_labels[i]
                image, name = neighbours[i, j - 1], class_names[neighbour_labels[i, j - 1]]
                colour = (220, 38, 38) if wrong else (203, 213, 225)
                text_colour, weight = ("#dc2626", "bold") if wrong else ("#4b5563", "normal")
            canvas[top : top + tile + 2 * border, left : left + tile + 2 * border] = colour
            canvas[top + border : top + border + tile, left + border : left + border + tile] = _tile(
                image, tile
            )
            texts.append((left + border + tile / 2, top - 4, label_text(name, 14), text_colour, weight))
    figure = Figure(figsize=(width / 100, height / 100), dpi=100)
    ax = figure.add_axes((0, 0, 1, 1))
    ax.imshow(canvas, interpolation="nearest")
    ax.axis("off")
    for x, y, text, colour, weight in texts:
        ax.text(x, y, text, ha="center", va="bottom", fontsize=7.5, color=colour, fontweight=weight)
    ax.text(2, header - 6, "test image", fontsize=8, color="#555", va="bottom")
    ax.text(
        cell_w + gap,
        header - 6,
        f"{k} nearest training images (most similar first) →",
        fontsize=8,
        color="#555",
    )
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, facecolor="white", metadata={"Software": None})
    return buffer.getvalue()
