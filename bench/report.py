"""What the benchmark hands back: one flat dict of ratios with their targets, a text table, the
JSON, and two seaborn figures (PNG + PDF): the ratios against their targets, and `speed`
(inference speedup against sparsity, the analysis's speed figure)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

TARGETS = {  # key prefix -> (comparison, threshold)
    "trainer/": (">=", 0.95),
    "orchestration/trial_in_sweep_over_run": ("<=", 1.05),
    "orchestration/parallel_speedup": (">=", 1.8),
    "orchestration/parallel_span_speedup": (">=", 1.8),
    "packed/mlp-mnist1d/k16": (">=", 2.5),  # packs of the quickstart's MLP over solo bare
    "packed/mlp-mnist1d/k64": (">=", 3.0),
    "packed/default/": (">=", 1.0),  # the pack size a sweep picks here over training alone
    "efficiency/training_over_solo_bare": (">=", 1.5),  # a finished quickstart, idle machine
    "efficiency/setup_and_records_ms_per_trial": ("<=", 30.0),  # the pack profile
}


def ratio_keys(trainer: list[str], models: list[str], batches: list[int],
               sparsities: list[float], options: list[tuple[str, str]],
               packed: list[tuple[str, int]] = ()) -> list[str]:
    """Every ratio the JSON carries (None where a part was skipped), in table order."""
    from bench.inference import METHODS

    keys = [f"trainer/{case}/{masks}" for case in trainer for masks in ("unmasked", "masked80")]
    keys += ["orchestration/trial_in_sweep_over_run", "orchestration/lone_trial_sweep_over_run",
             "orchestration/train_seconds_sweep_over_run", "orchestration/parallel_speedup",
             "orchestration/parallel_span_speedup"]
    keys += [f"options/{case}/{option}" for case, option in options]
    keys += [f"inference/{m}/b{b}/{method}/{round(s * 100)}" for m in models for b in batches
             for method in METHODS for s in sparsities]
    keys += ["efficiency/naive_over_unique_steps", "efficiency/wall_over_critical_path",
             "efficiency/wall_over_lower_bound", "efficiency/training_over_solo_bare",
             "efficiency/setup_and_records_ms_per_trial"]
    keys += [f"packed/{model}/k{k}" for model, k in packed]
    keys += [f"packed/{model}/solo" for model in dict.fromkeys(m for m, _ in packed)]
    keys += [f"packed/default/{model}" for model in dict.fromkeys(m for m, _ in packed)]
    return keys


def collect_ratios(results: dict, keys: list[str]) -> dict[str, float | None]:
    """The flat {key: ratio} view of the parts' results."""
    found: dict[str, float] = {}
    for row in results.get("trainer") or []:
        masks = "unmasked" if row["masks"] == "none" else "masked80"
        found[f"trainer/{row['case']}/{masks}"] = row["ratio"]
    orch = results.get("orchestration") or {}
    if orch:
        found["orchestration/lone_trial_sweep_over_run"] = orch["sweep_over_run"]
        t = orch["train_seconds"]
        found["orchestration/train_seconds_sweep_over_run"] = t["sweep"] / t["run"]
        if orch.get("per_trial"):
            found["orchestration/trial_in_sweep_over_run"] = (
                orch["per_trial"]["trial_in_sweep_over_run"])
        par = orch.get("parallel") or {}
        if par:
            found["orchestration/parallel_speedup"] = par["speedup"]
            found["orchestration/parallel_span_speedup"] = par["span_speedup"]
    for row in results.get("options") or []:
        found[f"options/{row['case']}/{row['option']}"] = row["ratio"]
    for row in results.get("inference") or []:
        key = (f"inference/{row['model']}/b{row['batch']}/{row['method']}/"
               f"{round(row['sparsity'] * 100)}")
        found[key] = row["speedup"]
    eff = results.get("efficiency") or {}
    if eff:
        found["efficiency/naive_over_unique_steps"] = eff["naive_over_unique"]
        path = eff.get("critical_path") or {}
        for name in ("wall_over_critical_path", "wall_over_lower_bound"):
            if path.get(name) is not None:
                found[f"efficiency/{name}"] = path[name]
        if eff.get("profile"):
            found["efficiency/setup_and_records_ms_per_trial"] = (
                eff["profile"]["setup_and_records_ms_per_trial"])
        if (eff.get("training") or {}).get("efficiency") is not None:
            found["efficiency/training_over_solo_bare"] = eff["training"]["efficiency"]
    packed = results.get("packed") or []
    alone = {row["model"]: row["ratio_vs_solo_bare"] for row in packed if not row["stacked"]}
    for row in packed:
        name = f"k{row['k']}" if row["stacked"] else "solo"
        found[f"packed/{row['model']}/{name}"] = row["ratio_vs_solo_bare"]
        if row["default"] and row["model"] in alone:  # packing's gain: over the plain loop
            found[f"packed/default/{row['model']}"] = row["ratio_vs_solo_bare"] / alone[
                row["model"]]
    return {k: found.get(k) for k in keys}


