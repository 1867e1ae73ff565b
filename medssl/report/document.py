"""A tiny document model that the report is assembled from and that ``html.py`` renders to Markdown and HTML.

All text in these objects is plain text (never markup): the renderers escape it, so class names, file
names and dataset names from the data can never inject HTML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Style = Literal["text", "strong", "em", "code", "warn", "muted"]


@dataclass(frozen=True)
class Span:
    """A run of plain text with one inline style."""

    text: str
    style: Style = "text"


Inline = list[Span]


def spans(*parts: str | Span) -> Inline:
    """Inline content from plain strings and ``Span`` objects."""
    return [part if isinstance(part, Span) else Span(part) for part in parts]


@dataclass
class Heading:
    text: str
    level: int = 2
    anchor: str | None = None


@dataclass
class Paragraph:
    content: Inline
    kind: str = ""
    """CSS flavour: '' (plain), 'note', 'source', 'verdict-better', 'verdict-worse', 'verdict-same',
    'verdict-mixed', 'pair-test' (one pair's paired test under a three-way answer)."""


@dataclass
class Code:
    """A command line or other verbatim text."""

    text: str


@dataclass
class Cell:
    """A table cell: a main value, an optional secondary line, and flags."""

    main: str
    sub: str = ""
    best: bool = False
    warn: bool = False
    code: str = ""
    """Monospace secondary text (e.g. an encoder id)."""


@dataclass
class Table:
    """Columns are flat for Markdown; ``groups`` adds an HTML header row of column groups (label, span)."""

    columns: list[str]
    rows: list[list[Cell]]
    caption: Inline = field(default_factory=list)
    notes: list[Inline] = field(default_factory=list)
    groups: list[tuple[str, int]] = field(default_factory=list)
    section_rows: dict[int, str] = field(default_factory=dict)
    """Row index → a full-width group label shown before that row."""
    kind: str = ""


@dataclass
class Figure:
    """A PNG image with a caption; ``name`` is a file-name-safe slug used for the Markdown copy."""

    name: str
    png: bytes
    caption: Inline
    alt: str
    wide: bool = True


@dataclass
class Gallery:
    """Figures shown side by side in the HTML page."""

    figures: list[Figure]


Block = Heading | Paragraph | Code | Table | Figure | Gallery


@dataclass
class Section:
    title: str
    anchor: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Document:
    title: str
    subtitle: Inline
    meta: list[tuple[str, str]]
    """(label, value) pairs for the header: command, machine, date..."""
    sections: list[Section]

    def figures(self) -> list[Figure]:
        out: list[Figure] = []
        for section in self.sections:
            for block in section.blocks:
                if isinstance(block, Figure):
                    out.append(block)
                elif isinstance(block, Gallery):
                    out.extend(block.figures)
        return out
