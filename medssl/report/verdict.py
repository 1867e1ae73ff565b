"""The per-dataset verdict: the best encoder of each kind (in-domain SSL of either initialisation, ImageNet
transfer; ``tables.CONTENDERS``) at every label fraction run, each pair by a paired bootstrap, and one line
that says where the answer changes with the number of labels."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from medssl.errors import DataError
from medssl.evaluate.compare import ALPHA, Comparison, better_of, compare_probabilities
from medssl.report.budget import Budget, cost_text
from medssl.report.context import Context, note, provenance
from medssl.report.document import Block, Cell, Heading, Paragraph, Span, Table
from medssl.report.tables import (
    CONTENDERS,
    PROTOCOL_NAMES,
    VERDICT_PROTOCOLS,
    WEIGHT_SOURCES,
    Contender,
    StudyRow,
    StudyTable,
    format_metric,
    kinds_present,
    verdict_picks,
)
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
    share = ctx.majority_share
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


INIT_WORDS = {"random": "random init", "imagenet": "ImageNet init"}


def encoder_name(contender: Contender, row: StudyRow) -> str:
    """How a sentence names the picked encoder: 'in-domain SSL (VICReg, resnet18, random init)'."""
    info = row.info
    if contender.key == "ssl":
        init = INIT_WORDS.get(info.init, f"{info.init} init" if info.init else "init not recorded")
        method = row.info.label.split(" (")[0]
        return f"in-domain SSL ({', '.join(x for x in (method, info.backbone, init) if x)})"
    if contender.key == "imagenet":
        return f"ImageNet frozen ({info.backbone})" if info.backbone else "ImageNet frozen"
    details = ", ".join(x for x in (info.backbone, info.init if info.init in WEIGHT_SOURCES else "") if x)
    frozen = f"frozen {contender.title}" if contender.key == "foundation" else contender.title
    return f"{frozen} ({details})" if details else frozen


def percent(fraction: float) -> str:
    """A label fraction as the summary says it: '1 %', '10 %', '100 %'."""
    return f"{100 * fraction:g} %"


@dataclass
class Pairing:
    """Two contenders at one label fraction: their best encoders and the paired test, or why there is none."""

    fraction: float
    a: Contender
    b: Contender
    protocol: str = ""
    rows: tuple[StudyRow, StudyRow] | None = None
    seed: int = 0
    files: list[str] = field(default_factory=list)
    compared: dict[str, Comparison] = field(default_factory=dict)
    n_test: int = 0
    labelled: str = ""
    """'44 labelled images' (a range per fold under cross-validation), '' when unknown."""
    why: str = ""
    """Why there is no paired test ('' when there is one)."""

    @property
    def outcome(self) -> int | None:
        """+1 when ``a`` is significantly better, −1 when ``b`` is, 0 for no significant difference, None
        without a test."""
        if self.why or not self.compared:
            return None
        main = next(iter(self.compared.values()))
        return better_of(main.difference, main.p_value, ALPHA)

    @property
    def difference(self) -> float:
        """``a`` − ``b`` in the primary metric (nan without a test)."""
        return next(iter(self.compared.values())).difference if self.compared else math.nan

    @property
    def where(self) -> str:
        """'At 1 % labels (44 labelled images)'."""
        return f"At {percent(self.fraction)} labels" + (f" ({self.labelled})" if self.labelled else "")


def _why_none(ctx: Context) -> str:
    if not any(row.info.is_ssl for row in ctx.table.rows):
        return "this run has no in-domain SSL encoder for this dataset"
    if not any(row.info.method == "imagenet" for row in ctx.table.rows):
        return "this run has no ImageNet baseline for this dataset"
    return "the kinds share no kNN or linear probe"


def _no_pick(table: StudyTable, a: Contender, b: Contender, metric: str) -> str:
    """Why ``a`` and ``b`` have no pair of cells to compare at this fraction."""
    for side in (a, b):
        cells = [
            row.cells[p]
            for row in table.rows
            if side.member(row.info)
            for p in VERDICT_PROTOCOLS
            if p in row.cells
        ]
        if not cells:
            return f"no {side.title} encoder has a kNN or linear-probe result here"
        if not any(cell.counts(metric) for cell in cells):
            return f"every {side.title} cell is collapsed, not applicable or at the floor"
    return f"the {a.title} and {b.title} encoders share no kNN or linear probe above the floor"


def _labelled(ctx: Context, row: StudyRow, protocol: str, fraction: float, seed: int) -> str:
    counts = sorted({r.n_train for r in ctx.rows_for(row.info.encoder, protocol, fraction) if r.seed == seed})
    if not counts or not counts[-1]:
        return ""
    if len(counts) == 1:
        return f"{counts[0]} labelled images" + (" per fold" if ctx.folds else "")
    return f"{counts[0]}–{counts[-1]} labelled images per fold"


def pairing(ctx: Context, table: StudyTable, a: Contender, b: Contender) -> Pairing:
    """The paired test of ``a``'s and ``b``'s best encoders at ``table``'s label fraction."""
    metric, fraction = ctx.primary_metric, table.fraction
    found = Pairing(fraction, a, b)
    members = [(row, p) for row in table.rows if a.member(row.info) or b.member(row.info) for p in row.cells]
    for row, protocol in members[:1]:
        found.labelled = _labelled(ctx, row, protocol, fraction, min(row.cells[protocol].seeds))
    picked = verdict_picks(table, metric, (a, b))
    if picked is None:
        found.why = _no_pick(table, a, b, metric)
        return found
    found.protocol, rows = picked
    found.rows = (rows[a.key], rows[b.key])
    encoders = [row.info.encoder for row in found.rows]
    seeds = [{r.seed for r in ctx.rows_for(e, found.protocol, fraction)} for e in encoders]
    common = sorted(seeds[0] & seeds[1])
    if not common:
        found.why = "the two encoders share no seed to compare on"
        return found
    found.seed = common[0]
    found.labelled = _labelled(ctx, found.rows[0], found.protocol, fraction, found.seed)
    loaded = [ctx.predictions(e, found.protocol, found.seed, fraction) for e in encoders]
    found.files = [name for _, files in loaded for name in files]
    data = align(loaded[0][0], loaded[1][0]) if all(p is not None for p, _ in loaded) else None
    if data is None:
        found.why = "the prediction files are missing or do not cover the same test images"
        return found
    y_true, prob_a, prob_b = data
    metrics = tuple(dict.fromkeys((metric, "accuracy", "auroc")))
    comparisons = compare_probabilities(y_true, prob_a, prob_b, metrics, ctx.n_bootstrap, seed=0)
    found.compared = dict(zip(metrics, comparisons, strict=True))
    found.n_test = len(y_true)
    return found


