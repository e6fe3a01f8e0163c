"""The documentation cannot drift from the code: the CLI reference is regenerated from
--help, the README's table lists every finding kind and every command, and docs/testing.md
describes exactly the test files there are."""

import importlib.machinery
import importlib.util
import re
from pathlib import Path

from verify.cli.main import cli
from verify.findings import KINDS

ROOT = Path(__file__).resolve().parents[2]


def _cli_reference():
    loader = importlib.machinery.SourceFileLoader("cli_reference", str(ROOT / "scripts" / "cli-reference"))
    spec = importlib.util.spec_from_loader("cli_reference", loader)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.render()


def test_cli_reference_is_current():
    assert (ROOT / "docs" / "cli.md").read_text() == _cli_reference(), \
        "run: .venv/bin/python scripts/cli-reference > docs/cli.md"


def test_readme_lists_every_finding_kind():
    readme = (ROOT / "README.md").read_text()
    table = set(re.findall(r"^\| `([a-z0-9_]+)` \|", readme, flags=re.M))
    assert set(KINDS) <= table


def test_readme_names_every_command():
    readme = (ROOT / "README.md").read_text()
    for name in cli.list_commands(None):
        assert f"archverify {name}" in readme, name


def test_testing_doc_describes_exactly_the_test_files():
    """docs/testing.md has one described row per tests/**/test_*.py, and names no file that is not there."""
    doc = (ROOT / "docs" / "testing.md").read_text()
    rows = dict(re.findall(r"^\| `(tests/[^`]+)` \| *(\S.*?) *\|$", doc, flags=re.M))
    on_disk = {p.relative_to(ROOT).as_posix() for p in (ROOT / "tests").rglob("test_*.py")}
    assert sorted(on_disk - set(rows)) == [], "describe these test files in docs/testing.md"
    named = set(re.findall(r"tests/[\w/.-]*?test_\w+\.py", doc))
    assert sorted(named - on_disk) == [], "docs/testing.md names test files that do not exist"
    assert sorted(set(rows) - on_disk) == []
