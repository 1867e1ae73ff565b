"""What every part of a dataset's report section shares: the run, the study table, labels and provenance."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from medssl.report import figures
from medssl.report.document import Inline, Paragraph, Span
from medssl.report.rundir import Result, RunDir
from medssl.report.tables import StudyTable


def slug(text: str) -> str:
    """A file-name and anchor safe form of ``text``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def note(text: str) -> Paragraph:
    """A highlighted remark (why something is missing)."""
    return Paragraph([Span(text)], "note")


def provenance(run: RunDir, *files: str) -> Paragraph:
    """'Source: <files> · produced by <command>' under a table or figure."""
    content: Inline = [Span("Source: ")]
    for i, name in enumerate(files):
        content += [Span(", " if i else ""), Span(name, "code")]
    if run.meta("command"):
        content += [Span(" · produced by "), Span(run.meta("command"), "code")]
    return Paragraph(content, "source")


@dataclass
class Context:
    """One dataset of the run, with its study table and class names."""

    run: RunDir
    dataset: str
    key: str
    """Slug unique within the report, used for anchors and figure file names."""
    table: StudyTable
    class_names: list[str] = field(default_factory=list)
    n_bootstrap: int = 2000

    @property
    def encoders(self) -> list[str]:
        return [row.info.encoder for row in self.table.rows]

    @property
    def labels(self) -> dict[str, str]:
        """Encoder id → display label; the id is appended where two encoders would share a label."""
        names = [row.info.label for row in self.table.rows]
        out = {}
        for row in self.table.rows:
            label = row.info.label
            out[row.info.encoder] = label if names.count(label) == 1 else f"{label} [{row.info.encoder}]"
        return out

    @property
    def palette(self) -> dict[str, str]:
        """A stable colour per encoder, shared by every figure of the dataset."""
        return figures.colours(self.encoders)

    def rows_for(self, encoder: str, protocol: str) -> list[Result]:
        """results.csv rows of one (encoder, protocol) at the table's label fraction, by seed."""
        rows = [
            r
            for r in self.run.results
            if r.dataset == self.dataset
            and r.encoder == encoder
            and r.protocol == protocol
            and math.isclose(r.label_fraction, self.table.fraction)
        ]
        return sorted(rows, key=lambda r: r.seed)
