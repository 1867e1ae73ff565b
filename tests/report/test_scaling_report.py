"""The report's scaling figure and pool × label-fraction table, rendered from constructed result rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from medssl.report.scaling import baseline_bands
from medssl.report.scaling_report import pool_label_table, scaling_figure
from medssl.report.tables import Floor
from tests.report.test_scaling import POOLS, imagenet, row, ssl


def _study_rows() -> list[dict]:
    rows = []
    for label in (0.1, 1.0):
        extra = {"label_fraction": label}
        for protocol, lift in (("knn", 0.0), ("linear", 0.03)):
            extra["protocol"] = protocol
            for method, base in (("simclr", 0.62), ("vicreg", 0.66)):
                for fraction in POOLS:
                    for seed in (0, 1):
                        accuracy = base + lift + 0.1 * fraction + 0.01 * seed - (0.08 if label < 1 else 0)
                        rows.append(ssl(method, fraction, accuracy, seed=seed, **extra))
            rows.append(imagenet(0.74 + lift, 0.71 + lift, 0.77 + lift, **extra))
            rows.append(row("random-resnet18", 0.45, 0.41, 0.49, **extra))
        rows.append(imagenet(0.85, 0.82, 0.88, protocol="finetune", label_fraction=label))
        rows.append(row("random-resnet18", 0.7, 0.66, 0.74, method="supervised", protocol="finetune",
                        label_fraction=label))  # fmt: skip
    return rows


def test_bands_are_the_three_baselines_of_each_panel() -> None:
    rows = _study_rows()
    names = [b.name for b in baseline_bands(rows, "ds", "knn")]
    assert names == ["ImageNet frozen (efficientnet_lite0)", "ImageNet fine-tuned (efficientnet_lite0)",
                     "Random init (resnet18)"]  # fmt: skip
    band = baseline_bands(rows, "ds", "linear")[0].point.stat
    assert (band.mean, band.ci_low, band.ci_high) == pytest.approx((0.77, 0.74, 0.80))


def test_scaling_figure_renders_from_rows(tmp_path: Path) -> None:
    png = scaling_figure(_study_rows(), "ds")
    assert png.startswith(b"\x89PNG") and len(png) > 20_000
    (tmp_path / "scaling.png").write_bytes(png)
    with pytest.raises(ValueError, match="no pre-training pool rows"):
        scaling_figure([imagenet()], "ds")


def test_pool_by_label_fraction_table_for_the_best_method() -> None:
    table = pool_label_table(_study_rows(), "ds", "linear")
    assert table.columns == ["Pre-training pool", "Labels 0.1", "Labels 1.0"]
    assert [r[0].main for r in table.rows] == ["100 images (0.1)", "500 images (0.5)", "1,000 images (1.0)",
                                               "ImageNet frozen (efficientnet_lite0)"]  # fmt: skip
    # VICReg at the full pool and all labels: 0.66 + 0.03 + 0.1 + (0 or 0.01) → 79.5 ± 0.7
    assert (table.rows[2][2].main, table.rows[2][2].sub) == ("79.5", "± 0.7")
    assert "VICReg (resnet18)" in table.caption[0].text
    assert table.rows[3][1].main == "77.0"
    floored = pool_label_table(_study_rows(), "ds", "linear", floor=Floor((30, 70)))
    assert [c.main for c in floored.rows[-1]] == ["Floor (majority class / chance)", "70.0", "70.0"]


@pytest.mark.parametrize("primary", ["accuracy", "balanced_accuracy"])
def test_crossover_follows_the_verdicts_primary_metric(tmp_path: Path, primary: str) -> None:
    """Balanced classes: the crossover in accuracy. Imbalanced: in AUROC first (balanced accuracy, the verdict's
    primary metric, has no CI), then accuracy, with a note saying why."""
    from types import SimpleNamespace

    from medssl.report.scaling_report import IMBALANCED_NOTE, scaling_blocks
    from medssl.rundir.results import RESULTS, append_results

    append_results(tmp_path / RESULTS, _study_rows())
    run = SimpleNamespace(root=tmp_path, predictions=lambda path: None, meta=lambda key: None)
    ctx = SimpleNamespace(
        run=run,
        dataset="ds",
        key="d1-ds",
        n_bootstrap=200,
        primary_metric=primary,
        table=SimpleNamespace(floor=Floor((30, 70))),
    )
    blocks = scaling_blocks(ctx)
    texts = [span.text for block in blocks for span in getattr(block, "content", [])]
    (table,) = [block for block in blocks if getattr(block, "rows", None)]  # the section passes the floor on
    assert table.rows[-1][0].main == "Floor (majority class / chance)"
    statements = [t for t in texts if t.startswith(("kNN, ", "Linear probe, "))]
    if primary == "accuracy":
        assert [t.split(":")[0] for t in statements] == ["kNN, accuracy", "Linear probe, accuracy"]
        assert IMBALANCED_NOTE not in texts
    else:
        assert [t.split(":")[0] for t in statements] == [
            "kNN, auroc", "kNN, accuracy", "Linear probe, auroc", "Linear probe, accuracy",
        ]  # fmt: skip
        assert IMBALANCED_NOTE in texts
