"""verify/cli/store_options.py: the default -j of the commands that only read a store (8 threads per CPU, at most 64)."""

from verify.cli.store_options import default_read_jobs


def test_eight_per_cpu():
    assert [default_read_jobs(c) for c in (1, 2, 4)] == [8, 16, 32]


def test_capped_on_big_machines():
    assert default_read_jobs(8) == 64
    assert default_read_jobs(96) == 64


# ---- one option set per resource, on every command that reaches it ----------------------------

import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import click  # noqa: E402
import pytest  # noqa: E402

from tests.one_line import one_line_error  # noqa: E402
from verify.cli.main import every_command  # noqa: E402
from verify.cli.output_options import output_options  # noqa: E402
from verify.cli.store_options import (ceph_options, jobs_option, pithos_db_option, rados_options,  # noqa: E402
                                      store_options)

ROOT = Path(__file__).resolve().parents[2]


def _params(deco, only=None, but=()) -> dict[str, click.Option]:
    return {p.name: p for p in deco(lambda **kw: None).__click_params__
            if (only is None or p.name in only) and p.name not in but}


RESOURCES = {  # the option set, and every command that reaches the resource
    "store dirs": (_params(store_options, only=("maps_dir", "blocks_dir")),
                   {"scan", "check", "pithos-check", "upgrade-maps", "migrate-objects"}),
    "ceph": (_params(ceph_options), {"scan", "check", "pithos-check", "upgrade-maps", "finalize", "config"}),
    "pools": (_params(rados_options, but=_params(ceph_options)),
              {"scan", "check", "pithos-check", "upgrade-maps", "finalize"}),
    "pithos db": (_params(pithos_db_option("")), {"pithos-check", "upgrade-maps", "finalize"}),
    # (finalize's and upgrade-maps' --logdir is where upgrade-maps writes its logs: another option)
    "report output": (_params(output_options, only=("output", "progress")), {"scan", "check", "pithos-check"}),
    "findings shown": (_params(output_options, only=("max_shown",)), {"scan", "check", "pithos-check", "finalize"}),
    "jobs": (_params(jobs_option), {"scan", "check", "pithos-check", "upgrade-maps", "finalize", "migrate-objects"}),
}




@pytest.mark.parametrize("resource", sorted(RESOURCES))
def test_every_command_reaching_a_resource_takes_the_same_flags(resource):
    """The same names, spellings and defaults; a command with one of a set's flags has all of them."""
    shared, reaching = RESOURCES[resource]
    for name, cmd in every_command().items():
        own = {p.name: p for p in cmd.params}
        has = set(shared) & set(own)
        if name not in reaching:
            assert not has, f"{name} takes {sorted(has)} of the {resource} options but is not listed as reaching it"
            continue
        assert has == set(shared), f"{name} lacks {sorted(set(shared) - has)} of the {resource} options"
        for pname, p in shared.items():
            q = own[pname]
            assert (q.opts, q.secondary_opts, q.default, q.hidden) == (p.opts, p.secondary_opts, p.default, p.hidden), \
                (name, pname)


def test_one_jobs_default_everywhere():
    jobs = {name: next(p for p in cmd.params if p.name == "jobs") for name, cmd in every_command().items()
            if any(p.name == "jobs" for p in cmd.params)}
    assert {p.default for p in jobs.values()} == {None}  # resolved by default_read_jobs() in one place
    assert len({p.help.split("]")[0].split(";")[0] for p in jobs.values()}) == 1


# ---- store flags of the other kind are refused, never ignored ----------------------------------

def run(*args):
    p = subprocess.run([sys.executable, "-m", "verify", *map(str, args)], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60, cwd=ROOT)
    return p.returncode, p.stdout, p.stderr


@pytest.mark.parametrize("flags,refused", [
    (("--backend", "rados", "--pool", "maps", "--maps-dir", "{maps}"), "--maps-dir"),
    (("--backend", "rados", "--pool", "maps", "--blocks-dir", "{blocks}"), "--blocks-dir"),
    (("--backend", "filed", "-p", "maps", "--maps-dir", "{maps}"), "-p"),
    (("--maps-dir", "{maps}", "--blocks-dir", "{blocks}", "--namespace", "ns"), "--namespace"),
    (("--maps-dir", "{maps}", "--blocks-dir", "{blocks}", "--inflight", "8"), "--inflight"),
    (("--maps-dir", "{maps}", "--connect-timeout", "3"), "--connect-timeout"),
    (("--maps-dir", "{maps}", "--user", "admin"), "--user"),
])
@pytest.mark.parametrize("command", ["scan", "check"])
def test_a_flag_of_the_other_kind_is_refused(tmp_path, command, flags, refused):
    for d in ("maps", "blocks"):
        (tmp_path / d).mkdir()
    args = [f.format(maps=tmp_path / "maps", blocks=tmp_path / "blocks") for f in flags]
    line = one_line_error(*run(command, *args))
    assert f" {refused} " in line, line  # named as typed


@pytest.mark.parametrize("role", ["maps", "blocks"])
def test_one_dir_alone_reads_that_store_and_says_so(tmp_path, role):
    (tmp_path / role).mkdir()
    (tmp_path / role / "orphan_lock").write_bytes(b"")
    code, out, err = run("scan", f"--{role}-dir", tmp_path / role, "--format", "json", "--no-progress")
    assert code in (0, 1), err
    doc = json.loads(out)
    assert set(doc["stores"]) == {role}
    other = "blocks" if role == "maps" else "maps"
    assert len(doc["warnings"]) == 1 and other in doc["warnings"][0]
    assert err.count("archverify: warning:") == 1