def _tested(ctx: Context, found: Pairing) -> tuple[str, str]:
    """(the pair's paired test as a sentence, CSS kind): 'In-domain SSL (…) is better than ImageNet frozen (…)
    by +3.1 points of accuracy, p=0.02.'"""
    main = found.compared[ctx.primary_metric]
    names = [encoder_name(side, row) for side, row in zip((found.a, found.b), found.rows or (), strict=True)]
    return verdict_sentence(*names, main.difference, main.p_value, ctx.primary_metric)


def _sentence(ctx: Context, found: Pairing) -> Paragraph:
    """'At 1 % labels (44 labelled images): In-domain SSL (…) is better than ImageNet frozen (…) by …'."""
    if found.outcome is None or found.rows is None:
        return Paragraph([Span(f"{found.where}: no verdict: {found.why}.")], "note")
    text, kind = _tested(ctx, found)
    text = text if text.startswith("ImageNet") else text[0].lower() + text[1:]
    return Paragraph([Span(f"{found.where}: {text}")], kind)


def _segment(outcome: int | None, a: Contender, b: Contender) -> str:
    return {
        1: f"{a.title} is better than {b.title}",
        -1: f"{b.title} is better than {a.title}",
        0: "no significant difference",
        None: "no verdict",
    }[outcome]


def summary_line(pairings: list[Pairing]) -> tuple[str, str]:
    """(the line that says where the answer changes with the number of labels, CSS kind) for one pair."""
    a, b = pairings[0].a, pairings[0].b
    kinds = {1: "verdict-better", -1: "verdict-worse", 0: "verdict-same", None: "verdict-same"}
    return changes([(p.fraction, _segment(p.outcome, a, b), kinds[p.outcome]) for p in pairings])


