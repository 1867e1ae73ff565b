"""The report names every encoder × label fraction whose fine-tuning scored below its own linear probe's 95 %
CI lower bound, and only those."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from medssl.report import write_report
from medssl.report.finetune_rule import finetune_below_probe
from medssl.rundir.results import RESULTS, read_results


def _rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def _expected(rows: list[dict[str, str]], dataset: str) -> set[tuple[str, float]]:
    """The broken cells, worked out from the CSV text directly."""
    key = lambda r: (r["encoder"], r["label_fraction"], r["seed"], r["fold"])  # noqa: E731
    probes = {key(r): r for r in rows if r["dataset"] == dataset and r["protocol"] == "linear"}
    return {
        (r["encoder"], float(r["label_fraction"]))
        for r in rows
        if r["dataset"] == dataset and r["protocol"] == "finetune" and key(r) in probes
        if float(r["accuracy"]) < float(probes[key(r)]["accuracy_ci_low"])
    }


def test_cells_below_the_probe_bound_are_named_in_the_report(run_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    columns, rows = _rows(run / RESULTS)
    target = next(
        r for r in rows if r["dataset"] == "tissue" and r["encoder"] == "imagenet-efficientnet_lite0"
        and r["protocol"] == "finetune" and r["label_fraction"] == "0.5" and r["seed"] == "0"
    )  # fmt: skip
    target["accuracy"] = "0.01"  # a fine-tuning that collapsed below its probe
    with (run / RESULTS).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)

    expected = _expected(rows, "tissue")
    assert ("imagenet-efficientnet_lite0", 0.5) in expected
    found = finetune_below_probe(read_results(run / RESULTS), "tissue")
    assert {(encoder, fraction) for encoder, fraction, _ in found} == expected
    text = write_report(run, n_bootstrap=200)[0].read_text().replace("\\", "")  # Markdown escapes
    section = text.split("\n## tissue")[1].split("\n## ")[0]
    assert "Fine-tuning below its own linear probe" in section
    for encoder, fraction in expected:
        assert f"{encoder} at {fraction:g} labels (" in section
    assert "imagenet-efficientnet_lite0 at 0.5 labels (1.0 % < " in section
    for dataset in ("tissue3",):  # untouched: named only where the rule really broke
        assert bool(_expected(rows, dataset)) == ("Fine-tuning below" in text.split(f"\n## {dataset}")[1])
