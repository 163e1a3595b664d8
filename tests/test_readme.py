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


def test_readme_quotes_the_checked_in_report_word_for_word():
    """The README's result paragraph is the Answer of a generated report, never retyped: the
    block scripts/quote_report.py writes equals the checked-in report's Answer, and the run it
    came from is named."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("quote", ROOT / "scripts" / "quote_report.py")
    quote = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quote)
    readme = (ROOT / "README.md").read_text()
    block = readme.split(quote.START, 1)[1].split(quote.END, 1)[0].strip().splitlines()
    report = (quote.RESULTS / "report.md").read_text()
    assert block[0] == "> " + quote.answer(report)
    run = report.splitlines()[0].removeprefix("<!-- run: ").removesuffix(" -->")
    assert block[-1] == f"> — the report of the run on {run}"
    for name in quote.FIGURES:
        assert f"docs/results/quickstart/{name}" in readme and (quote.RESULTS / name).exists()