def changes(answers: list[tuple[float, str, str]]) -> tuple[str, str]:
    """(the line that says where the answer changes with the number of labels, CSS kind) from each label
    fraction's (fraction, answer, CSS kind), smallest fraction first."""
    runs: list[list[tuple[float, str, str]]] = []
    for answer in answers:
        if runs and runs[-1][-1][1] == answer[1]:
            runs[-1].append(answer)
        else:
            runs.append([answer])
    if len(runs) == 1:
        every = ", ".join(percent(fraction) for fraction, _, _ in answers)
        text = f"{answers[0][1]} at every label fraction run ({every})"
        return f"The answer does not change with the number of labels: {text}.", answers[0][2]
    parts = []
    for i, run in enumerate(runs):
        first, last = percent(run[0][0]), percent(run[-1][0])
        if len(run) == 1:
            span = f"at {first}"
        elif i == 0:
            span = f"up to {last}"
        elif i == len(runs) - 1:
            span = f"from {first}"
        else:
            span = f"from {first} to {last}"
        parts.append(f"{run[0][1]} {span}" + (" labels" if i == 0 else ""))
    return f"The answer changes with the number of labels: {'; '.join(parts)}.", "verdict-mixed"


def _difference(comparison: Comparison | None, metric: str) -> Cell:
    if comparison is None:
        return Cell("–")
    scale = points if metric != "auroc" else signed
    ci = (
        f"{scale(comparison.ci_low)} to {scale(comparison.ci_high)}"
        if math.isfinite(comparison.ci_low)
        else ""
    )
    return Cell(scale(comparison.difference), ci)


def _score_cell(ctx: Context, found: Pairing, index: int) -> Cell:
    if found.rows is None:
        return Cell("–")
    row = found.rows[index]
    compared = found.compared.get(ctx.primary_metric)
    value = (compared.a if index == 0 else compared.b) if compared else math.nan
    return Cell(format_metric(ctx.primary_metric, value), code=row.info.encoder)


def _table(ctx: Context, pairings: list[Pairing]) -> Table:
    """Each label fraction's pair, scores, differences with their CIs, p-values and answer."""
    metric = ctx.primary_metric
    a, b = pairings[0].a, pairings[0].b
    floor = ctx.table.floor
    titles = [side.title[0].upper() + side.title[1:] for side in (a, b)]
    columns = ["Labels", "Protocol", *titles, f"Δ {METRIC_WORDS[metric]} (points)", "p", "Δ AUROC"]
    columns += ["Floor", "Answer"]
    body = []
    for found in pairings:
        main, auc = found.compared.get(metric), found.compared.get("auroc")
        answer = _segment(found.outcome, a, b) if found.outcome is not None else f"no verdict: {found.why}"
        body.append(
            [
                Cell(percent(found.fraction), found.labelled),
                Cell(PROTOCOL_NAMES.get(found.protocol, found.protocol) or "–"),
                _score_cell(ctx, found, 0),
                _score_cell(ctx, found, 1),
                _difference(main, metric),
                Cell(p_text(main.p_value) if main else "–"),
                _difference(auc, "auroc"),
                Cell(format_metric(metric, floor.value(metric)) if floor else "–"),
                Cell(answer),
            ]
        )
    caption = [
        Span(
            f"{a.title} vs {b.title} at each label fraction: {METRIC_WORDS[metric]} (%) of the best encoder of "
            f"each kind, the paired difference with its 95% CI, its p-value, and the AUROC difference. Floor: "
            f"the {METRIC_WORDS[metric]} of the better of always predicting the majority class and guessing."
        )
    ]
    return Table(columns, body, caption, kind="summary")


def _budget_text(ctx: Context, name: str, budgets: list[Budget]) -> str | None:
    """The verdict's word on a picked SSL encoder's budget: a lower bound and its cost, when still improving."""
    improving = [b for b in budgets if b.improving]
    machine = (
        f" on {ctx.run.meta('machine')}" if ctx.run.meta("machine") else " on the machine that trained it"
    )
    if improving:
        budget = improving[0]
        folds = f" in {len(improving)} of {len(budgets)} folds" if len(budgets) > 1 else ""
        word = "balanced accuracy" if budget.metric == "knn_balanced_accuracy" else "accuracy"
        return (
            f"{name[0].upper()}{name[1:]} was still improving when its pre-training budget ran out{folds} "
            f"(validation kNN {word} {points(budget.gain)} points projected over another {budget.epochs} epochs "
            f"from its last {len(budget.monitors)} monitors): its scores here are a lower bound. "
            f"{cost_text(budget)}{machine}."
        )
    if budgets and all(b.improving is None for b in budgets):
        return f"Whether {name} was still improving is unknown: history.csv has fewer than two kNN monitors."
    return None


