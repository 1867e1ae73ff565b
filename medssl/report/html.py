"""Render a report ``Document`` as Markdown (figures as files) and as one self-contained HTML page.

Every piece of text goes through ``html.escape`` (HTML) or ``md_escape`` (Markdown); images are embedded as
``data:image/png;base64`` URIs and the stylesheet is inlined, and a Content-Security-Policy forbids any
request the page might otherwise make.
"""

from __future__ import annotations

import base64
import html
import re
from importlib import resources

from medssl.report.document import (
    Block,
    Cell,
    Code,
    Document,
    Figure,
    Gallery,
    Heading,
    Inline,
    Paragraph,
    Table,
)

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|#&!~])")
_INLINE_TAGS = {"strong": "strong", "em": "em", "code": "code"}


def esc(text: str) -> str:
    return html.escape(text, quote=True)


def md_escape(text: str) -> str:
    """Backslash-escape Markdown (and raw-HTML) syntax so data text shows literally."""
    return _MD_SPECIAL.sub(r"\\\1", text).replace("\n", " ")


def md_code(text: str) -> str:
    """An inline code span (backticks inside become quotes)."""
    return "`" + text.replace("`", "'") + "`"


def stylesheet() -> str:
    return resources.files("medssl.report").joinpath("style.css").read_text(encoding="utf-8")


# ----------------------------------------------------------------------------------------------- Markdown


def _md_inline(content: Inline) -> str:
    out = []
    for span in content:
        if span.style == "code":
            out.append(md_code(span.text))
        elif span.style == "strong":
            out.append(f"**{md_escape(span.text)}**")
        elif span.style in ("em", "muted"):
            out.append(f"*{md_escape(span.text)}*")
        else:
            out.append(md_escape(span.text))
    return "".join(out)


def _md_cell(cell: Cell) -> str:
    main = md_escape(cell.main)
    if cell.best:
        main = f"**{main}** ★"
    parts = [main]
    if cell.warn:
        parts.append("⚠")
    if cell.sub:
        parts.append(md_escape(cell.sub if cell.sub.startswith("±") else f"({cell.sub})"))
    if cell.code:
        parts.append(md_code(cell.code).replace("|", "\\|"))
    return " ".join(parts)


def _flat_columns(table: Table) -> list[str]:
    """Column names prefixed by their group ('kNN: Acc %') since Markdown has a single header row."""
    if not table.groups:
        return table.columns
    names, index = [], 0
    for label, span in table.groups:
        names += [f"{label}: {c}" if label else c for c in table.columns[index : index + span]]
        index += span
    return names


def _md_table(table: Table) -> list[str]:
    lines = []
    if table.caption:
        lines += [_md_inline(table.caption), ""]
    lines.append("| " + " | ".join(md_escape(c) for c in _flat_columns(table)) + " |")
    lines.append("|" + "|".join([" --- "] + [" ---: "] * (len(table.columns) - 1)) + "|")
    for i, row in enumerate(table.rows):
        if i in table.section_rows:
            lines.append(
                "| " + " | ".join([f"*{md_escape(table.section_rows[i])}*"] + [""] * (len(row) - 1)) + " |"
            )
        lines.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
    for note in table.notes:
        lines += ["", _md_inline(note)]
    return lines


def _md_figure(figure: Figure, folder: str) -> list[str]:
    return [f"![{md_escape(figure.alt)}]({folder}/{figure.name}.png)", "", _md_inline(figure.caption)]


def _md_block(block: Block, folder: str) -> list[str]:
    if isinstance(block, Heading):
        return ["#" * block.level + " " + md_escape(block.text)]
    if isinstance(block, Paragraph):
        text = _md_inline(block.content)
        return ["> " + text] if block.kind.startswith("verdict") or block.kind == "note" else [text]
    if isinstance(block, Code):
        return ["```", block.text.replace("```", "'''"), "```"]
    if isinstance(block, Table):
        return _md_table(block)
    if isinstance(block, Figure):
        return _md_figure(block, folder)
    lines: list[str] = []
    for figure in block.figures:
        lines += [*_md_figure(figure, folder), ""]
    return lines[:-1]


def render_markdown(document: Document, figure_folder: str) -> str:
    """Markdown with figures referenced as ``<figure_folder>/<name>.png`` (written by the caller)."""
    lines = [f"# {md_escape(document.title)}", "", _md_inline(document.subtitle), ""]
    lines += [f"- **{md_escape(label)}:** {md_escape(value)}" for label, value in document.meta] + [""]
    for section in document.sections:
        lines += [f"## {md_escape(section.title)}", ""]
        for block in section.blocks:
            lines += [*_md_block(block, figure_folder), ""]
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------------------------------- HTML


