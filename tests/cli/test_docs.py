"""The documentation cannot drift from the code: the CLI reference is regenerated from
--help, the README's table lists every finding kind and every command, and docs/testing.md
describes exactly the test files there are."""

import importlib.machinery
import os
import importlib.util
import re
from pathlib import Path

from verify.cli.main import cli, every_command
from verify.core.findings import KINDS

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


# ---- README, --help and the man pages held to the code: defaults, option names, exit codes, paths ----

import shlex  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import click  # noqa: E402

from verify.report import render as report  # noqa: E402
from verify.cli import store_options  # noqa: E402
from verify.core.progress import DEFAULT_INTERVAL  # noqa: E402

UNIT = ROOT / "contrib" / "systemd" / "archverify-check.service"
CRON = ROOT / "contrib" / "cron.d" / "archverify"




def _spellings() -> set[str]:
    """Every option string some command takes (hidden aliases included)."""
    return {o for cmd in every_command().values() for p in cmd.params for o in (*p.opts, *p.secondary_opts)}


def _readme_options_table() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("| option | meaning |")
    return readme[start:readme.index("\n\n", start)]


def test_readme_names_only_options_that_exist():
    readme = (ROOT / "README.md").read_text()
    named = set(re.findall(r"`(--?[a-z][a-z0-9-]*)", readme))
    named |= set(re.findall(r"(?<![\w/-])(--[a-z][a-z0-9-]+)(?=[ =`|,)/])", _readme_options_table()))
    others = {"-f"}  # 'archipelago stop -f', Archipelago's own
    assert sorted(named - _spellings() - others - {"--no-progress", "--debug", "--version", "--help", "-h"}) == []


def test_readme_defaults_are_the_codes():
    table = _readme_options_table()
    row = next(line for line in table.splitlines() if line.startswith("| `--max-shown"))
    assert f"default {report.DEFAULT_SHOWN})" in row
    row = next(line for line in table.splitlines() if line.startswith("| `-j, --jobs"))
    assert f"{store_options.READ_JOBS_PER_CPU} per CPU, at most {store_options.READ_JOBS_MAX}" in row
    defaults = {p.name: p.default for p in every_command()["scan"].params}
    row = next(line for line in table.splitlines() if line.startswith("| `--inflight"))
    assert f"default {defaults['inflight']})" in row and f"default {defaults['connect_timeout']:g} s" in row
    readme = (ROOT / "README.md").read_text()
    assert f"every {DEFAULT_INTERVAL:g} s" in readme


def test_readme_exit_codes_are_theevery_command():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Exit codes"):]
    table = set(int(c) for c in re.findall(r"^\| (\d+) \|", section[:section.index("\n\n", section.index("|"))],
                                          flags=re.M))
    codes = {c for cmd in every_command().values() for c in cmd.exit_codes}
    assert table == codes


def test_every_command_has_its_exit_codes_in_its_help():
    for name, cmd in every_command().items():
        assert {130, 143} <= set(cmd.exit_codes), name
        ctx = click.Context(cmd, info_name=name)
        text = cmd.get_help(ctx)
        for code in cmd.exit_codes:
            assert re.search(rf"^\s+{code}\s+\S", text, flags=re.M), (name, code)


def _man_pages(tmp_path) -> dict[str, str]:
    subprocess.run([sys.executable, str(ROOT / "scripts" / "gen-man"), str(tmp_path)], check=True,
                   capture_output=True, cwd=ROOT)
    return {p.name[:-2]: p.read_text() for p in tmp_path.glob("*.1")}


def test_man_pages_one_per_command_exit_status_own_see_also_existing(tmp_path):
    pages = _man_pages(tmp_path)
    expected = {"archverify"} | {"archverify-" + n.replace(" ", "-") for n in every_command()}
    assert set(pages) == expected
    for name, cmd in every_command().items():
        text = pages["archverify-" + name.replace(" ", "-")]
        status = text[text.index(".SH EXIT STATUS"):text.index(".SH", text.index(".SH EXIT STATUS") + 1)]
        assert set(int(c) for c in re.findall(r"^\\fB(\d+)\\fR$", status, flags=re.M)) == set(cmd.exit_codes), name
    top = pages["archverify"]
    assert all(f" {code} " in top[top.index(".SH EXIT STATUS"):] for code in (0, 1, 2, 130, 143))
    for name, text in pages.items():
        refs = set(re.findall(r"\\fB([a-z\\-]+)\\fR\(1\)", text))
        assert {r.replace("\\-", "-") for r in refs} <= set(pages), name


def test_one_prometheus_textfile_path_everywhere():
    """Debian's node-exporter textfile dir in the README, the docs, contrib and check --help."""
    texts = {p: p.read_text() for p in [ROOT / "README.md", UNIT, CRON, *(ROOT / "docs").glob("*.md")]}
    texts["check --help"] = every_command()["check"].get_help(click.Context(every_command()["check"], info_name="check"))
    paths = {m for t in texts.values() for m in re.findall(r"--prometheus-textfile\s+(/\S+)", t)}
    assert {os.path.dirname(p) for p in paths} == {"/var/lib/prometheus/node-exporter"}, paths


def _exec_start(unit: Path) -> list[str]:
    text = unit.read_text().replace("\\\n", " ")
    line = next(ln for ln in text.splitlines() if ln.startswith("ExecStart="))
    return shlex.split(line.partition("=")[2])


def test_the_unit_and_the_cron_line_take_only_options_check_has():
    cron = next(ln for ln in CRON.read_text().splitlines() if ln and not ln.startswith(("#", "SHELL", "PATH")))
    for argv in (_exec_start(UNIT), shlex.split(cron)[6:]):
        assert argv[:2] in (["/usr/bin/archverify", "check"], ["archverify", "check"]), argv
        given = {a.split("=")[0] for a in argv[2:] if a.startswith("-")}
        assert given <= _spellings(), given
    assert "--progress" in _exec_start(UNIT)  # the journal gets progress lines


# options a help names that are not the command's own, and why
NOT_OWN = {"finalize": {"-f"}, "restart": {"-f", "-l", "-o"},  # 'archipelago stop -f', an ssh example
           "pithos-migrate": {"--yes"},  # its subcommands'
           "sample": {"--config"}}  # the 'archverify scan --config' to run next


def test_no_help_mentions_an_option_its_command_lacks():
    for name, cmd in every_command().items():
        own = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
        text = (cmd.help or "") + " ".join((getattr(p, "help", "") or "") for p in cmd.params)
        named = set(re.findall(r"(?<![\w-])(--?[a-z][a-z0-9-]*)", text))
        assert sorted(named - own - NOT_OWN.get(name, set())) == [], name
