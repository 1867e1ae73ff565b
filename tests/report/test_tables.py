"""The study table in the report agrees with results.csv, read here independently with the csv module."""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from html.parser import HTMLParser
from itertools import takewhile
from pathlib import Path

import numpy as np
import pytest

from medssl.report.rundir import RunDir
from medssl.report.tables import METRIC_NAMES, PROTOCOL_NAMES, TABLE_METRICS, format_metric, study_table


def expected_means(run_dir: Path, dataset: str) -> dict[tuple[str, str], dict[str, float]]:
    """(encoder, protocol) → metric → mean over seeds at label fraction 1.0, straight from the CSV text."""
    values: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    with (run_dir / "results.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["dataset"] == dataset and float(row["label_fraction"]) == 1.0:
                for metric in TABLE_METRICS:
                    values[(row["encoder"], row["protocol"])][metric].append(float(row[metric]))
    return {key: {m: float(np.mean(v)) for m, v in metrics.items()} for key, metrics in values.items()}


def collapsed_encoders(run_dir: Path, dataset: str) -> set[str]:
    with (run_dir / "results.csv").open(newline="") as handle:
        return {
            r["encoder"]
            for r in csv.DictReader(handle)
            if r["dataset"] == dataset and r["collapsed"] == "True"
        }


def markdown_table(md: str, dataset: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the first table after '## <dataset>' in report.md."""
    lines = md.split(f"\n## {dataset}\n", 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    lines = list(takewhile(lambda line: line.startswith("|"), lines[start:]))
    cells = [[c.strip() for c in line.strip("|").split(" | ")] for line in lines]
    return cells[0], cells[2:]


@pytest.mark.parametrize("dataset", ["tissue", "tissue3"])
def test_table_structure_matches_results_csv(run_dir: Path, dataset: str) -> None:
    table = study_table(RunDir.open(run_dir).results, dataset)
    expected = expected_means(run_dir, dataset)
    assert table.fraction == 1.0
    assert {(row.info.encoder, p) for row in table.rows for p in row.cells} == set(expected)
    for (encoder, protocol), metrics in expected.items():
        cell = table.cell(encoder, protocol)
        assert cell is not None
        for metric, mean in metrics.items():
            assert cell.stats[metric].mean == pytest.approx(mean, abs=1e-9)


@pytest.mark.parametrize("dataset", ["tissue", "tissue3"])
def test_markdown_table_shows_results_csv_values(
    run_dir: Path, report: tuple[Path, Path], dataset: str
) -> None:
    header, rows = markdown_table(report[0].read_text(), dataset)
    expected = expected_means(run_dir, dataset)
    checked = 0
    for (encoder, protocol), metrics in expected.items():
        row = next(r for r in rows if f"`{encoder}`" in r[0])
        for metric, mean in metrics.items():
            text = row[header.index(f"{PROTOCOL_NAMES[protocol]}: {METRIC_NAMES[metric]}")]
            assert text.replace("**", "").split()[0] == format_metric(metric, mean), (
                encoder,
                protocol,
                metric,
            )
            checked += 1
    assert checked == 3 * len(expected) > 0


def test_best_marks_follow_the_numbers_and_skip_collapsed(run_dir: Path, report: tuple[Path, Path]) -> None:
    header, rows = markdown_table(report[0].read_text(), "tissue")
    expected = expected_means(run_dir, "tissue")
    collapsed = collapsed_encoders(run_dir, "tissue")
    assert collapsed == {"simsiam-resnet18-random"}
    for protocol in {p for _, p in expected}:
        for metric in TABLE_METRICS:
            column = header.index(f"{PROTOCOL_NAMES[protocol]}: {METRIC_NAMES[metric]}")
            scores = {e: m[metric] for (e, p), m in expected.items() if p == protocol and e not in collapsed}
            if len(scores) < 2:
                continue
            top = max(scores.values())
            for encoder, score in scores.items():
                text = next(r for r in rows if f"`{encoder}`" in r[0])[column]
                assert ("★" in text) == math.isclose(score, top, abs_tol=1e-12), (
                    encoder,
                    protocol,
                    metric,
                    text,
                )
    simsiam = next(r for r in rows if "`simsiam-resnet18-random`" in r[0])
    assert all("⚠" in c and "★" not in c for c in simsiam[1:] if c != "–")


class _Cells(HTMLParser):
    """Text of every cell of the HTML study tables, row by row."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "div" and ("class", "table-block study") in attrs:
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th") and self.tables and self.tables[-1]:
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None:
            self.tables[-1][-1].append(" ".join("".join(self.cell).split()))
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data + " ")


def test_html_table_shows_results_csv_values(run_dir: Path, report: tuple[Path, Path]) -> None:
    parser = _Cells()
    parser.feed(report[1].read_text())
    assert len(parser.tables) == 2
    for dataset, table in zip(["tissue", "tissue3"], parser.tables, strict=True):
        expected = expected_means(run_dir, dataset)
        protocols = [p for p in PROTOCOL_NAMES if any(p == q for _, q in expected)]
        for (encoder, protocol), metrics in expected.items():
            row = next(r for r in table if r and encoder in r[0])
            for metric, mean in metrics.items():
                column = 1 + protocols.index(protocol) * len(TABLE_METRICS) + TABLE_METRICS.index(metric)
                assert row[column].split()[0] == format_metric(metric, mean)


def test_several_seeds_show_sd_and_single_runs_show_ci(run_dir: Path) -> None:
    results = RunDir.open(run_dir).results
    with_seeds = study_table(results, "tissue").cell("random-resnet18", "finetune")
    single = study_table(results, "tissue3").cell("random-resnet18", "linear")
    assert with_seeds is not None and single is not None
    finetune_accuracy = [
        r.metric("accuracy")
        for r in results
        if r.dataset == "tissue"
        and r.encoder == "random-resnet18"
        and r.protocol == "finetune"
        and r.label_fraction == 1.0
    ]
    assert with_seeds.stats["accuracy"].n == len(finetune_accuracy) == 2
    assert with_seeds.stats["accuracy"].sd == pytest.approx(np.std(finetune_accuracy, ddof=1))
    row = next(
        r
        for r in results
        if r.dataset == "tissue3" and r.encoder == "random-resnet18" and r.protocol == "linear"
    )
    assert single.stats["auroc"].ci_low == row.metric("auroc_ci_low")
    assert single.stats["auroc"].ci_high == row.metric("auroc_ci_high")


def test_largest_fraction_used_when_full_labels_were_not_run(run_dir: Path) -> None:
    results = [r for r in RunDir.open(run_dir).results if r.dataset == "tissue" and r.label_fraction < 1.0]
    table = study_table(results, "tissue")
    assert table.fraction == 0.5
    cell = table.cell("vicreg-resnet18-random", "linear")
    expected = np.mean(
        [
            r.metric("accuracy")
            for r in results
            if r.encoder == "vicreg-resnet18-random" and r.protocol == "linear" and r.label_fraction == 0.5
        ]
    )
    assert cell is not None and cell.stats["accuracy"].mean == pytest.approx(expected)


def test_untrained_encoder_keeps_its_name_when_fine_tune_rows_say_supervised(run_dir: Path) -> None:
    results = RunDir.open(run_dir).results
    methods = {r.method for r in results if r.encoder == "random-resnet18"}
    assert methods == {"random", "supervised"}
    for ordered in (results, results[::-1]):
        row = next(r for r in study_table(ordered, "tissue").rows if r.info.encoder == "random-resnet18")
        assert row.info.label == "Random init (resnet18)" and not row.info.is_ssl
        assert set(row.cells) == {"knn", "knn_weighted", "linear", "finetune"}
