"""A self-contained HTML report (one file, images beside it) built block by block with jinja2."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment

from tamis.store import atomic_write_text

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%}
.note{color:#555;font-size:0.9em}pre{background:#f6f6f6;padding:0.6em;overflow-x:auto}
</style></head><body><h1>{{ title }}</h1>
{% for block in blocks %}{{ block }}
{% endfor %}</body></html>
"""


def _cell(value: Any, digits: int) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return "" if value is None else str(value)


class HtmlReport:
    """Collect blocks, then ``write(path)``; every value is escaped, so data cannot break the page."""

    def __init__(self, title: str):
        self.title = title
        self.blocks: list[str] = []

    def heading(self, text: str, level: int = 2) -> "HtmlReport":
        self.blocks.append(f"<h{level}>{html.escape(text)}</h{level}>")
        return self

    def paragraph(self, text: str, note: bool = False) -> "HtmlReport":
        cls = ' class="note"' if note else ""
        self.blocks.append(f"<p{cls}>{html.escape(text)}</p>")
        return self

    def code(self, text: str) -> "HtmlReport":
        self.blocks.append(f"<pre>{html.escape(text)}</pre>")
        return self

    def table(self, rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None, digits: int = 3,
              caption: str | None = None) -> "HtmlReport":
        columns = list(columns or (rows[0].keys() if rows else []))
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_cell(r.get(c), digits))}</td>" for c in columns) + "</tr>"
            for r in rows
        )
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self.blocks.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        return self

    def collapsed(self, summary: str, text: str) -> "HtmlReport":
        """Preformatted text folded away under a one-line summary (recipe, manifest: there when wanted)."""
        self.blocks.append(f"<details><summary>{html.escape(summary)}</summary><pre>{html.escape(text)}</pre>"
                           "</details>")
        return self

    def image(self, path: str | Path, alt: str = "") -> "HtmlReport":
        """Reference an image by its file name (keep images beside the report)."""
        self.blocks.append(f'<p><img src="{html.escape(Path(path).name)}" alt="{html.escape(alt)}"></p>')
        return self

    def render(self) -> str:
        return Environment(autoescape=False).from_string(_PAGE).render(title=html.escape(self.title), blocks=self.blocks)

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        atomic_write_text(path, self.render())
        return path


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None, digits: int = 3) -> str:
    """The same table as Markdown, for summaries and terminals."""
    columns = list(columns or (rows[0].keys() if rows else []))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(r.get(c), digits) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"
