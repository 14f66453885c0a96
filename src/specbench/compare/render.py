"""Writing the report's blocks (see ``report``): Markdown, CSV, the self-contained HTML page
(a Jinja2 template, autoescaped) and the console tables. Text from the runs' files is made
inert in each."""

from __future__ import annotations

import base64
import csv
import html
import re
from pathlib import Path

from .fmt import NA


def md_text(s) -> str:
    """Text (run names, errors, settings: anything a run's files hold) made inert in Markdown:
    one line, HTML escaped, and no links, images, code, emphasis or table cell breaks."""
    s = html.escape(" ".join(str(s).splitlines()), quote=False)
    s = re.sub(r"([\\`*~\[\]|])", r"\\\1", s)
    return re.sub(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])", r"\\_", s)  # not inside tau_sim


def to_markdown(blocks) -> str:
    e = md_text
    lines = []
    for b in blocks:
        kind = b[0]
        if kind in ("h1", "h2"):
            lines += [("# " if kind == "h1" else "## ") + e(b[1]), ""]
        elif kind == "p":
            lines += [e(b[1]), ""]
        elif kind == "notice":
            lines += [f"> **{e(b[1])}**", ""]
        elif kind == "img":
            lines += [f"![{e(b[1])}]({b[2].name})", ""]
        else:
            _, title, headers, rows, note = b
            lines += [f"**{e(title)}**", ""] if title else []
            lines.append("| " + " | ".join(map(e, headers)) + " |")
            lines.append("|" + "---|" * len(headers))
            lines += ["| " + " | ".join(map(e, row)) + " |" for row in rows]
            lines += ["", e(note)] if note else []
            lines.append("")
    return "\n".join(lines)


def csv_cell(v):
    """A CSV value safe to open in a spreadsheet or paste into HTML: text HTML-escaped, and
    text that a spreadsheet would run as a formula (= + - @ first) prefixed with '."""
    if not isinstance(v, str) or v == NA:
        return v
    v = html.escape(v, quote=False)
    return "'" + v if v[:1] in ("=", "+", "-", "@", "\t", "\r") else v


def write_csv(path: Path, cols, rows) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(map(csv_cell, cols))
        w.writerows([map(csv_cell, row) for row in rows])


def to_html(blocks) -> str:
    """The report as one HTML page (``templates/report.html.j2``): plots inline as data URIs,
    no external resources; every text autoescaped."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("specbench.compare", "templates"),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.StrictUndefined)
    png = lambda path: base64.b64encode(Path(path).read_bytes()).decode()
    return env.get_template("report.html.j2").render(blocks=blocks, png=png)


def print_blocks(blocks, file=None) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=file, highlight=False)
    if not console.is_terminal:  # a file or a pipe: tables at their natural width
        console = Console(file=file, width=1000, highlight=False)
    for b in blocks:
        kind = b[0]
        if kind in ("h1", "h2"):
            console.print("\n" + b[1], style="bold", markup=False)
        elif kind == "notice":
            console.print(b[1], style="yellow", markup=False)
        elif kind == "p":
            console.print(b[1], markup=False)
        elif kind == "img":
            console.print(f"plot: {b[2]}", markup=False)
        else:
            _, title, headers, rows, note = b
            t = Table(title=title or None, title_justify="left")
            for h in headers:
                t.add_column(h, overflow="fold")
            for row in rows:
                t.add_row(*(Text(str(c)) for c in row))
            console.print(t)
            if note:
                console.print(note, markup=False)
