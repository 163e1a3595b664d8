"""Search spaces: a base configuration, a grid over it, seeds and arms -> matched trials.

A space file is Python (trusted like any script you run) that defines `space = Space(...)`.
By name, a space is `./search_spaces/NAME.py` in the working directory (a user's own studies)
or else one shipped with the tool. Every combination is validated when the space is loaded, so
a mistake is reported, naming the field, before anything is written or trained.
"""

from __future__ import annotations

import ast
import itertools
import json
import runpy
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from study.specs import (
    ARM_OPTION_READERS,
    ARMS,
    STABILITY_ARMS,
    TRAIN_SMALL_ARMS,
    ArmOptions,
    DataSpec,
    DenseSpec,
    ModelSpec,
    PruneSpec,
    TrainSpec,
    TrialSpec,
    flat_fields,
    same_as_another,
)

SECTIONS = ("data", "model", "train", "prune", "options")
SPACES_DIR = Path(__file__).resolve().parents[1] / "search_spaces"
"""The shipped spaces: the repository's search_spaces/ folder, which the wheel installs as the
`search_spaces` package beside `study` (so this path holds in a clone and in any install)."""


class SpaceError(ValueError):
    """An invalid search space or selection; the message names the field and what is allowed."""


class Resources(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    cpu: float = Field(default=1.0, gt=0)
    gpu: float = Field(default=0.0, ge=0)


class BudgetCheck(BaseModel):
    """Cells trained again at `factor` x the dense budget (steps or epochs; evaluations as
    often relative to it): the dense net, its chain and `arms`, on the same seeds. Under a
    decaying schedule every run flattens at its end, so where a run's best validation accuracy
    falls cannot alone tell a finished run from a budget-limited one, and sparse nets from a
    fresh init learn slower: a short budget can widen lottery - reinit by itself. The analysis
    reports how far each gap moves when the budget grows (`analysis.budget`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    factor: float = Field(default=2.0, gt=1.0, le=16.0)
    where: dict[str, list[Any]] = {}
    """The cells checked: dotted keys of the grid's fields ("model.width", "train.lr",
    "prune.granularity") and the values a checked cell has; empty: every cell."""
    arms: list[str] = ["reinit"]
    """The control arms trained at the longer budget (the chain's own rounds always are)."""

    def selects(self, sections: dict[str, dict[str, Any]]) -> bool:
        return all(sections[k.split(".")[0]].get(k.split(".", 1)[1]) in v
                   for k, v in self.where.items())

    def longer(self, sections: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """A grid point's sections at `factor` x its budget."""
        train = dict(sections["train"])
        key = "steps" if train.get("steps") is not None else "epochs"
        train[key] = (round(train[key] * self.factor) if key == "steps"
                      else train[key] * self.factor)
        train["eval_every"] = round(train.get("eval_every", 100) * self.factor)
        return {**sections, "train": train}


class Space(BaseModel):
    """A study: base sections, a grid of overrides (dotted keys or whole-section dicts), seeds."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    data: dict[str, Any] = {}
    model: dict[str, Any] = {}
    train: dict[str, Any]
    prune: dict[str, Any] = {}
    options: dict[str, Any] = {}
    grid: dict[str, list[Any]] = {}
    """{"train.lr": [0.01, 0.1]} varies one field; {"prune": [{...}, {...}]} several together."""
    linked: list[dict[str, dict[str, Any]]] = []
    """Points spanning sections that must change together (LTH's Conv-2/4/6 each have their own
    lr, steps and conv rate): {"model": {...}, "train": {...}, "prune": {...}}, crossed with the
    grid and the seeds."""
    seeds: list[int] = [0]
    arms: list[str] = ["reinit", "scratch_b", "finetune", "sign_constant", "random_prune",
                       "small_dense", "supermask"]
    """Control arms trained on every round's mask (dense and each chain's own rounds always
    run). On a fine-tune chain (prune.retrain 'finetune') the chain's rounds are the finetune
    arm, so `finetune` here adds nothing there and is left out of its trials; likewise an arm
    that would train the very trials of another on a plan (`specs.same_as_another`: small
    dense nets on an MLP's layerwise structured plan are its pruned nets) is left out there.
    The train-small arms, which mask single weights (`specs.TRAIN_SMALL_ARMS`: snip ...
    rigl_b), are left out of a structured plan's trials."""
    stability: list[int] = []
    """Rounds whose instability to SGD noise is measured (Frankle et al. 2020): two copies of
    θk trained under two noise seeds and the line between them (arms stability and
    interpolation). 0 = the dense net at each plan's rewind step k; r = IMP round r's
    subnetwork. Empty: none."""
    budget_check: BudgetCheck | None = None
    """Cells trained again at a multiple of the budget, to tell an effect from a speed
    (`BudgetCheck`); None: no check."""
    resources: Resources = Resources()
    checkpoint_seconds: float = Field(default=60.0, gt=0)
    """Seconds of training between a sweep trial's checkpoints: a killed trial resumes from the
    last, and loses at most this much work."""
    checkpoint_every: int | None = Field(default=None, ge=1)
    """Training steps between checkpoints instead, when given (exact steps, for tests)."""
    channels_last: bool = False
    """Lay conv nets out channels-last (NHWC) when the command line does not say
    (`--channels-last/--no-channels-last`). Off by default: on some CPUs it crashes or hangs
    small conv nets (see `study.execution.Execution.channels_last`)."""
    retries: int = Field(default=2, ge=0, le=10)
    """How often a sweep restarts a trial whose worker died (from its last checkpoint) before
    the trial is recorded FAILED and its dependents are skipped."""
    stall_seconds: float = Field(default=300.0, gt=0)
    """A trial that makes no training progress for max(this, 50 x its own typical step time)
    is reported as stalled, with its id and step, and its process is stopped."""
    tune: dict[str, tuple[float, float]] = {"lr": (1e-4, 1.0)}
    """Log-uniform ranges `study tune` searches for each arm: lr, and weight_decay if given."""

    @field_validator("tune")
    @classmethod
    def _tune_ranges(cls, ranges: dict[str, tuple[float, float]]) -> dict:
        for key, (low, high) in ranges.items():
            if key not in ("lr", "weight_decay"):
                raise ValueError(f"tune: {key!r} cannot be tuned; allowed: lr, weight_decay")
            if not 0 < low < high:
                raise ValueError(f"tune.{key}: need 0 < low < high, got ({low}, {high})")
        return ranges

    def tuned_keys(self) -> list[str]:
        """Option fields the space takes from `study tune` (options={"lr": "tuned"})."""
        return [k for k, v in self.options.items() if v == "tuned"]

    @field_validator("arms")
    @classmethod
    def _known_arms(cls, arms: list[str]) -> list[str]:
        for arm in arms:
            if arm in STABILITY_ARMS:
                raise ValueError(f"arms: {arm!r} is not a control arm; list the rounds to "
                                 "measure in `stability` (0 = the dense net)")
            if arm not in ARMS or arm in ("dense", "lottery"):
                allowed = [a for a in ARMS if a not in ("dense", "lottery", *STABILITY_ARMS)]
                raise ValueError(f"arms: unknown control arm {arm!r}; allowed: "
                                 f"{', '.join(allowed)} (dense and lottery always run)")
        return arms

    @field_validator("stability")
    @classmethod
    def _stability_rounds(cls, rounds: list[int]) -> list[int]:
        if any(r < 0 for r in rounds) or len(set(rounds)) != len(rounds):
            raise ValueError(f"stability: {rounds}; give distinct rounds >= 0 (0 = dense net)")
        return rounds

    @field_validator("grid")
    @classmethod
    def _grid_keys(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in grid.items():
            if key.split(".")[0] not in SECTIONS:
                raise ValueError(f"grid: key {key!r} must start with one of {', '.join(SECTIONS)}")
            if not values:
                raise ValueError(f"grid.{key}: give at least one value")
        return grid

    @model_validator(mode="after")
    def _linked_fits_grid(self) -> Space:
        varied = {k for k in self.grid if "." in k}
        varied |= {f"{k}.{f}" for k, vs in self.grid.items() if "." not in k
                   for v in vs if isinstance(v, dict) for f in v}
        for point in self.linked:
            for section, fields in point.items():
                if section not in SECTIONS:
                    raise ValueError(f"linked: section {section!r} must be one of "
                                     f"{', '.join(SECTIONS)}")
                clash = sorted(f"{section}.{f}" for f in fields if f"{section}.{f}" in varied)
                if clash:  # a linked value would silently override the grid's
                    raise ValueError(f"linked: {', '.join(clash)} is also varied by the grid")
        return self

    @model_validator(mode="after")
    def _budget_check_fits(self) -> Space:
        check = self.budget_check
        if check is None:
            return self
        for key in check.where:
            if "." not in key or key.split(".")[0] not in SECTIONS:
                raise ValueError(f"budget_check.where: key {key!r} must be a dotted field of "
                                 f"one of {', '.join(SECTIONS)}, e.g. 'model.width'")
        extra = sorted(set(check.arms) - set(self.arms))
        if extra:
            raise ValueError(f"budget_check.arms: {', '.join(extra)} not in the space's arms "
                             f"({', '.join(self.arms)}); check arms the space runs")
        if not any(check.selects(c) for c in self.combinations()):
            raise ValueError(f"budget_check.where: {check.where} selects no grid point; use "
                             "values the grid has")
        return self

    def combinations(self) -> list[dict[str, dict[str, Any]]]:
        """Every grid point as complete section dicts (base overridden by the grid)."""
        out = []
        for point in itertools.product(*self.grid.values()):
            sections = {s: dict(getattr(self, s)) for s in SECTIONS}
            for key, value in zip(self.grid, point):
                head, _, field = key.partition(".")
                if field:
                    sections[head][field] = value
                else:
                    sections[head].update(value)
            for point in self.linked or [{}]:
                out.append({s: {**sections[s], **point.get(s, {})} for s in SECTIONS})
        return out

    def expand(self, tuned: dict[str, dict[str, float]] | None = None) -> list[TrialSpec]:
        """All trials, upstream first: dense nets, chain rounds in order, then every arm.

        `tuned` ({arm: {"lr": ...}}) fills options the space marks "tuned"; without it they are
        left at their defaults (enough to validate the space)."""
        dense, imp, arms, copies, lines = {}, {}, {}, {}, {}
        points = [(sections, self.arms, self.stability) for sections in self.combinations()]
        if self.budget_check is not None:
            check = self.budget_check
            points += [(check.longer(sections), check.arms, [])
                       for sections, _, _ in points if check.selects(sections)]
        for sections, arm_names, stability in points:
            for seed in self.seeds:
                d, p, _ = _specs(_untuned(sections), seed)
                spec = TrialSpec(stage="dense", arm="dense", dense=d)
                dense.setdefault(spec.id, spec)
                for r in range(1, p.rounds + 1):
                    # the chain trains at the dense lr: its masks are the shared ground truth
                    spec = _trial(sections, stage="imp", arm=p.chain_arm, round=r, dense=d,
                                  prune=p)
                    imp.setdefault(spec.id, spec)
                    for arm in (a for a in arm_names if a != p.chain_arm
                                and not same_as_another(a, p, d) and not (
                                    a in TRAIN_SMALL_ARMS and p.granularity == "structured")):
                        spec = _trial(sections, stage="arm", arm=arm, round=r, dense=d, prune=p,
                                      options=_options(sections, arm, tuned))
                        arms.setdefault(spec.id, spec)
                for r in stability:
                    plan = p if r > 0 else PruneSpec(rewind_step=p.rewind_step)
                    spec = _trial(sections, stage="arm", arm="interpolation", round=r, dense=d,
                                  prune=plan)
                    lines.setdefault(spec.id, spec)
                    copies.update({c.id: c for c in spec.parents()})
        by_round = sorted(imp.values(), key=lambda s: s.round)
        return [*dense.values(), *by_round, *sorted(arms.values(), key=lambda s: s.round),
                *copies.values(), *lines.values()]


def _specs(sections: dict[str, dict[str, Any]], seed: int):
    """The dense spec, pruning plan and arm options of one grid point, with readable errors."""
    try:
        dense = DenseSpec(data=DataSpec(**sections["data"]), model=ModelSpec(**sections["model"]),
                          train=TrainSpec(**sections["train"]), seed=seed)
        return dense, PruneSpec(**sections["prune"]), ArmOptions(**sections["options"])
    except ValidationError as err:
        raise SpaceError(_explain(err, sections)) from None


def _untuned(sections: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    options = {k: v for k, v in sections["options"].items() if v != "tuned"}
    return {**sections, "options": options}


def _options(sections: dict[str, dict[str, Any]], arm: str,
             tuned: dict[str, dict[str, float]] | None) -> ArmOptions:
    """The arm's options, with "tuned" fields taken from `study tune`'s result for that arm."""
    fields = {k: v for k, v in _untuned(sections)["options"].items()
              if arm in ARM_OPTION_READERS.get(k, (arm,))}  # an option reaches its readers
    for key, value in sections["options"].items():
        if value == "tuned" and tuned is not None:
            if key not in tuned.get(arm, {}):
                raise SpaceError(f"options.{key}: 'tuned', but no tuned value for arm {arm!r}; "
                                 f"run `study tune SPACE --arm {arm}` first")
            fields[key] = tuned[arm][key]
    try:
        return ArmOptions(**fields)
    except ValidationError as err:
        raise SpaceError(_explain(err, sections)) from None


def _trial(sections: dict[str, dict[str, Any]], **fields: Any) -> TrialSpec:
    try:
        return TrialSpec(**fields)
    except ValidationError as err:
        raise SpaceError(_explain(err, sections)) from None


def _explain(err: ValidationError, sections: dict[str, Any]) -> str:
    """One line per problem: the field, what is wrong, the value given."""
    section = err.title.removesuffix("Spec").lower()
    lines = []
    for e in err.errors():
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "value_error":  # our validators already name the field and the fix
            lines.append(msg)
        else:
            field = ".".join([section, *(str(x) for x in e["loc"])])
            lines.append(f"{field}: {msg} (got {e.get('input')!r})")
    point = json.dumps({k: v for k, v in sections.items() if v}, default=str)
    return "invalid search space: " + "; ".join(lines) + f"\n  at grid point {point}"


def load_space(name_or_path: str) -> tuple[Space, str]:
    """A space by name (./search_spaces/NAME.py, else the shipped one) or by path; returns it
    with its source text."""
    path = Path(name_or_path)
    if not path.suffix:
        path = space_files().get(name_or_path, path)
    if not path.is_file():
        known = ", ".join(space_files()) or "none"
        where = f"no such file {path}" if path.suffix else "not in ./search_spaces/ or shipped"
        raise SpaceError(f"space {name_or_path!r}: {where}; known spaces: {known}")
    try:
        namespace = runpy.run_path(str(path))
    except ValidationError as err:
        raise SpaceError(f"{path.name}: " + _explain(err, {})) from None
    except SpaceError:
        raise
    except Exception as err:
        raise SpaceError(f"{path.name}: could not be loaded: {type(err).__name__}: {err}") from err
    space = namespace.get("space")
    if not isinstance(space, Space):
        raise SpaceError(f"{path.name}: must define `space = Space(...)`")
    space.expand()  # validates every combination now, before any work starts
    return space, path.read_text()


def space_files() -> dict[str, Path]:
    """Every space by name: the shipped ones, each replaced by ./search_spaces/NAME.py where the
    working directory has one. Files starting with `_` are not spaces."""
    files: dict[str, Path] = {}
    for folder in (SPACES_DIR, Path.cwd() / "search_spaces"):
        files.update({p.stem: p for p in folder.glob("*.py") if not p.stem.startswith("_")})
    return dict(sorted(files.items()))


def space_summary(path: Path) -> str:
    """The first line of a space file's docstring, read without running the file."""
    try:
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    except SyntaxError as err:
        return f"(not valid Python: line {err.lineno}: {err.msg})"
    return doc.partition("\n")[0]


def select(trials: list[TrialSpec], filters: list[str]) -> list[TrialSpec]:
    """Trials matching every KEY=VALUE (KEY: a spec field, dotted or by its last name, or
    `arm`, `stage`, `round`, `seed`), plus the upstream trials they need, in order."""
    wanted = [_parse_filter(f) for f in filters]
    known = {k for t in trials for k in _fields(t)}
    for key, value in wanted:
        if not any(k == key or k.endswith("." + key) for k in known):
            raise SpaceError(f"--select {key}={value}: unknown field {key!r}; e.g. seed, arm, "
                             "round, train.lr, granularity, model.width")
    chosen = {t.id for t in trials if all(_matches(t, k, v) for k, v in wanted)}
    if filters and not chosen:
        raise SpaceError(f"--select {' '.join(filters)}: no trial matches")
    needed, frontier = set(chosen), [t for t in trials if t.id in chosen]
    while frontier:
        parents = [p for t in frontier for p in t.parents() if p.id not in needed]
        needed |= {p.id for p in parents}
        frontier = parents
    return [t for t in trials if t.id in needed]


def _parse_filter(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise SpaceError(f"--select {text!r}: expected KEY=VALUE, e.g. seed=0 or train.lr=0.1")
    return key.strip(), value.strip()


def _matches(trial: TrialSpec, key: str, value: str) -> bool:
    hits = [v for k, v in _fields(trial).items() if k == key or k.endswith("." + key)]
    return any(_same(h, value) for h in hits)


def _fields(trial: TrialSpec) -> dict[str, Any]:
    flat = flat_fields(trial.model_dump(mode="json"))
    flat["seed"] = trial.dense.seed
    return flat


def _same(actual: Any, wanted: str) -> bool:
    try:
        return float(actual) == float(wanted)
    except (TypeError, ValueError):
        return str(actual) == wanted