def _html_inline(content: Inline) -> str:
    out = []
    for span in content:
        text = esc(span.text)
        if span.style in _INLINE_TAGS:
            tag = _INLINE_TAGS[span.style]
            out.append(f"<{tag}>{text}</{tag}>")
        elif span.style in ("warn", "muted"):
            out.append(f'<span class="{span.style}">{text}</span>')
        else:
            out.append(text)
    return "".join(out)


def _html_cell(cell: Cell, first: bool) -> str:
    classes = (
        ["name" if first else "num"] + (["best"] if cell.best else []) + (["collapsed"] if cell.warn else [])
    )
    main = esc(cell.main)
    if cell.best:
        main += '<span class="star" title="best in column">★</span>'
    if cell.warn:
        main += '<span class="warn-mark" title="collapsed">⚠</span>'
    body = f'<div class="v">{main}</div>'
    if cell.sub:
        body += f'<div class="sub">{esc(cell.sub)}</div>'
    if cell.code:
        body += f'<div class="id"><code>{esc(cell.code)}</code></div>'
    tag = "th scope='row'" if first else "td"
    return f'<{tag} class="{" ".join(classes)}">{body}</{tag.split()[0]}>'


def _html_head(table: Table) -> str:
    if not table.groups:
        return "<tr>" + "".join(f"<th>{esc(c)}</th>" for c in table.columns) + "</tr>"
    top, bottom, index = [], [], 0
    for label, span in table.groups:
        if not label and span == 1:
            top.append(f'<th rowspan="2" class="corner">{esc(table.columns[index])}</th>')
        else:
            top.append(f'<th colspan="{span}" class="group">{esc(label)}</th>')
            bottom += [f"<th>{esc(c)}</th>" for c in table.columns[index : index + span]]
        index += span
    return f"<tr>{''.join(top)}</tr><tr class='metrics'>{''.join(bottom)}</tr>"


def _html_table(table: Table) -> str:
    parts = [f'<div class="table-block {esc(table.kind)}">']
    if table.caption:
        parts.append(f'<p class="caption">{_html_inline(table.caption)}</p>')
    parts.append(f'<div class="table-wrap"><table><thead>{_html_head(table)}</thead><tbody>')
    for i, row in enumerate(table.rows):
        if i in table.section_rows:
            label = esc(table.section_rows[i])
            parts.append(f'<tr class="section"><th colspan="{len(table.columns)}">{label}</th></tr>')
        parts.append("<tr>" + "".join(_html_cell(c, j == 0) for j, c in enumerate(row)) + "</tr>")
    parts.append("</tbody></table></div>")
    parts += [f'<p class="legend">{_html_inline(note)}</p>' for note in table.notes]
    parts.append("</div>")
    return "".join(parts)


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _html_figure(figure: Figure) -> str:
    width = " wide" if figure.wide else ""
    return (
        f'<figure class="fig{width}" id="fig-{esc(figure.name)}">'
        f'<img src="{data_uri(figure.png)}" alt="{esc(figure.alt)}" loading="eager">'
        f"<figcaption>{_html_inline(figure.caption)}</figcaption></figure>"
    )


def _html_block(block: Block) -> str:
    if isinstance(block, Heading):
        anchor = f' id="{esc(block.anchor)}"' if block.anchor else ""
        return f"<h{block.level}{anchor}>{esc(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        kind = f' class="{esc(block.kind)}"' if block.kind else ""
        return f"<p{kind}>{_html_inline(block.content)}</p>"
    if isinstance(block, Code):
        return f"<pre><code>{esc(block.text)}</code></pre>"
    if isinstance(block, Table):
        return _html_table(block)
    if isinstance(block, Figure):
        return _html_figure(block)
    assert isinstance(block, Gallery)
    return '<div class="gallery">' + "".join(_html_figure(f) for f in block.figures) + "</div>"


def render_html(document: Document) -> str:
    """One self-contained page: inline CSS, base64 PNGs, no scripts, no external requests."""
    nav = "".join(f'<a href="#{esc(s.anchor)}">{esc(s.title)}</a>' for s in document.sections)
    meta = "".join(
        f"<div{' class=long' if len(value) > 36 else ''}><dt>{esc(label)}</dt><dd>{esc(value)}</dd></div>"
        for label, value in document.meta
    )
    sections = "".join(
        f'<section id="{esc(s.anchor)}"><h2>{esc(s.title)}</h2>'
        + "".join(map(_html_block, s.blocks))
        + "</section>"
        for s in document.sections
    )
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{esc(document.title)}</title><style>{stylesheet()}</style></head>\n<body>"
        f"<header><div class='wrap'><p class='kicker'>medssl report</p><h1>{esc(document.title)}</h1>"
        f"<p class='subtitle'>{_html_inline(document.subtitle)}</p><dl class='meta'>{meta}</dl>"
        f"<nav>{nav}</nav></div></header>\n<main class='wrap'>{sections}</main>\n"
        "<footer class='wrap'>Generated by <code>medssl report</code>. Self-contained page: "
        "all figures are embedded; it makes no network requests.</footer></body></html>\n"
    )
