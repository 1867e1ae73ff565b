"""The study report: ``medssl report DIR`` → DIR/report.md and a self-contained DIR/report.html."""

from medssl.report.api import write_report

__all__ = ["write_report"]