def intervals(results: dict) -> dict[str, tuple[float, float]]:
    """Bootstrap intervals of the ratios that have them (the trainer's and the options')."""
    out = {f"trainer/{r['case']}/{'unmasked' if r['masks'] == 'none' else 'masked80'}":
           tuple(r["ratio_interval"]) for r in results.get("trainer") or []}
    out.update({f"options/{r['case']}/{r['option']}": tuple(r["ratio_interval"])
                for r in results.get("options") or []})
    return out


def _meets(value: float, op: str, threshold: float) -> bool:
    return value >= threshold if op == ">=" else value <= threshold


def verdict(key: str, value: float | None,
            interval: tuple[float, float] | None = None) -> tuple[str, str]:
    """(target text, verdict) for a ratio: met, MISSED, or missed within the noise (the
    interval reaches the target), skipped; no target: ('', '')."""
    for prefix, (op, threshold) in TARGETS.items():
        if not key.startswith(prefix):
            continue
        if value is None:
            return f"{op} {threshold}", "skipped"
        if _meets(value, op, threshold):
            return f"{op} {threshold}", "met"
        best = None if interval is None else interval[1] if op == ">=" else interval[0]
        noise = best is not None and _meets(best, op, threshold)
        return f"{op} {threshold}", "missed, within noise" if noise else "MISSED"
    return "", ""


def table(ratios: dict[str, float | None], inference: list[dict],
          spread: dict[str, tuple[float, float]] | None = None) -> str:
    """The ratios with targets, then the inference speedups as model x batch x method rows."""
    spread = spread or {}
    lines = [f"{'ratio':<46} {'value':>7} {'95% interval':>15}  {'target':<8} verdict"]
    for key, value in ratios.items():
        if key.startswith("inference/"):
            continue
        target, result = verdict(key, value, spread.get(key))
        unit = " ms" if key.endswith("_ms_per_trial") else "x"  # the one figure not a ratio
        shown = "-" if value is None else f"{value:.3f}{unit}"
        low, high = spread.get(key, (None, None))
        band = f"[{low:.3f}, {high:.3f}]" if low is not None else ""
        lines.append(f"{key:<46} {shown:>7} {band:>15}  {target:<8} {result}")
    if inference:
        sparsities = sorted({r["sparsity"] for r in inference})
        lines += ["", "inference speedup vs dense (median of paired ratios, CPU time)",
                  f"{'model':<16}{'batch':>6}  {'method':<32}"
                  + "".join(f"{s:>8.0%}" for s in sparsities)]
        keys = dict.fromkeys((r["model"], r["batch"], r["label"]) for r in inference)
        for model, batch, label in keys:
            cells = {r["sparsity"]: r["speedup"] for r in inference
                     if (r["model"], r["batch"], r["label"]) == (model, batch, label)}
            lines.append(f"{model:<16}{batch:>6}  {label:<32}"
                         + "".join(f"{cells[s]:>7.2f}x" for s in sparsities))
    return "\n".join(lines)


def _times(value: float, _position=None) -> str:
    return f"{value:g}x"