def _budget_blocks(ctx: Context, pairings: list[Pairing]) -> list[Block]:
    picked: dict[str, str] = {}
    for found in pairings:
        if found.rows is not None and found.a.key == "ssl":
            picked.setdefault(found.rows[0].info.encoder, encoder_name(found.a, found.rows[0]))
    texts = [_budget_text(ctx, name, ctx.budgets.get(e, [])) for e, name in picked.items()]
    return [Paragraph([Span(text)], "note") for text in texts if text]


def _floor_text(ctx: Context) -> str:
    floor = ctx.table.floor
    if floor is None:
        return ""
    rows = floor.rows()
    majority = (
        ctx.class_names[floor.majority] if floor.majority < len(ctx.class_names) else "the largest class"
    )
    return (
        f" Floor, from the {floor.n_test} test labels: always predicting {majority} scores "
        f"{format_metric('accuracy', rows['majority']['accuracy'])}% accuracy, and any constant answer or a "
        f"uniform guess {format_metric('balanced_accuracy', rows['chance']['balanced_accuracy'])}% balanced "
        "accuracy and AUROC 0.5; a cell at or below it, collapsed or not applicable is never picked."
    )


def _and(words: list[str], conjunction: str = "and") -> str:
    """'a', 'a and b', 'a, b and c'."""
    return f" {conjunction} ".join([", ".join(words[:-1]), words[-1]] if len(words) > 2 else words)


def _kinds(pairings: list[Pairing]) -> list[Contender]:
    """The contenders of ``pairings`` in the order they are named."""
    return list(dict.fromkeys(side for found in pairings for side in (found.a, found.b)))


def _field_text(ctx: Context, protocol: str, kinds: list[Contender]) -> str:
    """How many encoders of each kind the picks were made from, and why that matters when it is several."""
    counts = [
        sum(1 for row in ctx.table.rows if protocol in row.cells and side.member(row.info)) for side in kinds
    ]
    if max(counts) < 2:
        return ""
    named = [
        f"{n} {side.title.replace(' transfer', '')} encoder{'s' if n != 1 else ''}"
        for n, side in zip(counts, kinds, strict=True)
    ]
    return (
        f" (of {_and(named)}; picked on these test images, so the larger field's best is favoured "
        "and the difference reads somewhat larger than it is)"
    )


def _details(ctx: Context, pairings: list[Pairing]) -> str:
    """How the encoders were picked and compared, for the pairings of one pair or of several."""
    tested = [p for p in pairings if p.compared]
    protocols = sorted({p.protocol for p in tested}, key=VERDICT_PROTOCOLS.index)
    scored = (
        f"the out-of-fold predictions of every image ({ctx.folds} folds pooled, each image tested once)"
        if ctx.folds
        else "the same test images"
    )
    seeds = sorted({p.seed for p in tested})
    kinds = _kinds(pairings)
    field_text = "".join(_field_text(ctx, protocol, kinds) for protocol in protocols[:1])
    names = " / ".join(PROTOCOL_NAMES.get(p, p).lower() for p in protocols) or "linear probe"
    encoders = "the two encoders" if len(kinds) == 2 else "each pair's two encoders"
    return (
        f"At each label fraction {encoders} are the best of each kind by {names} "
        f"{METRIC_WORDS[ctx.primary_metric]} at that fraction{field_text}, compared on {scored}, seed "
        f"{', '.join(map(str, seeds)) or '–'}; paired bootstrap with {ctx.n_bootstrap} resamples of the test "
        f"images, 95% CI, significance level {ALPHA}.{_floor_text(ctx)}"
    )


ONE_FRACTION = (
    "Only one label fraction was run; add smaller ones (e.g. 0.01, 0.1) to see whether the answer changes with "
    "the number of labels."
)


def _answers(ctx: Context, pairings: list[Pairing]) -> list[Block]:
    """The summary over label fractions (with two or more) and the sentence at each fraction."""
    blocks: list[Block] = []
    if len(pairings) > 1:
        text, kind = summary_line(pairings)
        blocks.append(Paragraph([Span(text[0].upper() + text[1:])], kind))
    return blocks + [_sentence(ctx, found) for found in pairings]


