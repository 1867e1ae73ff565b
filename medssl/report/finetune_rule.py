"""The fine-tuning rule: an encoder fine-tuned on some labels should score at least the lower bound of the 95 %
CI of its own linear probe on the same labels (it starts from that probe). Where it does not, the report says so.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from medssl.report.context import Context, note
from medssl.report.document import Block
from medssl.report.tables import format_fraction
from medssl.rundir.results import Result


def finetune_below_probe(results: Iterable[Result], dataset: str) -> list[tuple[str, float, list[str]]]:
    """(encoder, label fraction, ['15.0 % < 59.2 %', ...]) for every encoder × fraction of ``dataset`` where
    a fine-tuning row's accuracy is below the ``accuracy_ci_low`` of the linear-probe row of the same encoder,
    labels, seed and fold; one text per such seed or fold."""
    rows = [r for r in results if r.dataset == dataset and r.protocol in ("finetune", "linear")]
    probes = {(r.encoder, r.label_fraction, r.seed, r.fold): r for r in rows if r.protocol == "linear"}
    broken: dict[tuple[str, float], list[str]] = defaultdict(list)
    for tuned in (r for r in rows if r.protocol == "finetune"):
        probe = probes.get((tuned.encoder, tuned.label_fraction, tuned.seed, tuned.fold))
        if probe is None:
            continue
        score, bound = tuned.metric("accuracy"), probe.metric("accuracy_ci_low")
        if score < bound:
            broken[(tuned.encoder, tuned.label_fraction)].append(f"{100 * score:.1f} % < {100 * bound:.1f} %")
    return [(encoder, fraction, texts) for (encoder, fraction), texts in sorted(broken.items())]


def finetune_rule_blocks(ctx: Context) -> list[Block]:
    """A note naming each encoder × label fraction whose fine-tuning scored below its own linear probe's
    95 % CI lower bound; nothing where the rule holds (or nothing was fine-tuned)."""
    cells = finetune_below_probe(ctx.run.results, ctx.dataset)
    if not cells:
        return []
    listed = "; ".join(
        f"{encoder} at {format_fraction(fraction)} labels ({', '.join(texts)})"
        for encoder, fraction, texts in cells
    )
    return [
        note(
            "Fine-tuning below its own linear probe: fine-tuning starts from the encoder's linear probe, so its "
            "accuracy should reach at least the lower bound of the probe's 95 % CI. Here it did not: "
            f"{listed} (fine-tuned accuracy < the probe's CI lower bound, per seed or fold). Read these "
            "fine-tuning cells with care: too few validation labels to choose the weights, or a budget too "
            "small for the data."
        )
    ]