def _some_times(value: float, _position=None) -> str:
    """Label the minor ticks at 2 and 5 of each decade only (the rest would overlap)."""
    mantissa = value / 10 ** math.floor(math.log10(value))
    return _times(value) if any(abs(mantissa - m) < 1e-6 for m in (2, 5)) else ""


def speed_figure(inference: list[dict]) -> plt.Figure:
    """Speedup against sparsity, one panel per model and batch size, log scale, dense = 1."""
    df = pd.DataFrame(inference)
    df["sparsity (%)"] = (df["sparsity"] * 100).round().astype(int)
    df["batch"] = "batch " + df["batch"].astype(str)
    grid = sns.relplot(data=df, x="sparsity (%)", y="speedup", hue="label", style="label",
                       col="model", row="batch", kind="line", marker="o", markersize=7,
                       height=3.0, aspect=1.3, facet_kws={"sharey": False}, dashes=False)
    for ax in grid.axes.flat:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(_times))
        ax.yaxis.set_minor_formatter(FuncFormatter(_some_times))
        ax.axhline(1.0, color="0.4", lw=1, ls="--", gid="dense")
    grid.set_titles("{col_name}, {row_name}")
    grid.set_axis_labels("weights pruned (%)", "speedup vs dense")
    grid.legend.set_title("")
    grid.figure.suptitle("Inference on this CPU (1 thread): what pruning buys", y=1.03)
    return grid.figure


def ratios_figure(trainer: list[dict], ratios: dict[str, float | None]) -> plt.Figure:
    """Library/bare throughput per model (median and 95% bootstrap interval of the per-round
    CPU-time ratios, target 0.95), and the orchestration ratios against their targets."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8), width_ratios=[3, 2])
    rounds = [{"case": r["case"], "masks": "unmasked" if r["masks"] == "none"
               else f"{r['masks']} masked", "ratio": bare / lib}
              for r in trainer for bare, lib in zip(r["times_s"]["bare"]["cpu"],
                                                    r["times_s"]["library"]["cpu"])]
    if rounds:
        sns.barplot(data=pd.DataFrame(rounds), x="case", y="ratio", hue="masks",
                    estimator="median", errorbar=("ci", 95), seed=0, ax=left)
        left.axhline(0.95, color="C3", ls="--", lw=1, gid="target")
        left.set(xlabel="", ylabel="library / bare throughput", title="Training loop")
        left.legend(loc="lower center", ncol=2, title="")
    orch = {k.split("/")[1]: v for k, v in ratios.items()
            if k.startswith("orchestration/") and v is not None}
    if orch:
        sns.barplot(x=list(orch.values()), y=list(orch), ax=right, color="C0", orient="h")
        for target in (1.05, 1.8):
            right.axvline(target, color="C3", ls="--", lw=1, gid="target")
        right.set(xlabel="ratio (targets: trial in sweep / run <= 1.05, parallel >= 1.8)",
                  ylabel="",
                  title="Orchestration")
    else:
        right.set_axis_off()
        right.text(0.5, 0.5, "orchestration not run", ha="center", va="center")
    fig.tight_layout()
    return fig


def write(results: dict, out: Path, docs_figure: Path | None = None) -> dict[str, Path]:
    """bench.json, bench.png/.pdf, speed.png/.pdf in `out` (+ a copy of speed.png)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "bench.json"}
    paths["json"].write_text(json.dumps(results, indent=2, default=str))
    figures = {"bench": ratios_figure(results.get("trainer") or [], results["ratios"])}
    if results.get("inference"):
        figures["speed"] = speed_figure(results["inference"])
    for name, fig in figures.items():
        for ext in ("png", "pdf"):
            paths[f"{name}.{ext}"] = out / f"{name}.{ext}"
            fig.savefig(paths[f"{name}.{ext}"], dpi=150, bbox_inches="tight")
        plt.close(fig)
    if docs_figure is not None and "speed.png" in paths:
        docs_figure.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(paths["speed.png"], docs_figure)
        paths["docs"] = docs_figure
    return paths
