"""The documentation cannot drift from the code: the CLI reference is regenerated from
--help, and the README's table lists every finding kind and every command."""

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
    for name in cli.commands:
        assert f"archverify {name}" in readme, name
