"""report.md / report.html: the verdict table, sentences generated from it, provenance, figures."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

VERDICT_COLUMNS = ["comparison", "model", "width", "lr", "warmup", "granularity", "rewind_step",
                   "round", "remaining_pct", "n", "mean", "t_low", "t_high", "boot_low",
                   "boot_high", "p_holm", "verdict"]


def write_table(table: pd.DataFrame, out: Path, name: str) -> str:
    """CSV, LaTeX and Markdown of a table; returns the Markdown."""
    table.to_csv(out / f"{name}.csv", index=False)
    (out / f"{name}.tex").write_text(table.to_latex(index=False, float_format="%.3g"))
    markdown = table.to_markdown(index=False, floatfmt=".3g")
    (out / f"{name}.md").write_text(markdown + "\n")
    return markdown


def verdict_table(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Differences in percentage points, one row per comparison and condition."""
    table = verdicts[[c for c in VERDICT_COLUMNS if c in verdicts]].copy()
    for col in ("mean", "t_low", "t_high", "boot_low", "boot_high"):
        table[col] = table[col] * 100
    return table.rename(columns={"mean": "diff_pp", "remaining_pct": "remaining_%"})


def sentences(verdicts: pd.DataFrame) -> list[str]:
    """One plain sentence per condition where something was decided."""
    lines = []
    for r in verdicts.itertuples():
        where = (f"{r.model} x{r.width:g}, lr {r.lr:g}, {r.granularity}, round {r.round} "
                 f"({r.remaining_pct:.1f}% remaining)")
        if r.verdict == "too few seeds":
            lines.append(f"{where}: {r.comparison}: too few seeds ({r.n}) to decide.")
            continue
        gap = f"{r.mean * 100:+.1f} pp [{r.t_low * 100:.1f}, {r.t_high * 100:.1f}]"
        tail = f"(Holm p={r.p_holm:.2g}, {r.n} seeds)"
        if r.verdict.startswith("effect"):
            lines.append(f"{where}: {r.a} vs {r.b}: {r.verdict.removeprefix('effect: ')} "
                         f"by {gap} {tail}.")
        else:
            lines.append(f"{where}: {r.a} vs {r.b}: no effect detected, {gap} {tail}.")
    return lines


def provenance(experiment: str, frame: pd.DataFrame, unusable: pd.DataFrame,
               launches: list) -> list[str]:
    counts = unusable.reason.value_counts().to_dict() if not unusable.empty else {}
    finished = frame.drop_duplicates("run_id").shape[0]
    spaces = sorted({r.data.tags.get("study.space", "?") for r in launches})
    versions = sorted({r.data.tags.get("study.version", "?") for r in launches})
    return [f"experiment: {experiment}; space: {', '.join(spaces) or '?'}; "
            f"package version: {', '.join(versions) or '?'}; launches: {len(launches)}",
            f"runs finished: {finished}; diverged: {counts.get('diverged', 0)}; skipped: "
            f"{counts.get('skipped', 0)}; failed: {counts.get('failed', 0)}; killed: "
            f"{counts.get('killed', 0)}"]


def unusable_section(unusable: pd.DataFrame) -> str:
    if unusable.empty:
        return "None: every run finished and is matched.\n"
    cols = [c for c in ("run_id", "arm", "granularity", "lr", "round", "seed", "reason",
                        "diverged_step") if c in unusable]
    return unusable[cols].to_markdown(index=False) + "\n"


def write(out: Path, title: str, intro: list[str], sections: list[tuple[str, str]],
          figures: list[Path], skipped: list[str]) -> Path:
    """report.md (figures linked) and report.html (figures inline)."""
    md = [f"# {title}", "", *[f"- {line}" for line in intro], ""]
    for heading, body in sections:
        md += [f"## {heading}", "", body, ""]
    md += ["## Figures", ""] + [f"![{p.stem}]({p.name})" for p in figures if p.suffix == ".png"]
    md += ["", *[f"- skipped: {line}" for line in skipped]]
    (out / "report.md").write_text("\n".join(md) + "\n")
    images = "".join(
        f'<h3>{p.stem}</h3><img src="data:image/png;base64,'
        f'{base64.b64encode(p.read_bytes()).decode()}" style="max-width:100%">'
        for p in figures if p.suffix == ".png")
    body = "".join(f"<h2>{html.escape(h)}</h2><pre>{html.escape(b)}</pre>" for h, b in sections)
    intro_html = "".join(f"<li>{html.escape(line)}</li>" for line in intro)
    (out / "report.html").write_text(
        f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(title)}</h1><ul>{intro_html}</ul>{body}{images}</body></html>")
    return out / "report.md"
