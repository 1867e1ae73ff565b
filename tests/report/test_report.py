"""``write_report`` end to end on the fixture run: files, escaping, embedded images, verdict, missing pixels."""

from __future__ import annotations

import base64
import csv
import io
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from medssl.report import write_report
from medssl.report.html import CSP
from medssl.report.rundir import PNG_SIGNATURE
from tests.report.runfixture import DOLLAR_CLASS, WEIRD_CLASS

IMG = re.compile(r"<img\b[^>]*>")


def test_writes_markdown_html_and_figure_files(run_dir: Path, report: tuple[Path, Path]) -> None:
    md_path, html_path = report
    assert (md_path, html_path) == (run_dir / "report.md", run_dir / "report.html")
    md = md_path.read_text()
    linked = re.findall(r"!\[[^\]]*\]\((report_files/[^)]+\.png)\)", md)
    assert len(linked) >= 10
    for relative in linked:
        assert (run_dir / relative).read_bytes().startswith(PNG_SIGNATURE)
    assert not [p for p in run_dir.rglob("*") if ".tmp" in p.name], "temporary files left behind"
    for heading in ("Verdict", "Label efficiency", "Pre-training curves", "t-SNE", "Confusion", "retrieval"):
        assert heading in md


def test_every_image_is_an_embedded_png(report: tuple[Path, Path]) -> None:
    page = report[1].read_text()
    tags = IMG.findall(page)
    assert len(tags) >= 10
    for tag in tags:
        source = re.search(r'src="([^"]*)"', tag)
        assert source and source.group(1).startswith("data:image/png;base64,"), tag[:80]
        data = base64.b64decode(source.group(1).split(",", 1)[1], validate=True)
        assert data.startswith(PNG_SIGNATURE)
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    assert f'content="{CSP}"' in page
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)
    assert "<script" not in page.lower() and "<link" not in page.lower() and "@import" not in page


def test_text_from_the_data_is_escaped(report: tuple[Path, Path]) -> None:
    md, page = report[0].read_text(), report[1].read_text()
    for name in (WEIRD_CLASS, DOLLAR_CLASS):
        assert name not in page
    assert "<b>" not in page and "<i>" not in page
    assert "&lt;b&gt;&amp;&quot;x&quot;" in page and "cost $5 &lt;i&gt;" in page
    assert r"\<b\>\&" in md and r"cost $5 \<i\>" in md
    assert "<b>" not in md


def test_provenance_and_run_metadata_are_shown(run_dir: Path, report: tuple[Path, Path]) -> None:
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    page = report[1].read_text()
    for key in ("command", "machine", "started"):
        assert config[key] in page
    assert page.count(config["command"]) >= 10  # under every table and figure
    assert "tissue/eval/imagenet-efficientnet_lite0/predictions/linear-f1-s0.npz" in page


def _accuracy(path: Path) -> float:
    with np.load(path) as data:
        return float(np.mean(data["y_prob"].argmax(1) == data["y_true"]))


def test_verdict_compares_best_ssl_and_imagenet_on_their_predictions(
    run_dir: Path, report: tuple[Path, Path]
) -> None:
    with (run_dir / "results.csv").open(newline="") as handle:
        rows = [
            r for r in csv.DictReader(handle) if r["dataset"] == "tissue" and float(r["label_fraction"]) == 1
        ]
    linear = [r for r in rows if r["protocol"] == "linear" and r["collapsed"] == "False"]
    ssl = max(
        (r for r in linear if r["method"] in ("vicreg", "simclr", "simsiam")),
        key=lambda r: float(r["accuracy"]),
    )
    assert ssl["encoder"] == "vicreg-resnet18-random"
    difference = 100 * (
        _accuracy(run_dir / f"tissue/eval/{ssl['encoder']}/predictions/linear-f1-s0.npz")
        - _accuracy(run_dir / "tissue/eval/imagenet-efficientnet_lite0/predictions/linear-f1-s0.npz")
    )
    md = report[0].read_text()
    verdict = md.split("\n## tissue\n", 1)[1].split("### Verdict", 1)[1].split("###", 1)[0]
    sentence = next(line for line in verdict.splitlines() if line.startswith("> At 100 % labels"))
    assert (
        "in-domain SSL (VICReg, resnet18, random init)" in sentence
        and r"ImageNet frozen (efficientnet\_lite0)" in sentence
    )
    shown = float(re.search(r"([+−-]?\d+\.\d) points of accuracy", sentence).group(1).replace("−", "-"))
    assert abs(shown) == pytest.approx(abs(difference), abs=0.051)
    assert re.search(r"p[=<]\d\.\d+", sentence)
    assert "2000 resamples" in verdict and "95% CI" in verdict


@pytest.fixture
def moved_data_run(run_dir: Path, tmp_path: Path) -> Path:
    """A copy of the run whose 'tissue' images can no longer be found."""
    copy = Path(shutil.copytree(run_dir, tmp_path / "moved", ignore=shutil.ignore_patterns("report*")))
    config = yaml.safe_load((copy / "config.yaml").read_text())
    config["datasets"]["tissue"].update(path=str(tmp_path / "gone"), layout="auto")
    (copy / "config.yaml").write_text(yaml.safe_dump(config))
    return copy


def test_the_report_never_needs_the_dataset_and_says_when_retrieval_images_are_missing(
    moved_data_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import medssl.data.dataset

    def no_decoding(*args, **kwargs):
        raise AssertionError("the report decoded a dataset")

    monkeypatch.setattr(medssl.data.dataset, "prepare_data", no_decoding)
    for path in (moved_data_run / "tissue3" / "eval").glob("*/retrieval.npz"):
        path.unlink()  # a run made before retrieval images were written
    md_path, html_path = write_report(moved_data_run, n_bootstrap=200)
    md = md_path.read_text()
    tissue, tissue3 = md.split("\n## tissue\n", 1)[1].split("\n## tissue3\n", 1)
    assert "retrieval-" in tissue and "No encoder has retrieval images" not in tissue  # its data moved away
    assert "retrieval-" not in tissue3 and "No encoder has retrieval images" in tissue3
    assert "t-SNE" in tissue and "report_files/d1-tissue-confusion.png" in tissue
    assert "No encoder has retrieval images" in html_path.read_text()


def test_stale_figures_are_removed_and_reruns_are_stable(moved_data_run: Path) -> None:
    folder = moved_data_run / "report_files"
    folder.mkdir()
    (folder / "d9-old-figure.png").write_bytes(PNG_SIGNATURE)
    md_path, _ = write_report(moved_data_run, n_bootstrap=200)
    assert not (folder / "d9-old-figure.png").exists()
    linked = set(re.findall(r"\((report_files/[^)]+\.png)\)", md_path.read_text()))
    assert {f"report_files/{p.name}" for p in folder.iterdir()} == linked


def test_empty_results_give_a_page_that_says_so(tmp_path: Path) -> None:
    (tmp_path / "results.csv").write_text("dataset,encoder,method,protocol,label_fraction,seed\n")
    md_path, html_path = write_report(tmp_path)
    assert "no finished rows yet" in md_path.read_text()
    assert "<table>" in html_path.read_text()
