"""The per-dataset verdict: best in-domain SSL encoder vs best ImageNet transfer, by a paired bootstrap."""

from __future__ import annotations

import math

import numpy as np

from medssl.errors import DataError
from medssl.evaluate.compare import ALPHA, better_of, compare_probabilities
from medssl.report.context import Context, note, provenance
from medssl.report.document import Block, Heading, Paragraph, Span
from medssl.report.tables import PROTOCOL_NAMES, StudyRow, format_fraction, verdict_pair
from medssl.rundir.predictions import Predictions, align_predictions

Aligned = tuple[np.ndarray, np.ndarray, np.ndarray]


def points(value: float) -> str:
    """A difference of proportions in signed percentage points: +3.1, −0.8."""
    return f"{100 * value:+.1f}".replace("-", "−")


def signed(value: float) -> str:
    return f"{value:+.3f}".replace("-", "−")


def p_text(p: float) -> str:
    if not math.isfinite(p):
        return "p not computable"
    if p < 0.001:
        return "p<0.001"
    return f"p={p:.3f}" if p < 0.01 else f"p={p:.2f}"


METRIC_WORDS = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy"}


def verdict_sentence(
    ssl: str, imagenet: str, difference: float, p_value: float, metric: str = "accuracy"
) -> tuple[str, str]:
    """(plain sentence, CSS kind) for the ``metric`` difference ``ssl`` − ``imagenet`` and its p-value."""
    words = METRIC_WORDS.get(metric, metric)
    winner = better_of(difference, p_value, ALPHA)
    if winner > 0:
        text = (
            f"{ssl} is better than {imagenet} by {points(difference)} points of {words}, {p_text(p_value)}."
        )
        return text[0].upper() + text[1:], "verdict-better"
    if winner < 0:
        gap = f"{100 * -difference:.1f}"
        text = f"{imagenet} is better than {ssl} by {gap} points of {words}, {p_text(p_value)}."
        return text[0].upper() + text[1:], "verdict-worse"
    summary = f"{points(difference)} points of {words}, {p_text(p_value)}"
    return f"No significant difference between {ssl} and {imagenet}: {summary}.", "verdict-same"


def primary_metric_text(ctx: Context) -> str:
    """Which metric the verdict rests on, and why."""
    share = ctx.split.majority_share if ctx.split else math.nan
    if ctx.primary_metric == "balanced_accuracy":
        return (
            f"Primary metric: balanced accuracy, because the largest class is {100 * share:.0f}% of the test "
            "images (over 60%): plain accuracy would reward predicting it for everyone."
        )
    basis = f" (the largest class is {100 * share:.0f}% of the test images)" if math.isfinite(share) else ""
    return f"Primary metric: accuracy{basis}; balanced accuracy is in the table."


def align(a: Predictions, b: Predictions) -> Aligned | None:
    """(y_true, prob_a, prob_b) by ``medssl compare``'s rule (same test images and labels); None otherwise."""
    try:
        return align_predictions(a, b)
    except DataError:
        return None


def _ssl_name(row: StudyRow) -> str:
    """'in-domain SSL (VICReg, resnet18)' from the row's 'VICReg (resnet18)' label."""
    return f"in-domain SSL ({row.info.label.replace(' (', ', ').rstrip(')')})"


def _imagenet_name(row: StudyRow) -> str:
    return f"ImageNet frozen ({row.info.backbone})" if row.info.backbone else "ImageNet frozen"


def _why_none(ctx: Context) -> str:
    if not any(row.info.is_ssl for row in ctx.table.rows):
        return "this run has no in-domain SSL encoder for this dataset"
    if not any(row.info.method == "imagenet" for row in ctx.table.rows):
        return "this run has no ImageNet baseline for this dataset"
    return "the SSL and ImageNet encoders share no kNN or linear probe"


