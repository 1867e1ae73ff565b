"""``write_report(run_dir)``: DIR/report.md (figures in DIR/report_files/) and self-contained report.html."""

from __future__ import annotations

from pathlib import Path

from medssl.report.html import render_html, render_markdown
from medssl.report.rundir import RunDir
from medssl.report.sections import build_document
from medssl.rundir.atomic import write_bytes
from medssl.rundir.paths import check_writable

FIGURE_FOLDER = "report_files"


def write_report(run_dir: str | Path, n_bootstrap: int = 2000) -> tuple[Path, Path]:
    """Read the benchmark run directory ``run_dir`` and write its Markdown and HTML reports.

    Args:
        run_dir: a directory written by ``medssl benchmark --out DIR``.
        n_bootstrap: resamples of the paired bootstrap behind each dataset's verdict.

    Returns:
        The paths of ``report.md`` and ``report.html``.
    """
    run = RunDir.open(run_dir)
    for folder in (run.root, run.root / FIGURE_FOLDER):
        check_writable(
            folder, f"{run.root}", "make the run directory writable, or copy it and report the copy"
        )
    document = build_document(run, n_bootstrap)
    folder = run.root / FIGURE_FOLDER
    folder.mkdir(exist_ok=True)
    written = set()
    for figure in document.figures():
        write_bytes(folder / f"{figure.name}.png", figure.png)
        written.add(f"{figure.name}.png")
    for stale in folder.glob("*.png"):
        if stale.name not in written:
            stale.unlink()
    md_path, html_path = run.root / "report.md", run.root / "report.html"
    write_bytes(md_path, render_markdown(document, FIGURE_FOLDER).encode("utf-8"))
    write_bytes(html_path, render_html(document).encode("utf-8"))
    return md_path, html_path
