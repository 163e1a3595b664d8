"""A trial in words: one reading of its spec (`words`), and the views that print it.

Every place that names a trial to a person reads it here, so a trial is called the same way
in the runs table, on a run's page, on the progress line, in a fault file and in a failure
message:

- `run_name`: the MLflow run's name, short, readable and unique (arm, round, granularity, lr,
  width, seed, the id's start);
- `describe`: the run's description in Markdown (`mlflow.note.content`): the condition, the
  arm's own words (its docstring's first paragraph) and, once it ran, what it trained;
- `one_line`: one aligned line of a listing (the trials a failed parent blocked);
- `header`: which trial and how it runs, the first words of its fault file and failure message;
- `outcome_line`: how a trial reads on the progress line when it ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from study.arm_registry import REGISTRY
from study.specs import TrialSpec

if TYPE_CHECKING:
    from study.execution import Execution
    from study.trial import TrialRecord

GRANULARITY = {"unstructured": "unstr", "structured": "struct"}
"""A granularity as a run's name abbreviates it."""


@dataclass(frozen=True)
class Words:
    """A trial's condition as every view prints it (numbers already formatted)."""

    id: str
    arm: str
    round: int
    seed: int
    where: str
    """The pruning plan's granularity, or "dense" for a trial without one."""
    model: str
    width: str
    dataset: str
    lr: str
    """The condition's dense lr (an arm's own lr is what it trained: `describe`'s record)."""


def words(spec: TrialSpec) -> Words:
    """The one reading of a trial for people; every view below prints from it."""
    d, p = spec.dense, spec.prune
    return Words(id=spec.id, arm=spec.arm, round=spec.round, seed=d.seed,
                 where=p.granularity if p else "dense", model=d.model.name,
                 width=f"{d.model.width:g}", dataset=d.data.name, lr=f"{d.train.lr:g}")


def run_name(spec: TrialSpec) -> str:
    """Readable and unique: arm, round, granularity, lr, width, seed and the id's start."""
    w = words(spec)
    return (f"{w.arm}-r{w.round}-{GRANULARITY.get(w.where, w.where)}-lr{w.lr}-w{w.width}"
            f"-s{w.seed}-{w.id[:6]}")


def one_line(spec: TrialSpec) -> str:
    """One aligned line of a listing: arm, round, seed, granularity, lr, width and the id."""
    w = words(spec)
    return (f"{w.arm:<13} round {w.round} seed {w.seed} {w.where:<12} lr {w.lr} width "
            f"{w.width} ({w.id})")


def header(spec: TrialSpec, execution: Execution) -> str:
    """Which trial, and how it runs: the first words of its fault file and failure message."""
    w = words(spec)
    return (f"trial {w.id} ({w.arm} round {w.round} seed {w.seed} {w.where}, {w.model} width "
            f"{w.width} lr {w.lr}), execution device={execution.device} "
            f"channels_last={execution.channels_last} compile={execution.compile}")


def outcome_line(spec: TrialSpec, outcome: str, test_acc: float | None = None) -> str:
    """How an ended trial reads on the progress line: its run's name, outcome (or why it did
    not run, e.g. "failed: ..."), accuracy."""
    acc = f", test_acc {test_acc:.4f}" if test_acc is not None else ""
    return f"{run_name(spec)} {outcome}{acc}"


def describe(spec: TrialSpec, record: TrialRecord | None = None) -> str:
    """The run's description in words (Markdown): the condition, the arm, what it trained."""
    w, p = words(spec), spec.prune
    chain = "ticket" if p is None or p.retrain == "rewind" else "fine-tune chain"
    ticket = (f", round {w.round} of the {p.granularity} {p.criterion} {chain} ({p.scope}, "
              f"{p.schedule}, `{spec.ticket}`)" if p else "")
    lines = [f"**{w.arm}**{ticket}: {w.model} at width {w.width} on {w.dataset}, dense lr "
             f"{w.lr}, seed {w.seed}. Trial `{w.id}`.",
             " ".join(REGISTRY[spec.arm].description.split())]
    if record is not None:
        t, m = record.params, record.metrics
        trained = (f"Trained {t['trained.steps']} steps (schedule of "
                   f"{t['trained.schedule_steps']} from step {t['trained.start_step']}) at lr "
                   f"{t['trained.lr']}, {t['trained.schedule']}" if "trained.lr" in t
                   else "Evaluated without training")
        size = (f"; hidden widths {t['trained.widths']}, {m['remaining']:.1%} of the dense "
                "net's weights" if "remaining" in m else "")
        lines.append(f"{trained}{size}. Outcome: {record.outcome}.")
        lines.append(_mask_words(t, m))
    return "\n\n".join(text for text in lines if text)


def _mask_words(params: dict[str, str], metrics: dict[str, float]) -> str:
    """A train-small run's mask in words: its criterion, layer densities, and for SET/RigL the
    nonzero count its updates kept."""
    if "trained.mask_criterion" not in params:
        return ""
    layers = ", ".join(f"{k.removeprefix('layer_density.')} {v:.1%}" for k, v in metrics.items()
                       if k.startswith("layer_density."))
    text = f"Mask: {params['trained.mask_criterion']}; layer densities {layers}."
    if metrics.get("mask_updates"):
        low, high = int(metrics["mask_nonzero_min"]), int(metrics["mask_nonzero_max"])
        kept = f"{low}" if low == high else f"{low}-{high}"
        text += (f" {int(metrics['mask_updates'])} mask updates moved "
                 f"{int(metrics['mask_moved'])} weights, the nonzero count {kept} at each.")
    return text
