"""A linear probe that falls with more labels while its AUROC holds is named in the report as a test set not
drawn like the training images; one whose AUROC falls too is not."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from medssl.report import write_report
from medssl.report.probe_shift import falling_probes
from medssl.rundir.results import RESULTS, read_results

SHIFTED, WORSE = "imagenet-efficientnet_lite0", "random-resnet18"


def _linear(rows: list[dict[str, str]], encoder: str, fraction: str) -> list[dict[str, str]]:
    return [
        r for r in rows if r["dataset"] == "tissue" and r["encoder"] == encoder
        and r["protocol"] == "linear" and r["label_fraction"] == fraction
    ]  # fmt: skip


def test_a_probe_that_falls_with_labels_while_ranking_better_is_named(run_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    with (run / RESULTS).open(newline="") as handle:
        reader = csv.DictReader(handle)
        columns, rows = list(reader.fieldnames or []), list(reader)
    fewer = {
        encoder: _linear(rows, encoder, "0.5") + _linear(rows, encoder, "0.25")
        for encoder in (SHIFTED, WORSE)
    }
    low = {encoder: min(float(r["accuracy_ci_low"]) for r in fewer[encoder]) for encoder in fewer}
    aurocs = {encoder: sorted(float(r["auroc"]) for r in fewer[encoder]) for encoder in fewer}
    # all labels: accuracy below every smaller fraction's CI; SHIFTED ranks better than at both, WORSE worse
    for encoder, auroc in ((SHIFTED, max(aurocs[SHIFTED]) + 0.001), (WORSE, aurocs[WORSE][0] - 0.1)):
        for row in _linear(rows, encoder, "1.0"):
            row["accuracy"], row["auroc"] = f"{low[encoder] - 0.05:.6f}", f"{min(auroc, 1.0):.6f}"
    with (run / RESULTS).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)

    found = falling_probes(read_results(run / RESULTS), "tissue")
    assert [(p.encoder, p.fewer) for p in found] == [(SHIFTED, 0.25)]  # the first fraction it falls below
    text = write_report(run, n_bootstrap=200)[0].read_text().replace("\\", "")  # Markdown escapes
    section = text.split("\n## tissue")[1].split("\n## ")[0]
    assert "Linear probes that score lower with more labels: imagenet-efficientnet_lite0: " in section
    assert WORSE + ":" not in section.split("Linear probes that score lower")[1].split("\n")[0]
    assert "Linear probes that score lower" not in text.split("\n## tissue3")[1]
