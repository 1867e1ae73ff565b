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


def verdict_sentence(ssl: str, imagenet: str, difference: float, p_value: float) -> tuple[str, str]:
    """(plain sentence, CSS kind) for the accuracy difference ``ssl`` − ``imagenet`` and its p-value."""
    winner = better_of(difference, p_value, ALPHA)
    if winner > 0:
        text = (
            f"{ssl} is better than {imagenet} by {points(difference)} points of accuracy, {p_text(p_value)}."
        )
        return text[0].upper() + text[1:], "verdict-better"
    if winner < 0:
        gap = f"{100 * -difference:.1f}"
        text = f"{imagenet} is better than {ssl} by {gap} points of accuracy, {p_text(p_value)}."
        return text[0].upper() + text[1:], "verdict-worse"
    summary = f"{points(difference)} points of accuracy, {p_text(p_value)}"
    return f"No significant difference between {ssl} and {imagenet}: {summary}.", "verdict-same"


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
    """(seed, [ssl file, imagenet file], aligned data or None), or why there is nothing to compare."""
    ssl_rows = ctx.rows_for(ssl.info.encoder, protocol)
    imagenet_rows = ctx.rows_for(imagenet.info.encoder, protocol)
    common = sorted({r.seed for r in ssl_rows} & {r.seed for r in imagenet_rows})
    if not common:
        return "the two encoders share no seed to compare on"
    seed = common[0]
    files = [next(r for r in rows if r.seed == seed).predictions for rows in (ssl_rows, imagenet_rows)]
    a, b = (ctx.run.predictions(f) for f in files)
    return seed, files, align(a, b) if a is not None and b is not None else None


def verdict_blocks(ctx: Context) -> list[Block]:
    """Heading, the verdict sentence, its statistics, and the prediction files it came from."""
    blocks: list[Block] = [Heading("Verdict: in-domain SSL vs ImageNet transfer", 3)]
    pair = verdict_pair(ctx.table)
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
    acc, auc = compare_probabilities(y_true, prob_ssl, prob_imagenet, ("accuracy", "auroc"), n, seed=0)
    accuracy, acc_low, acc_high, acc_p = acc.difference, acc.ci_low, acc.ci_high, acc.p_value
    auroc, auc_low, auc_high, auc_p = auc.difference, auc.ci_low, auc.ci_high, auc.p_value
    sentence, kind = verdict_sentence(_ssl_name(ssl_row), _imagenet_name(imagenet_row), accuracy, acc_p)
    auroc_text = (
        f"AUROC difference {signed(auroc)} (95% CI {signed(auc_low)} to {signed(auc_high)}, {p_text(auc_p)})"
        if math.isfinite(auc_low)
        else "AUROC difference not computable"
    )
    protocol_name = PROTOCOL_NAMES.get(protocol, protocol)
    details = (
        f"{protocol_name}, label fraction {format_fraction(ctx.table.fraction)}, seed {seed}, "
        f"{len(y_true)} test images scored by both; paired bootstrap with {n} resamples of the test "
        f"images: accuracy difference {points(accuracy)} points (95% CI {points(acc_low)} to "
        f"{points(acc_high)}, {p_text(acc_p)}); "
        f"{auroc_text}. The two encoders are the best of each kind by {protocol_name.lower()} accuracy "
        f"in the table above; significance level {ALPHA}."
    )
    return [
        *blocks,
        Paragraph([Span(sentence)], kind),
        Paragraph([Span(details)]),
        provenance(ctx.run, *files),
    ]
