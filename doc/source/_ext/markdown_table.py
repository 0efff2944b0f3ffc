"""``.. markdown-table:: PATH`` with ``:after-heading: PREFIX`` (and ``:columns: a, b``, a
subset of the header's columns): a table from a Markdown file.

The benchmark harness writes its results as Markdown (``benchmarks/results/summary-*.md``);
this shows the first table after the ``##`` heading starting with PREFIX as a real table, so
the documentation shows the committed figures rather than a copy of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import Directive, directives
from sphinx.application import Sphinx


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def find_table(text: str, heading: str) -> list[list[str]]:
    """Rows (the header first) of the first pipe table after ``## <heading>...``."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(f"## {heading}")]
    if not starts:
        raise ValueError(f"no heading '## {heading}...'")
    rows: list[list[str]] = []
    for line in lines[starts[0] + 1 :]:
        if line.startswith("## "):
            break
        if line.startswith("|"):
            rows.append(_cells(line))
        elif rows:
            break
    if len(rows) < 2 or not all(set(c) <= set("-: ") for c in rows[1]):
        raise ValueError(f"no table after '## {heading}...'")
    return [rows[0], *rows[2:]]


def select_columns(rows: list[list[str]], names: list[str]) -> list[list[str]]:
    """Only the columns named (by their header), in that order."""
    header = rows[0]
    try:
        picked = [header.index(name.strip()) for name in names]
    except ValueError:
        raise ValueError(f"columns {names} not all in the header {header}") from None
    return [[row[i] if i < len(row) else "" for i in picked] for row in rows]


def _cell(text: str) -> nodes.entry:
    paragraph = nodes.paragraph()
    for i, piece in enumerate(text.split("`")):
        if piece:
            paragraph += nodes.literal(text=piece) if i % 2 else nodes.Text(piece.strip("*"))
    return nodes.entry("", paragraph)


def _table(rows: list[list[str]]) -> nodes.table:
    width = len(rows[0])
    group = nodes.tgroup(cols=width)
    group += [nodes.colspec(colwidth=1) for _ in range(width)]
    head, body = nodes.thead(), nodes.tbody()
    head += nodes.row("", *[_cell(c) for c in rows[0]])
    for row in rows[1:]:
        body += nodes.row("", *[_cell(c) for c in (row + [""] * width)[:width]])
    group += [head, body]
    return nodes.table("", group)


class MarkdownTable(Directive):
    required_arguments = 1
    option_spec = {
        "after-heading": directives.unchanged_required,
        "columns": directives.unchanged_required,
    }

    def run(self) -> list[nodes.Node]:
        env = self.state.document.settings.env
        source = Path(env.doc2path(env.docname)).parent / self.arguments[0]
        env.note_dependency(str(source.resolve()))
        try:
            rows = find_table(source.read_text(), self.options["after-heading"])
            if "columns" in self.options:
                rows = select_columns(rows, self.options["columns"].split(","))
        except (OSError, ValueError) as e:
            raise self.error(f"{self.arguments[0]}: {e}") from e
        return [_table(rows)]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("markdown-table", MarkdownTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
