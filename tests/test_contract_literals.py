"""Every `study.*` tag is named in one place, `study/contract.py`: no other source of the
package, the analysis or the scripts spells one (a tag spelled twice drifts apart)."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from study import contract

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("study", "analysis", "scripts")
PREFIX = re.compile(r"(?<![\w.])" + re.escape(contract.PREFIX) + r"([A-Za-z_][\w.]*)?")
TAG_NAMES = {value.removeprefix(contract.PREFIX).rstrip(".")
             for value in vars(contract).values()
             if isinstance(value, str) and value.startswith(contract.PREFIX)}
TAG_NAMES |= set(contract.TRIAL_TAGS)


def _strings(tree: ast.AST):
    """(line, text) of every string constant that is not a docstring or a bare string
    statement; an f-string's literal parts one by one."""
    bare = {id(node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                and id(node) not in bare):
            yield node.lineno, node.value


def _module_path(dotted: str) -> bool:
    """Whether `study.x.y` names a module of the package or something in one (as
    `-m study.cli` or "see study.seeds.copy_noise" do), rather than a tag."""
    parts = dotted.split(".")
    if len(parts) < 2:
        return False
    if not (ROOT / "study" / f"{parts[1]}.py").exists() and not (
            ROOT / "study" / parts[1]).is_dir():
        return False
    for cut in range(len(parts), 1, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(found, attribute):
                return False
            found = getattr(found, attribute)
        return True
    return False


def tag_literals(source: str, where: str) -> list[str]:
    """'where:line: text' for each string of `source` that spells a `study.*` tag."""
    found = []
    for line, text in _strings(ast.parse(source, where)):
        for match in PREFIX.finditer(text):
            dotted = match.group(0).rstrip(".")
            name = (match.group(1) or "").split(".")[0]
            # a module path (python -m study.cli) is not a tag, unless it is one too (study.pack)
            if dotted.count(".") == 1 and name in TAG_NAMES or not _module_path(dotted):
                found.append(f"{where}:{line}: {text[:80]!r}")
    return found


def _sources() -> list[Path]:
    contract_file = ROOT / "study" / "contract.py"
    return [p for folder in SOURCES for p in sorted((ROOT / folder).rglob("*.py"))
            if p != contract_file]


def test_no_source_but_the_contract_spells_a_study_tag():
    found = [hit for path in _sources()
             for hit in tag_literals(path.read_text(), str(path.relative_to(ROOT)))]
    assert not found, ("spell these tags with study.contract's names (tag(), ID, OUTCOME, "
                       "...):\n" + "\n".join(found))


@pytest.mark.parametrize(("source", "hits"), [
    ('tags = {"study.pack": 1}', 1),  # a tag that is also a module's name
    ("f\"tags.`study.id` = '{x}'\"", 1),  # inside an f-string
    ('f"study.{name}"', 1),  # a tag built from the prefix
    ('x = "study." + "lr"', 1),
    ('"""Docstring: `study.lr` and study.pack."""', 0),
    ('import study.train\nfrom study.pack import next_pack', 0),
    ('cmd = ["-m", "study.cli"]', 0),  # a module to run
    ('ctx.set_forkserver_preload(["study.worker"])', 0),
    ('raise ValueError("see study.seeds.copy_noise")', 0),  # a function's path
    ('x = "mystudy.lr"', 0),
])
def test_the_check_tells_a_tag_from_a_module_path(source, hits):
    assert len(tag_literals(source, "probe.py")) == hits, source


def test_the_contract_declares_what_the_analysis_reads_as_numbers():
    from analysis.load import NUMERIC

    assert set(NUMERIC) <= set(contract.NUMBERS) <= set(contract.TRIAL_TAGS)
