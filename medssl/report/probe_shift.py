"""A linear probe that scores lower with more labels while it ranks the test images better: the test set is
not drawn like the training images (e.g. the Kermany chest X-rays' official test set), and the report says so.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from medssl.report.context import Context, note
from medssl.report.document import Block
from medssl.report.rundir import SplitSummary
from medssl.report.tables import format_fraction
from medssl.rundir.results import Result

AUROC_SLACK = 0.005
"""The AUROC at all labels may sit this far below the smaller fraction's and still count as 'not worse'."""


@dataclass(frozen=True)
class FallingProbe:
    encoder: str
    fewer: float
    """The label fraction whose accuracy the largest one falls below."""
    most: float
    """The largest label fraction run."""
    accuracy: tuple[float, float]
    """(at ``fewer``, at ``most``), means over seeds and folds."""
    auroc: tuple[float, float]


def _means(rows: list[Result]) -> dict[str, float]:
    return {m: float(np.mean([r.metric(m) for r in rows])) for m in ("accuracy", "accuracy_ci_low", "auroc")}


def falling_probes(results: Iterable[Result], dataset: str) -> list[FallingProbe]:
    """Encoders whose linear probe at the largest label fraction scores below the 95 % CI lower bound of its accuracy
    with fewer labels, while its AUROC does not fall (ranking as good or better, the threshold worse)."""
    by_cell: dict[tuple[str, float], list[Result]] = defaultdict(list)
    for row in results:
        if row.dataset == dataset and row.protocol == "linear" and not row.not_applicable:
            by_cell[(row.encoder, row.label_fraction)].append(row)
    found = []
    for encoder in dict.fromkeys(encoder for encoder, _ in by_cell):
        fractions = sorted(f for e, f in by_cell if e == encoder)
        full = _means(by_cell[(encoder, fractions[-1])])
        for fewer in fractions[:-1]:
            small = _means(by_cell[(encoder, fewer)])
            if full["accuracy"] < small["accuracy_ci_low"] and full["auroc"] >= small["auroc"] - AUROC_SLACK:
                accuracy, auroc = (small["accuracy"], full["accuracy"]), (small["auroc"], full["auroc"])
                found.append(FallingProbe(encoder, fewer, fractions[-1], accuracy, auroc))
                break
    return found


def _class_shares(split: SplitSummary | None) -> str:
    """' (test: 62.5 % PNEUMONIA; training: 71.8 %)': the test set's largest class against the training set's
    share of it, where split.csv gives both."""
    if split is None or not split.counts.get("test") or not split.counts.get("train"):
        return ""
    test, train = split.counts["test"], split.counts["train"]
    largest = int(np.argmax(test))
    shares = [100 * counts[largest] / sum(counts) for counts in (test, train)]
    return f" (test: {shares[0]:.1f} % {split.classes[largest]}; training: {shares[1]:.1f} %)"


def probe_shift_blocks(ctx: Context) -> list[Block]:
    """A note naming each encoder whose linear probe falls with more labels while its AUROC holds."""
    falling = falling_probes(ctx.run.results, ctx.dataset)
    if not falling:
        return []
    listed = "; ".join(
        f"{p.encoder}: {100 * p.accuracy[0]:.1f} % at {format_fraction(p.fewer)} labels, "
        f"{100 * p.accuracy[1]:.1f} % at {format_fraction(p.most)} (AUROC {p.auroc[0]:.3f} → {p.auroc[1]:.3f})"
        for p in falling
    )
    return [
        note(
            "Linear probes that score lower with more labels: "
            f"{listed}. Their AUROC does not fall, so the probes rank the test images as well or better; what "
            "got worse is the decision threshold, which the probe fits to the training images (its C is chosen "
            "on a validation split drawn like them). This points at the data: the test set is not drawn like "
            f"the training images{_class_shares(ctx.split)}. Compare encoders at one label "
            "fraction, and read AUROC beside accuracy here. `benchmarks/probe_shift.py` prints validation "
            "against test for an encoder's saved features."
        )
    ]
