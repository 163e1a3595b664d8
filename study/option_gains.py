"""Which execution options pay on this machine: the options bench's figures, kept per machine.

bf16 autocast, channels-last and `torch.compile` help on one CPU and hurt on another (on an AMD
EPYC of family 26, Zen 5 with AVX512-BF16, bf16 trained Conv-4 1.78x faster and the MLP 0.68x;
on the family-25 AVX2 machine bf16 ran 0.05x). `study bench --part options` measures them
(`bench.options`) and records each ratio here, per machine (`study.packing.machine`) and model,
in `$STUDY_CACHE_DIR/option_gains.json`; `study sweep --dry-run` names the ones that pay for the
space's models. Nothing is switched on from here: bf16 changes the numbers (it is part of a
trial's id), so it stays the space's choice, and the layout and compile stay flags.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from study.packing import cache_dir, machine

PAYS = 1.05
"""Ratio over the default loop above which an option is named as paying (the bench's
side-by-side rounds scatter by a few percent)."""
SWITCH = {"bf16": "train.precision='bf16' in the space (changes the numbers)",
          "channels_last": "--channels-last", "compile": "--compile"}
"""How each option is switched on."""


def _path() -> Path:
    return cache_dir() / "option_gains.json"


def _read() -> dict:
    try:
        return json.loads(_path().read_text())
    except (OSError, ValueError):
        return {}


def _where(device: str) -> str:
    """The machine at the thread count a bench or a CLI process runs with (all its cores)."""
    return machine(device, torch.get_num_threads())


def record(rows: list[dict]) -> None:
    """Keep the options bench's rows ({model, option, ratio, device}) for this machine."""
    cached = _read()
    for row in rows:
        where = _where(row["device"])
        cached.setdefault(where, {}).setdefault(row["model"], {})[row["option"]] = row["ratio"]
    path = _path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(cached, indent=1))
    tmp.replace(path)


def advice(models: list[str], device: str = "cpu") -> str:
    """One line for the dry run: per model of the space, the options measured here that pay,
    with their switch, or that none was measured."""
    where = _where(device)
    measured = _read().get(where, {})
    found = {m: measured[m] for m in dict.fromkeys(models) if m in measured}
    if not found:
        return (f"options: none measured for {', '.join(dict.fromkeys(models))} on {where} "
                "(`study bench --part options` measures bf16, channels-last and compile)")
    parts = []
    for model, ratios in found.items():
        paying = [f"{o} {r:.2f}x ({SWITCH[o]})" for o, r in sorted(ratios.items())
                  if r >= PAYS and o in SWITCH]
        parts.append(f"{model}: " + ("; ".join(paying) if paying else
                                     "none pays (" + ", ".join(
                                         f"{o} {r:.2f}x" for o, r in sorted(ratios.items()))
                                     + ")"))
    return f"options measured on {where} (`study bench --part options`): " + " | ".join(parts)
