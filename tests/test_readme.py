"""The newcomer path: CI runs exactly the README's test command."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    command = ci[-1]
    assert "pytest" in command
    assert command in readme


def test_ci_runs_it_in_a_fresh_virtual_environment():
    """How most people follow the README: CI makes and activates a venv before the command."""
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    made, activated = ci.index("python3 -m venv .venv"), ci.index("source .venv/bin/activate")
    assert made < activated < len(ci) - 1


def test_readme_main_command_runs_the_quickstart():
    readme = (ROOT / "README.md").read_text()
    assert "pip install torch==2.13.0 && pip install -e . && study quickstart" in readme
