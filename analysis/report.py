"""Writing results: every table as Markdown, LaTeX and CSV; report.md (figures linked by
relative path) and report.html (figures inline, so the one file can be mailed or archived)."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass
class Section:
    """One report section, already rendered for both formats."""

    heading: str
    markdown: str
    html: str


def write_table(table: pd.DataFrame, out: Path, name: str,
                numbers: pd.DataFrame | None = None) -> tuple[str, str, list[Path]]:
    """`name`.md and `name`.tex of the shown table, `name`.csv of `numbers` (default: the same
    table); returns (Markdown, HTML, paths written)."""
    paths = [out / f"{name}.md", out / f"{name}.tex", out / f"{name}.csv"]
    markdown = table.to_markdown(index=False, floatfmt=".3g") if len(table) else "(empty)"
    paths[0].write_text(markdown + "\n")
    paths[1].write_text(table.to_latex(index=False, float_format="%.3g", escape=True))
    (table if numbers is None else numbers).to_csv(paths[2], index=False)
    rendered = table.to_html(index=False, float_format=lambda v: f"{v:.3g}", border=0,
                             classes="table", na_rep="–")
    return markdown, rendered, paths


def table_section(heading: str, table: pd.DataFrame, out: Path, name: str,
                  numbers: pd.DataFrame | None = None, note: str = "") -> tuple[Section,
                                                                              list[Path]]:
    """A section holding one table (written to disk too), with an optional note above it."""
    markdown, rendered, paths = write_table(table, out, name, numbers)
    files = ", ".join(f"[{p.suffix[1:]}]({p.name})" for p in paths)
    md = (note + "\n\n" if note else "") + markdown + f"\n\nAs {files}."
    body = (f"<p>{html.escape(note)}</p>" if note else "") + rendered
    return Section(heading, md, body), paths


def text_section(heading: str, lines: list[str], bullets: bool = True) -> Section:
    md = "\n".join(f"- {line}" if bullets else line for line in lines)
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    return Section(heading, md, f"<ul>{items}</ul>")


def paragraph_section(heading: str, text: str) -> Section:
    """A section holding one paragraph of prose."""
    return Section(heading, text, f"<p>{html.escape(text)}</p>")


def write(out: Path, title: str, sections: list[Section], figures: list[Path],
          skipped: list[str]) -> list[Path]:
    """report.md and report.html; returns their paths."""
    pngs = [p for p in figures if p.suffix == ".png"]
    md = [f"# {title}", ""]
    for s in sections:
        md += [f"## {s.heading}", "", s.markdown, ""]
    md += ["## Figures", ""]
    for p in pngs:
        md += [f"### {p.stem}", "", f"![{p.stem}]({p.name}) ([pdf]({p.stem}.pdf))", ""]
    if skipped:
        md += ["## Figures and tables skipped", "", *[f"- {line}" for line in skipped], ""]
    (out / "report.md").write_text("\n".join(md))
    body = [f"<h1>{html.escape(title)}</h1>"]
    body += [f"<h2>{html.escape(s.heading)}</h2>{s.html}" for s in sections]
    body.append("<h2>Figures</h2>")
    body += [f'<figure><img alt="{p.stem}" src="data:image/png;base64,'
             f'{base64.b64encode(p.read_bytes()).decode()}"><figcaption>{p.stem} '
             f'(<a href="{p.stem}.pdf">pdf</a>)</figcaption></figure>' for p in pngs]
    if skipped:
        body.append("<h2>Figures and tables skipped</h2><ul>"
                    + "".join(f"<li>{html.escape(s)}</li>" for s in skipped) + "</ul>")
    (out / "report.html").write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>\n")
    return [out / "report.md", out / "report.html"]


CSS = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
       "table{border-collapse:collapse;font-size:.85em}td,th{padding:.2em .6em;"
       "border-bottom:1px solid #ddd;text-align:right}img{max-width:100%}"
       "figure{margin:1.5em 0}")
