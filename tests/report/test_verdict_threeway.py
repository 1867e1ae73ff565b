"""The three-way verdict: with a foundation model beside in-domain SSL and ImageNet transfer, the verdict says at
every label fraction which kind is best and gives each pair's paired test, the summary says where the answer
changes, and the label-efficiency figure draws the best of each kind with its 95% CI."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer

from medssl.evaluate.compare import Comparison
from medssl.evaluate.metrics import bootstrap_ci
from medssl.report.figures import FLOOR_LABEL, CurveStyle, colours, draw_label_efficiency
from medssl.report.plots import kind_legend
from medssl.report.rundir import RunDir
from medssl.report.tables import CONTENDERS, fraction_tables, kind_curves, kinds_present
from medssl.report.verdict import Pairing, standing
from tests.report.test_verdict_fractions import BALANCED, IMAGENET, SSL, _gap, report, scored, verdict

SIMCLR = "simclr-resnet18-random"
DINOV2, DINOV2_TIMM = "hf-dinov2", "timm-vit_small_patch14_dinov2.lvd142m"
SHARES = {  # (share right at 1 %, at 100 %): SSL best with 2 labels, the foundation model with 100
    SSL: (0.9, 0.8),
    SIMCLR: (0.7, 0.7),
    IMAGENET: (0.6, 0.8),
    DINOV2: (0.75, 0.95),
    DINOV2_TIMM: (0.7, 0.85),
}
FOUNDATION_ROWS = {DINOV2: "hf", DINOV2_TIMM: "timm"}
SSL_NAME = "in-domain SSL (VICReg, resnet18, random init)"
IMAGENET_NAME = r"ImageNet frozen (efficientnet\_lite0)"
DINOV2_NAME = "frozen foundation model (DINOv2 ViT-S/14, hf)"


def _with_ci(root: Path, row: dict) -> dict:
    """The row with the 95% bootstrap CIs that ``medssl evaluate`` writes, from its predictions file."""
    with np.load(root / row["predictions"]) as data:
        y, prob = data["y_true"], data["y_prob"]
    for metric in ("accuracy", "auroc"):
        row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = bootstrap_ci(y, prob, metric, 500)
    return row


def _rows(root: Path, encoders: dict[str, tuple[float, float]]) -> list[dict]:
    rows = []
    for i, (fraction, n_train) in enumerate(((0.01, 2), (1.0, 100))):
        for encoder, shares in encoders.items():
            row = scored(root, encoder, "linear", fraction, BALANCED, shares[i], n_train=n_train)
            if encoder in FOUNDATION_ROWS:  # what timm: and hf: specs write
                row |= {
                    "method": "foundation",
                    "backbone": "DINOv2 ViT-S/14",
                    "init": FOUNDATION_ROWS[encoder],
                }
            rows.append(_with_ci(root, row))
    return rows


@pytest.fixture(scope="module")
def threeway(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict], str, str]:
    root = tmp_path_factory.mktemp("threeway")
    rows = _rows(root, SHARES)
    md, html = report(root, rows)
    return root, rows, md, html


def _at(md: str, fraction: str) -> list[str]:
    """The answer at one label fraction: its line and the paired-test lines under it."""
    lines = [x for x in verdict(md).splitlines() if x]
    start = next(i for i, x in enumerate(lines) if x.startswith(f"> At {fraction} labels"))
    return lines[start : start + 4]


def _row(rows: list[dict], encoder: str, fraction: float) -> dict:
    return next(r for r in rows if r["encoder"] == encoder and r["label_fraction"] == fraction)


def test_the_verdict_names_the_best_kind_and_every_pair_at_each_fraction(threeway) -> None:
    root, rows, md, html = threeway
    assert "### Verdict: in-domain SSL vs ImageNet transfer vs foundation model" in md
    summary = (
        "The answer changes with the number of labels: in-domain SSL is best at 1 % labels; foundation model "
        "is best at 100 %."
    )
    assert f"> {summary}" in verdict(md) and summary in html
    low, full = _at(md, "1 %"), _at(md, "100 %")
    assert low[0] == (
        "> At 1 % labels (2 labelled images): in-domain SSL is best: better than ImageNet transfer and "
        "foundation model."
    )
    assert full[0] == (
        "> At 100 % labels (100 labelled images): foundation model is best: better than in-domain SSL and "
        "ImageNet transfer."
    )
    names = {SSL: SSL_NAME, IMAGENET: IMAGENET_NAME, DINOV2: DINOV2_NAME}
    outcomes = {  # each pair's own paired test: (better, worse), or None for no significant difference
        0.01: [(SSL, IMAGENET), (SSL, DINOV2), (DINOV2, IMAGENET)],
        1.0: [None, (DINOV2, SSL), (DINOV2, IMAGENET)],
    }
    for lines, fraction in ((low, 0.01), (full, 1.0)):
        for line, outcome in zip(lines[1:], outcomes[fraction], strict=True):
            if outcome is None:
                assert line.startswith(f"No significant difference between {SSL_NAME} and {IMAGENET_NAME}: ")
                assert line.endswith("+0.0 points of accuracy, p=1.00.")
                continue
            first, second = outcome
            gap = _gap(root, _row(rows, first, fraction), _row(rows, second, fraction))
            assert line.startswith(
                f"{names[first][0].upper()}{names[first][1:]} is better than {names[second]} by "
            )
            assert re.search(rf"by \+?{gap} points of accuracy, p=0\.0\d+\.$", line), line
    assert "better than ImageNet frozen (efficientnet\\_lite0) by +30.0 points" in low[1]
    assert html.count('class="pair-test"') == 6


def test_every_pair_has_its_table_and_the_picks_are_the_best_of_each_kind(threeway) -> None:
    _, _, md, html = threeway
    headers = [x for x in verdict(md).splitlines() if x.startswith("| Labels | Protocol |")]
    assert [h.split(" | ")[2:4] for h in headers] == [
        ["In-domain SSL", "ImageNet transfer"],
        ["In-domain SSL", "Foundation model"],
        ["ImageNet transfer", "Foundation model"],
    ]
    tested = verdict(md).split("| Labels | Protocol |", 1)[1]
    assert SIMCLR not in tested and DINOV2_TIMM not in tested  # weaker members of their kinds
    assert "(of 2 in-domain SSL encoders, 1 ImageNet encoder and 2 foundation model encoders;" in md
    assert "each pair's two encoders are the best of each kind" in md
    assert "vs frozen foundation models" in html.split("</header>", 1)[0]


def test_the_label_efficiency_figure_draws_the_best_of_each_kind_with_its_ci(threeway) -> None:
    root, rows, md, _ = threeway
    assert "report_files/d1-ds-label-efficiency-kinds.png" in md
    assert (root / "report_files" / "d1-ds-label-efficiency-kinds.png").is_file()
    tables = fraction_tables(RunDir.open(root).results, "ds")
    kinds = kinds_present(tables[0])
    curves = kind_curves(tables, kinds)
    picked = {key: [p.encoder for p in points] for key, points in curves["linear"].items()}
    assert picked == {"ssl": [SSL, SSL], "imagenet": [IMAGENET, IMAGENET], "foundation": [DINOV2, DINOV2]}
    style = CurveStyle(kind_legend(kinds), colours([c.key for c in CONTENDERS]), intervals=True)
    figure = draw_label_efficiency(curves, style)
    assert [t.get_text() for t in figure.legends[0].get_texts()] == [
        "Best in-domain SSL",
        "Best ImageNet transfer",
        "Best foundation model",
    ]
    accuracy_panel = figure.axes[0]
    bars = [c for c in accuracy_panel.containers if isinstance(c, ErrorbarContainer)]
    for container, key in zip(bars, ("ssl", "imagenet", "foundation"), strict=True):
        encoder = picked[key][0]
        expected = [_row(rows, encoder, fraction) for fraction in (0.01, 1.0)]
        line, _, (segments,) = container.lines
        assert np.allclose(line.get_ydata(), [100 * r["accuracy"] for r in expected])
        ends = [sorted(segment[:, 1]) for segment in segments.get_segments()]
        cis = [[100 * r["accuracy_ci_low"], 100 * r["accuracy_ci_high"]] for r in expected]
        assert np.allclose(ends, cis)


def test_with_ssl_and_a_foundation_model_only_the_verdict_is_that_pair(tmp_path: Path) -> None:
    md, _ = report(tmp_path, _rows(tmp_path, {SSL: SHARES[SSL], DINOV2: SHARES[DINOV2]}))
    assert "### Verdict: in-domain SSL vs foundation model" in md
    assert (
        "> The answer changes with the number of labels: in-domain SSL is better than foundation model" in md
    )
    sentence = _at(md, "100 %")[0]
    assert sentence.startswith(
        f"> At 100 % labels (100 labelled images): {DINOV2_NAME} is better than {SSL_NAME}"
    )
    assert "label-efficiency-kinds.png" in md


def test_without_a_foundation_model_the_report_stays_two_way(report: tuple[Path, Path]) -> None:
    """The session fixture: 'tissue' has SSL and ImageNet encoders only, 'tissue3' also a foundation model."""
    md, html = (path.read_text() for path in report)
    tissue, tissue3 = md.split("\n## tissue\n", 1)[1].split("\n## tissue3\n", 1)
    assert "### Verdict: in-domain SSL vs ImageNet transfer\n" in tissue
    assert "label-efficiency-kinds" not in tissue and "foundation" not in tissue.lower()
    assert "### Verdict: in-domain SSL vs ImageNet transfer vs foundation model" in tissue3
    assert "label-efficiency-kinds" in tissue3
    assert len(re.findall(r"^> At (50|100) % labels \(\d+ labelled images\): ", tissue3, re.M)) == 2
    assert html.count('class="pair-test"') == 6


KINDS = list(CONTENDERS)


def _pairing(a: int, b: int, difference: float | None, p: float = 0.001) -> Pairing:
    """A pair of ``KINDS`` with a paired test of ``difference`` (a − b) and ``p``, or none (None)."""
    found = Pairing(1.0, KINDS[a], KINDS[b])
    if difference is None:
        found.why = "no encoder"
    else:
        found.compared = {"accuracy": Comparison("accuracy", 0.8, 0.7, difference, 0, 0, p, 100)}
    return found


@pytest.mark.parametrize(
    ("tests", "expected"),
    [
        (
            [(0.1, 0.001), (0.1, 0.001), (0.05, 0.3)],
            (
                "in-domain SSL is best",
                ": better than ImageNet transfer and foundation model",
                "verdict-better",
            ),
        ),
        (
            [(-0.1, 0.001), (-0.2, 0.001), (-0.1, 0.001)],
            (
                "foundation model is best",
                ": better than in-domain SSL and ImageNet transfer",
                "verdict-worse",
            ),
        ),
        (
            [(0.1, 0.001), (0.03, 0.4), (-0.05, 0.2)],
            (
                "in-domain SSL scores highest (not significantly above foundation model)",
                "; in-domain SSL is better than ImageNet transfer",
                "verdict-same",
            ),
        ),
        (
            [(0.01, 0.8), (-0.02, 0.6), (0.0, 1.0)],
            (
                "no significant difference between in-domain SSL, ImageNet transfer and foundation model",
                "",
                "verdict-same",
            ),
        ),
        (
            [(0.1, 0.001), (None, 1), (None, 1)],
            (
                "in-domain SSL is best (foundation model not compared)",
                ": better than ImageNet transfer",
                "verdict-better",
            ),
        ),
        ([(None, 1), (None, 1), (None, 1)], ("no verdict", "", "verdict-same")),
    ],
)
def test_standing_says_who_is_best_from_the_paired_tests(
    tests: list[tuple[float | None, float]], expected: tuple[str, str, str]
) -> None:
    pairings = [_pairing(a, b, d, p) for (a, b), (d, p) in zip(((0, 1), (0, 2), (1, 2)), tests, strict=True)]
    assert standing(KINDS, pairings) == expected


def test_both_label_efficiency_figures_draw_the_floor(threeway) -> None:
    root, _, md, _ = threeway
    assert md.count("dotted grey: the floor") == 1  # the per-encoder figure's caption
    tables = fraction_tables(RunDir.open(root).results, "ds")
    kinds = kinds_present(tables[0])
    floor = {"accuracy": 0.5, "auroc": 0.5}  # 50 test images of each of two classes
    style = CurveStyle(kind_legend(kinds), colours([c.key for c in CONTENDERS]), intervals=True, floor=floor)
    figure = draw_label_efficiency(kind_curves(tables, kinds), style)
    assert FLOOR_LABEL in [t.get_text() for t in figure.legends[0].get_texts()]
    for panel, value in ((figure.axes[0], 50.0), (figure.axes[1], 0.5)):
        (line,) = [line for line in panel.get_lines() if line.get_label() == FLOOR_LABEL]
        assert np.allclose(line.get_ydata(), value)