def _predictions(ctx: Context, ssl: StudyRow, imagenet: StudyRow, protocol: str):
    """(seed, files, aligned data or None), or why there is nothing to compare. Under cross-validation each
    encoder's out-of-fold predictions (every image once) are compared."""
    ssl_rows = ctx.rows_for(ssl.info.encoder, protocol)
    imagenet_rows = ctx.rows_for(imagenet.info.encoder, protocol)
    common = sorted({r.seed for r in ssl_rows} & {r.seed for r in imagenet_rows})
    if not common:
        return "the two encoders share no seed to compare on"
    seed = common[0]
    (a, files_a), (b, files_b) = (
        ctx.predictions(row.info.encoder, protocol, seed) for row in (ssl, imagenet)
    )
    return seed, [*files_a, *files_b], align(a, b) if a is not None and b is not None else None


def _field_text(ctx: Context, protocol: str) -> str:
    """How many encoders of each kind the pair was picked from, and why that matters when it is several."""
    counts = [
        sum(1 for row in ctx.table.rows if protocol in row.cells and kind(row))
        for kind in (lambda r: r.info.is_ssl, lambda r: r.info.method == "imagenet")
    ]
    if max(counts) < 2:
        return ""
    ssl, imagenet = (
        f"{n} {name} encoder{'s' if n != 1 else ''}"
        for n, name in zip(counts, ("in-domain SSL", "ImageNet"), strict=True)
    )
    return (
        f" (of {ssl} and {imagenet}; picked on these test images, so the larger field's best is favoured "
        "and the difference reads somewhat larger than it is)"
    )


def verdict_blocks(ctx: Context) -> list[Block]:
    """Heading, the verdict sentence, its primary metric, its statistics, and the prediction files."""
    blocks: list[Block] = [Heading("Verdict: in-domain SSL vs ImageNet transfer", 3)]
    metric = ctx.primary_metric
    pair = verdict_pair(ctx.table, metric)
    if pair is None:
        return [*blocks, note(f"No verdict: {_why_none(ctx)}.")]
    ssl_row, imagenet_row, protocol = pair
    found = _predictions(ctx, ssl_row, imagenet_row, protocol)
    if isinstance(found, str):
        return [*blocks, note(f"No verdict: {found}.")]
    seed, files, data = found
    if data is None:
        text = "No verdict: the prediction files are missing or do not cover the same test images."
        return [*blocks, note(text), provenance(ctx.run, *files)]
    y_true, prob_ssl, prob_imagenet = data
    n = ctx.n_bootstrap
    metrics = tuple(dict.fromkeys((metric, "accuracy", "auroc")))
    comparisons = compare_probabilities(y_true, prob_ssl, prob_imagenet, metrics, n, seed=0)
    compared = dict(zip(metrics, comparisons, strict=True))
    main, auc = compared[metric], compared["auroc"]
    sentence, kind = verdict_sentence(
        _ssl_name(ssl_row), _imagenet_name(imagenet_row), main.difference, main.p_value, metric
    )
    auroc_text = (
        f"AUROC difference {signed(auc.difference)} (95% CI {signed(auc.ci_low)} to {signed(auc.ci_high)}, "
        f"{p_text(auc.p_value)})"
        if math.isfinite(auc.ci_low)
        else "AUROC difference not computable"
    )
    differences = [
        f"{METRIC_WORDS[m]} difference {points(c.difference)} points (95% CI {points(c.ci_low)} to "
        f"{points(c.ci_high)}, {p_text(c.p_value)})"
        for m, c in compared.items()
        if m != "auroc"
    ]
    protocol_name = PROTOCOL_NAMES.get(protocol, protocol)
    scored = (
        f"the out-of-fold predictions of all {len(y_true)} images ({ctx.folds} folds pooled, each image "
        "tested once) scored by both"
        if ctx.folds
        else f"{len(y_true)} test images scored by both"
    )
    details = (
        f"{protocol_name}, label fraction {format_fraction(ctx.table.fraction)}, seed {seed}, {scored}; "
        f"paired bootstrap with {n} resamples of the test images: {'; '.join(differences)}; {auroc_text}. "
        f"The two encoders are the best of each kind by {protocol_name.lower()} {METRIC_WORDS[metric]} "
        f"in the table above{_field_text(ctx, protocol)}; significance level {ALPHA}."
    )
    return [
        *blocks,
        Paragraph([Span(sentence)], kind),
        Paragraph([Span(primary_metric_text(ctx))]),
        Paragraph([Span(details)]),
        provenance(ctx.run, *files),
    ]
