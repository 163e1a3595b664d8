"""Where `study` finds its spaces: a user's ./search_spaces/ first, then the shipped ones, which
a plain install carries too: the wheel's `study` runs them from an empty folder with nothing of
the clone on its path.

The wheel is built from a copy of the tree (so no stale build/ folder can leak in) and installed
with --no-deps into a fresh virtual environment that sees the packages of the interpreter running
the tests (torch, Ray and MLflow are not downloaded again), however that one was made: a plain
Python, a virtualenv (whose "system" site-packages would be its base interpreter's, without the
tool's dependencies), conda.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from study.cli import app
from study.space import SpaceError, load_space, space_files

ROOT = Path(__file__).resolve().parents[1]
NOT_SOURCE = {".git", "build", "dist", "mlruns", "out", "runs", "data", ".venv", ".hypothesis"}
"""The clone's top-level state and outputs, not part of the source a wheel is built from."""


def _source_only(folder: str, names: list[str]) -> set[str]:
    top = Path(folder).resolve() == ROOT
    return {n for n in names if n == "__pycache__" or n.endswith(".egg-info")
            or (top and n in NOT_SOURCE)}


def _run(command: list[str | Path], cwd: Path, timeout: float) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env |= {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
    done = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, f"{command}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, Path]:
    """The wheel, and a fresh venv with it installed: {"wheel", "bin", "empty"}."""
    tmp = tmp_path_factory.mktemp("install")
    shutil.copytree(ROOT, tmp / "src", ignore=_source_only)
    # offline where this environment has the build backend; else pip fetches it (CI has PyPI)
    build = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", *build, "-w", tmp / "dist",
          tmp / "src"], cwd=tmp, timeout=300)
    (wheel,) = (tmp / "dist").glob("study-*.whl")
    _run([sys.executable, "-m", "venv", tmp / "venv"], cwd=tmp, timeout=300)
    venv_bin = tmp / "venv" / "bin"
    _see_these_packages(venv_bin / "python")
    _run([venv_bin / "python", "-m", "pip", "install", "--no-deps", "--no-index", wheel],
         cwd=tmp, timeout=300)
    empty = tmp / "empty"
    empty.mkdir()
    return {"wheel": wheel, "bin": venv_bin, "empty": empty}


def _see_these_packages(python: Path) -> None:
    """Put this interpreter's site-packages on the path of the venv's `python`, after its own
    (where the wheel goes): a .pth file lists the folders, so their own .pth files (an editable
    install of this clone among them) are not run there."""
    own = _run([python, "-c", "import site; print(site.getsitepackages()[0])"], cwd=python.parent,
               timeout=60).strip()
    ours = [*site.getsitepackages(), *([site.getusersitepackages()] if site.ENABLE_USER_SITE
                                       else [])]
    (Path(own) / "zz_outer_site_packages.pth").write_text(
        "".join(f"{p}\n" for p in ours if Path(p).is_dir()))


def _repo_spaces() -> set[str]:
    return {p.stem for p in (ROOT / "search_spaces").glob("*.py") if not p.stem.startswith("_")}


def test_a_space_in_the_working_directory_wins_over_the_shipped_one(tmp_path, monkeypatch):
    own = tmp_path / "search_spaces"
    own.mkdir()
    smoke = (ROOT / "search_spaces" / "smoke.py").read_text()
    (own / "quickstart.py").write_text(smoke)  # a user's quickstart: smoke's 29 trials
    (own / "mine.py").write_text(smoke.replace('name="smoke"', 'name="mine"'))
    (own / "_shared.py").write_text("LR = 0.1\n")  # a helper module, not a space
    (own / "broken.py").write_text('"""Half written."""\nspace = Space(\n')
    monkeypatch.chdir(tmp_path)

    space, source = load_space("quickstart")
    assert (space.name, len(space.expand()), source) == ("smoke", 29, smoke)
    assert load_space("lr_regimes")[0].name == "lr_regimes"  # not overridden: the shipped one
    assert list(space_files()) == sorted(_repo_spaces() | {"mine", "broken"})
    result = CliRunner().invoke(app, ["spaces"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()}
    assert lines["quickstart"].endswith(f"[{own / 'quickstart.py'}]")
    summary = ast.get_docstring(ast.parse(smoke)).split(".")[0]  # its docstring's first words
    assert lines["mine"].split(None, 1)[1].startswith(summary)
    assert "(not valid Python: line 2" in lines["broken"]
    assert "[" not in lines["lr_regimes"]
    with pytest.raises(SpaceError, match="broken.py: could not be loaded"):
        load_space("broken")
    with pytest.raises(SpaceError, match="'nope': not in ./search_spaces/ or shipped; known"):
        load_space("nope")


@pytest.mark.timeout(600)
def test_the_wheel_ships_every_space_and_lists_them_from_an_empty_folder(installed):
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    shipped = {Path(n).stem for n in names if n.startswith("search_spaces/")}
    assert shipped - {"__init__"} == _repo_spaces()
    assert not [n for n in names if n.startswith("tests/")]

    bin_, empty = installed["bin"], installed["empty"]
    where = _run([bin_ / "python", "-c", "import study.space as s; print(s.SPACES_DIR)"],
                 cwd=empty, timeout=120).strip()
    # the venv's copy, not this clone (an editable install of it sits in the packages the venv
    # sees)
    assert Path(where).is_relative_to(bin_.parent), where
    listed = _run([bin_ / "study", "spaces"], cwd=empty, timeout=120).splitlines()
    assert {line.split()[0] for line in listed} == _repo_spaces()
    load = "from study.space import load_space; print(len(load_space('quickstart')[0].expand()))"
    trials = int(_run([bin_ / "python", "-c", load], cwd=empty, timeout=120))
    assert trials == len(load_space(str(ROOT / "search_spaces" / "quickstart.py"))[0].expand())


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_installed_tool_plans_trains_and_analyses_from_an_empty_folder(installed):
    run_dir = installed["empty"].parent / "run"
    run_dir.mkdir()
    uri = f"sqlite:///{run_dir.parent / 'store' / 'mlflow.db'}"
    plan = _run([installed["bin"] / "study", "sweep", "quickstart", "--dry-run",
                 "--tracking-uri", uri], cwd=run_dir, timeout=300)
    assert "space quickstart:" in plan
    _run([installed["bin"] / "study", "run", "smoke", "--select", "seed=0", "--select",
          "arm=reinit", "--tracking-uri", uri], cwd=run_dir, timeout=540)
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("smoke").experiment_id],
                              "tags.`study.stage` != 'launch'")
    assert {r.data.tags["study.arm"] for r in runs} == {"dense", "lottery", "reinit"}
    assert len(runs) == 9 and all(r.info.status == "FINISHED" for r in runs)
    # figures, tables and the report: nothing they need is left behind in the clone
    _run([installed["bin"] / "study", "analyze", "smoke", "--tracking-uri", uri], cwd=run_dir,
         timeout=300)
    report = (run_dir / "out" / "smoke" / "report.md").read_text()
    assert "![" in report and (run_dir / "out" / "smoke" / "1_accuracy_vs_remaining.png").exists()