def standing(kinds: list[Contender], pairings: list[Pairing]) -> tuple[str, str, str]:
    """(who is best at one label fraction, the significant differences behind it, CSS kind) from the paired
    tests of every pair of ``kinds`` there.

    A kind is best when it is significantly better than every other kind; otherwise the kind ahead of the others
    in every pair's difference scores highest, and the kinds it is not significantly above are named.
    """
    tested = [p for p in pairings if p.outcome is not None]
    if not tested:
        return "no verdict", "", "verdict-same"
    compared = [c for c in kinds if any(c in (p.a, p.b) for p in tested)]
    missing = (
        [f"{_and([c.title for c in kinds if c not in compared])} not compared"]
        if len(compared) < len(kinds)
        else []
    )
    wins = [(p.a, p.b) if p.outcome == 1 else (p.b, p.a) for p in tested if p.outcome]
    if not wins:
        head = f"no significant difference between {_and([c.title for c in compared])}"
        return head + _aside(missing), "", "verdict-same"
    behind = {(p.b if p.difference > 0 else p.a).key for p in tested if p.difference != 0}
    top = next((c for c in compared if c.key not in behind), None)
    detail = "; " + "; ".join(f"{winner.title} is better than {loser.title}" for winner, loser in wins)
    if top is None:
        return "no kind is ahead in every pair" + _aside(missing), detail, "verdict-same"
    below = [loser.title for winner, loser in wins if winner == top]
    if len(below) == len(compared) - 1:
        kind = "verdict-better" if top.key == "ssl" else "verdict-worse"
        return f"{top.title} is best{_aside(missing)}", f": better than {_and(below)}", kind
    level = [c.title for c in compared if c != top and c.title not in below]
    aside = [f"not significantly above {_and(level, 'or')}", *missing]
    return f"{top.title} scores highest{_aside(aside)}", detail, "verdict-same"


def _aside(parts: list[str]) -> str:
    return f" ({'; '.join(parts)})" if parts else ""


def _pair_line(ctx: Context, found: Pairing) -> Paragraph:
    if found.outcome is None or found.rows is None:
        title = found.a.title[0].upper() + found.a.title[1:]
        return Paragraph([Span(f"{title} vs {found.b.title}: no verdict: {found.why}.")], "pair-test")
    return Paragraph([Span(_tested(ctx, found)[0])], "pair-test")


def _threeway_answers(ctx: Context, kinds: list[Contender], pairs: list[list[Pairing]]) -> list[Block]:
    """The summary of who is best over label fractions, then at each fraction who is best and every pair's
    paired test."""
    at_fraction = [list(found) for found in zip(*pairs, strict=True)]
    standings = [standing(kinds, found) for found in at_fraction]
    blocks: list[Block] = []
    if len(at_fraction) > 1:
        answers = [
            (f[0].fraction, head, kind) for f, (head, _, kind) in zip(at_fraction, standings, strict=True)
        ]
        text, kind = changes(answers)
        blocks.append(Paragraph([Span(text[0].upper() + text[1:])], kind))
    for found, (head, detail, kind) in zip(at_fraction, standings, strict=True):
        where = max(found, key=lambda p: bool(p.labelled)).where
        blocks.append(Paragraph([Span(f"{where}: {head}{detail}.")], kind))
        blocks += [_pair_line(ctx, p) for p in found]
    return blocks


def verdict_blocks(ctx: Context) -> list[Block]:
    """Heading; the summary over label fractions and the answer at each fraction (with three kinds: who is best
    and every pair's paired test); the budget of the picked SSL encoders; the primary metric; per pair the
    table of paired tests and its files."""
    present = kinds_present(ctx.table)
    named = present if len(present) >= 2 else [c for c in CONTENDERS if c in present or c.key != "foundation"]
    blocks: list[Block] = [Heading(f"Verdict: {' vs '.join(c.title for c in named)}", 3)]
    if len(present) < 2:
        return [*blocks, note(f"No verdict: {_why_none(ctx)}.")]
    pairs = [[pairing(ctx, table, a, b) for table in ctx.by_fraction] for a, b in combinations(present, 2)]
    blocks += _threeway_answers(ctx, present, pairs) if len(pairs) > 1 else _answers(ctx, pairs[0])
    every = [found for pairings in pairs for found in pairings]
    blocks += _budget_blocks(ctx, every)
    blocks += [Paragraph([Span(ONE_FRACTION)])] if len(ctx.by_fraction) == 1 else []
    blocks.append(Paragraph([Span(primary_metric_text(ctx))]))
    for pairings in pairs:
        blocks.append(_table(ctx, pairings))
        blocks += [Paragraph([Span(_details(ctx, pairings))])] if len(pairs) == 1 else []
        files = [name for found in pairings for name in found.files]
        blocks.append(
            provenance(ctx.run, *(files or ["results.csv"]))
        )  # no test: its reasons come from there
    return blocks + ([Paragraph([Span(_details(ctx, every))])] if len(pairs) > 1 else [])
