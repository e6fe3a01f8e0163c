"""The conventions every command shares (docs/cli.md, "Conventions"), through the real CLI:
--format json's wrapper with the warnings, -q/-v, the preview model (--dry-run, --yes), --state
and its old spellings, the Ceph CLI's spellings; the progress lines for journald and the ETA
from the previous --state run; the human report's order, per-store counts and absolute paths.

Every command runs as a real process (``python -m verify``) where exit status and streams matter.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from pg_server import analysed_sample
from click.testing import CliRunner

from verify.cli.main import cli
from verify.ops.finalize.flow import EXIT_BLOCKED
from verify.core.findings import KINDS
from verify.core.progress import Measure, Progress

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from standins.harness import make_cluster  # noqa: E402

ENV = dict(os.environ, PYTHONPATH=str(REPO))
ENV.pop("ARCHVERIFY_DEBUG", None)
WRAPPER = {"tool", "version", "command", "warnings"}

# every command, and whether it writes (preview unless --yes), keeps --state, reaches Ceph
COMMANDS = {
    "scan": dict(ceph=True), "check": dict(ceph=True, state=True), "pithos-check": dict(ceph=True),
    "config": dict(ceph=True), "pithos-migrate status": dict(), "pithos-migrate enable": dict(writes=True),
    "pithos-migrate disable": dict(writes=True), "restart": dict(writes=True),
    "finalize": dict(writes=True, state=True), "migrate-objects": dict(writes=True, state=True),
    "upgrade-maps": dict(writes=True, state=True), "sample": dict(), "report": dict(state=True),
}


def run(*args, env=None, cwd=REPO, timeout=300):
    return subprocess.run([sys.executable, "-m", "verify", *map(str, args)], capture_output=True, text=True,
                          env=env or ENV, cwd=cwd, timeout=timeout)


def leaf_commands(group=cli, prefix=()):
    for name in group.list_commands(None):
        cmd = group.get_command(None, name)
        if hasattr(cmd, "commands"):
            yield from leaf_commands(cmd, prefix + (name,))
        else:
            yield " ".join(prefix + (name,))


def test_the_table_names_every_command():
    assert set(leaf_commands()) == set(COMMANDS)


def help_options(cmd: str) -> set[str]:
    r = CliRunner().invoke(cli, [*cmd.split(), "--help"])
    assert r.exit_code == 0, r.output
    return set(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", r.output))


@pytest.mark.parametrize("cmd", sorted(COMMANDS))
def test_help_lists_the_conventions(cmd):
    opts = help_options(cmd)
    assert {"--format", "-q", "--quiet", "-v", "--verbose", "--dry-run", "--yes"} <= opts
    if COMMANDS[cmd].get("state"):
        assert "--state" in opts and not {"--journal-dir", "--state-dir"} & opts  # old spellings hidden
    if COMMANDS[cmd].get("ceph"):
        assert {"-c", "--conf", "--id", "-n", "--name", "-k", "--keyring", "--cluster"} <= opts


# ---- a filed store and a cluster of stand-in nodes for every command -------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    d = tmp_path_factory.mktemp("conv") / "store"
    assert run("sample", d).returncode == 0
    conf = d / "archipelago.conf"
    # Archipelago ignores a hyphenated key: every command reading this config warns about it
    conf.write_text(conf.read_text().replace("[blockerm]\n", "[blockerm]\npithos-migrate = True\n"))
    return d, conf


def argv_for(cmd: str, store, tmp: Path, cluster) -> list:
    """Real arguments that make ``cmd`` do its work on the sample store (writers: their preview)."""
    d, conf = store
    nodes = cluster.nodes_arg()
    return {
        "scan": ["scan", "--config", conf],
        "check": ["check", "--config", conf, "--state", tmp / "state"],
        "config": ["config", "--config", conf],
        "pithos-migrate status": ["pithos-migrate", "status", *nodes],
        "pithos-migrate enable": ["pithos-migrate", "enable", *nodes],
        "pithos-migrate disable": ["pithos-migrate", "disable", *nodes],
        "restart": ["restart", *nodes],
        "finalize": ["finalize", *nodes, "--state", tmp / "fin"],
        "migrate-objects": ["migrate-objects", "--config", conf, "--state", tmp / "j"],
        "upgrade-maps": ["upgrade-maps", "--config", conf, "--state", tmp / "j", "--backup-dir", tmp / "bk"],
        "sample": ["sample", tmp / "new-sample"],
        "report": ["report", "--state", tmp / "state", "--html", tmp / "r.html"],
    }[cmd]


@pytest.fixture
def cluster(tmp_path, store):
    d, _ = store
    c = make_cluster(tmp_path, d / "blocks", d / "maps")
    for n in c.nodes:
        c.standin(n, "archipelago", "start")
    return c


def in_cluster(c, *args):
    return c.archverify(*map(str, args))


# the sample store has a held lock: the finalize plan says --yes would refuse (EXIT_BLOCKED)
PREVIEW_CODES = {"finalize": (0, 1, EXIT_BLOCKED)}
LOCAL = [c for c in COMMANDS if c != "pithos-check"]  # pithos-check: with the database, below


@pytest.mark.parametrize("cmd", LOCAL)
def test_json_has_the_wrapper_and_the_warnings(cmd, store, tmp_path, cluster):
    if cmd == "report":
        assert in_cluster(cluster, *argv_for("check", store, tmp_path, cluster)).returncode == 1
    before = {n: cluster.conf(n).read_bytes() for n in cluster.nodes}
    p = in_cluster(cluster, *argv_for(cmd, store, tmp_path, cluster), "--format", "json")
    assert p.returncode in PREVIEW_CODES.get(cmd, (0, 1)), p.stderr
    doc = json.loads(p.stdout)  # one document, nothing else on stdout
    assert WRAPPER <= set(doc) and doc["tool"] == "archverify" and doc["command"] == cmd
    # each warning printed on stderr is in the document, and only those
    printed = [ln.split("archverify: warning: ", 1)[1] for ln in p.stderr.splitlines()
               if ln.startswith("archverify: warning: ")]
    assert doc["warnings"] == printed
    assert {n: cluster.conf(n).read_bytes() for n in cluster.nodes} == before  # previews wrote nothing
    assert cluster.events("stop") == []


@pytest.mark.parametrize("cmd", ["scan", "check", "config", "migrate-objects", "upgrade-maps"])
def test_the_configs_warning_is_in_the_json(cmd, store, tmp_path, cluster):
    p = in_cluster(cluster, *argv_for(cmd, store, tmp_path, cluster), "--format", "json")
    doc = json.loads(p.stdout)
    assert doc["warnings"] and any("pithos-migrate" in w for w in doc["warnings"])


@pytest.mark.parametrize("cmd", sorted(COMMANDS))
def test_dry_run_with_yes_is_refused_before_anything_runs(cmd, store, tmp_path, cluster):
    if cmd == "pithos-check":
        args = ["pithos-check", "--db", "postgresql://nobody@127.0.0.1:9/none", "--config", store[1]]
    else:
        args = argv_for(cmd, store, tmp_path, cluster)
    before = {n: cluster.conf(n).read_bytes() for n in cluster.nodes}
    p = in_cluster(cluster, *args, "--dry-run", "--yes")
    assert p.returncode == 2 and p.stdout == ""
    assert len(p.stderr.splitlines()) == 1 and p.stderr.startswith("archverify: error:"), p.stderr
    assert {n: cluster.conf(n).read_bytes() for n in cluster.nodes} == before
    assert cluster.events() == [e for e in cluster.events() if e.get("cmd") == "start"]  # no stop, no status run
    assert not (tmp_path / "new-sample").exists() and not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("cmd", [c for c in COMMANDS if COMMANDS[c].get("writes")])
def test_writers_preview_without_yes_and_with_dry_run_alike(cmd, store, tmp_path, cluster):
    args = argv_for(cmd, store, tmp_path, cluster)
    before = {n: cluster.conf(n).read_bytes() for n in cluster.nodes}
    plain = in_cluster(cluster, *args)
    dry = in_cluster(cluster, *args, "--dry-run")
    assert plain.returncode == dry.returncode and plain.returncode in PREVIEW_CODES.get(cmd, (0, 1)), plain.stderr
    assert plain.stdout == dry.stdout and plain.stdout
    assert {n: cluster.conf(n).read_bytes() for n in cluster.nodes} == before
    assert cluster.events("stop") == []


def test_restart_preview_lists_exactly_the_commands_it_then_runs(cluster):
    preview = in_cluster(cluster, "restart", *cluster.nodes_arg(), "--format", "json")
    planned = [ln for ln in json.loads(preview.stdout)["steps"] if "would run" in ln]
    assert len(planned) == 2 * len(cluster.nodes) and cluster.events("stop") == []
    done = in_cluster(cluster, "restart", *cluster.nodes_arg(), "--yes", "--format", "json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["applied"] is True
    assert [e["node"] for e in cluster.events("stop")] == cluster.nodes
    assert [ln.split("would run: ")[1].split()[-2:] for ln in planned] == \
        [["archipelago", "stop"]] * len(cluster.nodes) + [["archipelago", "start"]] * len(cluster.nodes)


def test_pithos_migrate_enable_preview_then_yes(cluster):
    p = in_cluster(cluster, "pithos-migrate", "enable", *cluster.nodes_arg(), "--format", "json")
    doc = json.loads(p.stdout)
    assert doc["applied"] is False and all(n["changes"] for n in doc["nodes"])
    assert all("pithos_migrate = True" not in cluster.conf(n).read_text() for n in cluster.nodes)
    p = in_cluster(cluster, "pithos-migrate", "enable", *cluster.nodes_arg(), "--yes", "--format", "json")
    doc = json.loads(p.stdout)
    assert doc["applied"] is True and doc["restart_needed"] is True
    assert all("pithos_migrate = True" in cluster.conf(n).read_text() for n in cluster.nodes)


@pytest.mark.postgres
def test_pithos_check_json_wrapper_and_quiet(pg_admin, tmp_path):
    import psycopg

    from verify.ops.pithos.sample import create_schema, load_rows, write_pithos_sample

    sample = write_pithos_sample(tmp_path / "maps")
    url = pg_admin("pithos_conventions")
    with psycopg.connect(url) as conn:
        create_schema(conn)
        load_rows(conn, sample.rows, nodes=len(sample.rows))
    p = run("pithos-check", "--db", url, "--maps-dir", sample.maps_dir, "--format", "json")
    doc = json.loads(p.stdout)
    assert WRAPPER <= set(doc) and doc["command"] == "pithos-check" and doc["warnings"] == []
    q = run("pithos-check", "--db", url, "--maps-dir", sample.maps_dir, "-q")
    assert q.returncode == p.returncode == 1 and len(q.stdout.splitlines()) == 1


# ---- -q and -v -------------------------------------------------------------------------------------


def test_quiet_is_one_line_and_verbose_lists_every_finding(store):
    d, conf = store
    q = run("scan", "--config", conf, "-q")
    full = run("scan", "--config", conf, "--format", "json")
    v = run("scan", "--config", conf, "-v")
    assert q.returncode == v.returncode == full.returncode == 1
    assert len(q.stdout.splitlines()) == 1
    findings = json.loads(full.stdout)["findings"]
    listed = [ln for ln in v.stdout.splitlines() if ln.startswith("    ")]
    assert len(listed) == len(findings) > 3 * 2  # more than --max-shown's default lets through
    assert run("scan", "--config", conf, "-q", "-v").returncode == 2


# ---- --state and its old spellings -------------------------------------------------------------


def test_journal_dir_is_an_alias_of_state(tmp_path):
    for s in ("sa", "sb"):  # the same seed: the same store twice
        assert run("sample", tmp_path / s).returncode == 0
    a = run("migrate-objects", "--config", tmp_path / "sa" / "archipelago.conf", "--state", tmp_path / "a",
            "--format", "json", "--yes")
    b = run("migrate-objects", "--config", tmp_path / "sb" / "archipelago.conf", "--journal-dir", tmp_path / "b",
            "--format", "json", "--yes")
    assert a.returncode == b.returncode and json.loads(a.stdout)["applied"] is True
    assert json.loads(a.stdout)["results"] == json.loads(b.stdout)["results"]
    assert sorted(os.listdir(tmp_path / "a")) == sorted(os.listdir(tmp_path / "b")) != []
    p = run("migrate-objects", "--config", tmp_path / "sa" / "archipelago.conf", "--state", tmp_path / "a",
            "--journal-dir", tmp_path / "c")
    assert p.returncode == 2 and not (tmp_path / "c").exists()


def test_state_dir_is_an_alias_of_state_for_finalize(cluster, tmp_path):
    a = in_cluster(cluster, "finalize", *cluster.nodes_arg(), "--state", tmp_path / "fa", "--format", "json")
    b = in_cluster(cluster, "finalize", *cluster.nodes_arg(), "--state-dir", tmp_path / "fb", "--format", "json")
    assert a.returncode == b.returncode
    da, db = json.loads(a.stdout), json.loads(b.stdout)
    assert da["journal"].startswith(str(tmp_path / "fa")) and db["journal"].startswith(str(tmp_path / "fb"))
    assert da["state"] == db["state"]


# ---- the Ceph CLI's spellings ------------------------------------------------------------------


def _rados_doc(p):
    assert p.returncode in (0, 1), p.stderr
    doc = json.loads(p.stdout)
    return doc["stores"], sorted((f["kind"], f["store"], f["name"]) for f in doc["findings"])


def test_ceph_spellings_are_the_same_options(ceph_cluster, rados_store, tmp_path):
    pools = ["--backend", "rados", "--pool", rados_store.maps_pool, "--blocks-pool", rados_store.blocks_pool,
             "--format", "json"]
    conf, keyring = str(ceph_cluster.conf), str(ceph_cluster.keyring)
    long = _rados_doc(run("scan", *pools, "--ceph-conf", conf, "--keyring", keyring, "--id", "admin"))
    assert long[1]
    short = _rados_doc(run("scan", *pools, "-c", conf, "-k", keyring, "-n", "client.admin"))
    ceph = _rados_doc(run("scan", *pools, "--conf", conf, "--keyring", keyring, "--name", "client.admin"))
    assert long == short == ceph
    # --cluster NAME reads NAME.conf where ceph does (here: ~/.ceph)
    home = tmp_path / "home"
    (home / ".ceph").mkdir(parents=True)
    shutil.copy(conf, home / ".ceph" / "testcl.conf")
    named = _rados_doc(run("scan", *pools, "--cluster", "testcl", "-k", keyring, env={**ENV, "HOME": str(home)}))
    assert named[1] == long[1]
    assert named[0]["maps"]["ceph_conf"] == str(home / ".ceph" / "testcl.conf")
    # a name that is not a client, two users at once, a cluster without a conf: exit 2, one line
    for bad in (["-n", "osd.0"], ["--id", "admin", "-n", "client.other"], ["--cluster", "nowhere"]):
        p = run("scan", *pools, "-k", keyring, *bad, env={**ENV, "HOME": str(home)})
        assert p.returncode == 2 and len(p.stderr.splitlines()) == 1, (bad, p.stderr)


def test_config_takes_the_ceph_spellings(store):
    d, conf = store
    a = run("config", "--config", conf, "--format", "json", "-c", "/nonexistent/ceph.conf", "--id", "admin")
    b = run("config", "--config", conf, "--format", "json", "--conf", "/nonexistent/ceph.conf", "-n", "client.admin",
            "-k", "/nonexistent/keyring")
    assert a.returncode == b.returncode and json.loads(a.stdout)["nodes"] == json.loads(b.stdout)["nodes"]


# ---- progress: plain lines for journald, totals and ETA from the previous run ------------------


LINE = re.compile(r"^archverify: progress: (?:check: )?(\w+) \(filed\): ([\d,]+)/([\d,]+) ", re.M)


def _kept_progress(state: Path) -> dict:
    newest = sorted((state / "runs").glob("*.json.gz"))[-1]
    with gzip.open(newest, "rt") as fh:
        return json.load(fh)["progress"]


def test_forced_progress_prints_lines_with_the_previous_runs_totals(store, tmp_path):
    d, conf = store
    env = {**ENV, "ARCHVERIFY_PROGRESS_INTERVAL": "0"}
    first = run("check", "--config", conf, "--state", tmp_path / "st", "--progress", "--verify-data", env=env)
    assert first.returncode == 1 and "Traceback" not in first.stderr
    kept = _kept_progress(tmp_path / "st")
    assert set(kept) == {"scan", "references", "data"} and all(m["count"] > 0 for m in kept.values())
    # no previous run: lines, but no total
    assert first.stderr.count("archverify: progress:") >= 6 and not LINE.search(first.stderr)
    second = run("check", "--config", conf, "--state", tmp_path / "st", "--progress", "--verify-data", env=env)
    assert second.returncode == 1
    totals = {m.group(1): int(m.group(3).replace(",", "")) for m in LINE.finditer(second.stderr)}
    assert totals == {k: m["count"] for k, m in kept.items()}
    assert re.search(r"ETA \d+:\d\d:\d\d", second.stderr)
    # the report on stdout is untouched by the progress lines
    assert "archverify: progress" not in second.stdout


def test_no_progress_lines_unless_asked(store, tmp_path):
    d, conf = store
    p = run("check", "--config", conf, "--state", tmp_path / "st", env={**ENV, "ARCHVERIFY_PROGRESS_INTERVAL": "0"})
    assert p.returncode == 1 and "archverify: progress" not in p.stderr


def test_eta_comes_from_the_previous_measure():
    import io

    out = io.StringIO()
    prog = Progress(True, {"scan": Measure(1000, 100.0)}, stream=out, interval=0)
    with prog.stage("scan", "scan (filed)") as st:
        assert st.eta(0.0, 0.0) == 100.0  # nothing counted yet: the previous duration
        st.update(250)
        assert st.eta(10.0, 25.0) == 30.0  # 750 left at 25/s
    assert prog.measured["scan"].count == 250
    assert "250/1,000" in out.getvalue()


# ---- the human report ------------------------------------------------------------------------


ROW = re.compile(r"^(UNREAD|ERROR|warn|info)\s+(\w+)\s+([\d,]+)((?:\s+[\d,]+)*)\s{2}", re.M)
SEVERITY = {"UNREAD": 3, "ERROR": 2, "warn": 1, "info": 0}


def test_human_report_errors_first_per_store_few_per_kind_absolute_paths(store, tmp_path):
    d, conf = store
    # relative store dirs: the report still shows absolute paths
    args = ["check", "--maps-dir", os.path.relpath(d / "maps", tmp_path), "--blocks-dir",
            os.path.relpath(d / "blocks", tmp_path)]
    human = run(*args, "--max-shown", "2", cwd=tmp_path)
    doc = json.loads(run(*args, "--format", "json", cwd=tmp_path).stdout)
    assert human.returncode == 1
    rows = ROW.findall(human.stdout)
    kinds = [k for _, k, _, _ in rows]
    want = Counter((f["kind"], f["store"]) for f in doc["findings"])
    assert sorted(kinds) == sorted({k for k, _ in want})
    sev = [SEVERITY[s] for s, _, _, _ in rows]
    assert sev == sorted(sev, reverse=True) and sev[0] > sev[-1]
    for _, kind, total, per_store in rows:
        counts = [int(x.replace(",", "")) for x in per_store.split()]
        assert sum(counts) == int(total.replace(",", "")) == sum(n for (k, _), n in want.items() if k == kind)
    # the samples: under each kind's heading, at most --max-shown, at absolute paths of that kind's findings
    paths = {(f["kind"], os.path.join(str(d / f["store"]), f["path"])) for f in doc["findings"] if f["path"]}
    per_kind, kind = Counter(), None
    for ln in human.stdout.splitlines():
        if (m := re.match(r"^  (?:UNREAD|ERROR|warn|info) (\w+) \(", ln)):
            kind = m.group(1)
        elif ln.startswith("    ") and kind is not None:
            path = ln.strip().split("  (")[0]
            assert os.path.isabs(path) and (kind, path) in paths, ln
            per_kind[kind] += 1
    assert set(per_kind) == {k for k, _ in want} and set(per_kind) <= set(KINDS)
    assert all(n == min(2, sum(c for (k, _), c in want.items() if k == kind)) for kind, n in per_kind.items())


@pytest.mark.postgres
def test_pithos_check_progress_total_is_the_databases_estimate(pg_admin, tmp_path):
    """No previous run to learn from: the total is PostgreSQL's own row estimate, once analysed."""
    sample, url, estimate = analysed_sample(pg_admin, "pithos_progress", tmp_path)
    env = {**ENV, "ARCHVERIFY_PROGRESS_INTERVAL": "0"}
    p = run("pithos-check", "--db", url, "--maps-dir", sample.maps_dir, "--progress", env=env)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert estimate > 0 and f"about {estimate:,} rows expected" in p.stderr
    assert re.search(rf"[\d,]+/~{estimate:,} rows \(\d+%\)", p.stderr)  # "~": an estimate


# ---- usage errors are one line too --------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ("scan", "--no-such-option"),  # unknown option
    ("scan", "-j"),  # a missing value
    ("scan", "--format", "xml"),  # not one of the choices
    ("scan", "-j", "0"),  # out of range
    ("report", "--html", "x.html"),  # a required option missing
    ("no-such-command",),
    ("pithos-migrate", "toggle"),
])
def test_usage_errors_are_one_line_and_exit_2(args):
    from tests.one_line import one_line_error

    p = run(*args)
    one_line_error(p.returncode, p.stdout, p.stderr)
    assert "Usage:" not in p.stderr
    # the same through click's test runner (its standalone mode)
    r = CliRunner().invoke(cli, list(args))
    assert r.exit_code == 2 and r.output.strip().count("\n") == 0 and r.output.startswith("archverify: error:")
