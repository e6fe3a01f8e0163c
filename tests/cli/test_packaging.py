"""The Debian package (scripts/build-deb) and the packaging around it.

The .deb is built once per source state (cached under build/deb-cache by a hash of the
files it is built from) and checked the container-free way: ``dpkg-deb -x`` into a temp
root, then its own /usr/bin/archverify run on a sample store; then ``apt install`` for real
(removed again when it was not installed before).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEBIAN12 = Path("/etc/debian_version").exists() and Path("/usr/bin/dpkg-buildpackage").exists()


def source_hash() -> str:
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    h = hashlib.sha256()
    for f in sorted(files):
        p = ROOT / f
        if p.is_file():
            h.update(f.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


@pytest.fixture(scope="session")
def deb() -> Path:
    if shutil.which("dpkg-buildpackage") is None:
        pytest.skip("dpkg-buildpackage is not installed: scripts/build-deb installs it (needs apt)")
    cache = ROOT / "build" / "deb-cache" / f"{source_hash()}.deb"
    if not cache.exists():
        p = subprocess.run([str(ROOT / "scripts" / "build-deb")], cwd=ROOT, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr[-3000:]
        (built,) = (ROOT / "dist").glob("archverify_*.deb")
        cache.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(cache.parent, ignore_errors=True)
        cache.parent.mkdir(parents=True)
        shutil.copy(built, cache)
    return cache


@pytest.fixture(scope="session")
def installed(deb, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("debroot")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


def field(deb: Path, name: str) -> str:
    return subprocess.run(["dpkg-deb", "-f", str(deb), name], capture_output=True, text=True, check=True).stdout.strip()


def av(root: Path, *args, **kw):
    env = {**os.environ, "PYTHONPATH": str(root / "usr" / "lib" / "archverify")}
    return subprocess.run([str(root / "usr" / "bin" / "archverify"), *args], capture_output=True, text=True,
                          env=env, cwd=kw.get("cwd", "/"), timeout=300)


@pytest.mark.slow
def test_the_deb_installs_a_working_archverify(deb, installed, tmp_path):
    import verify

    assert deb.name.endswith(".deb") and field(deb, "Version") == verify.__version__
    deps = field(deb, "Depends")
    for pkg in ("python3-rados", "librados2", "python3-click", "python3-psycopg", "python3-xxhash"):
        assert pkg in deps
    p = av(installed, "--version")
    assert p.returncode == 0 and verify.__version__ in p.stdout
    assert av(installed, "--help").returncode == 0 and av(installed, "scan", "--help").returncode == 0
    assert av(installed, "sample", str(tmp_path / "s")).returncode == 0
    p = av(installed, "scan", "--config", str(tmp_path / "s" / "archipelago.conf"), "--format", "json")
    assert p.returncode == 1, p.stderr  # the sample has findings planted
    assert '"command": "scan"' in p.stdout and "object_unmigrated" in p.stdout
    # every extension is shipped: one .so per verify/_*.pyx
    lib = installed / "usr/lib/archverify/verify"
    assert {p.name.split(".")[0] for p in lib.glob("_*.so")} == {p.stem for p in (ROOT / "verify").glob("_*.pyx")}
    # the RADOS scanner and the carried packages are the package's own, not the checkout's
    code = ("import verify, verify.native._rados, verify.native._radoshard, verify.native._radosread, "
            "sqlalchemy, configupdater, distributed; "
            "print(verify.__file__, sqlalchemy.__version__)")
    p = subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True, cwd="/",
                       env={"PYTHONPATH": str(installed / "usr/lib/archverify"), "PATH": os.environ["PATH"]})
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(str(installed)) and p.stdout.split()[1].startswith("2.")


@pytest.mark.slow
def test_man_pages_and_completion_are_shipped(installed):
    man = installed / "usr/share/man/man1"
    pages = sorted(p.name for p in man.iterdir())
    cmds = ["check", "config", "finalize", "migrate-objects", "pithos-check", "pithos-migrate",
            "pithos-migrate-disable", "pithos-migrate-enable", "pithos-migrate-status", "report", "restart",
            "sample", "scan", "upgrade-maps"]
    assert pages == sorted(["archverify.1.gz"] + [f"archverify-{c}.1.gz" for c in cmds])
    if shutil.which("man") is None:
        pytest.skip("man is not installed (Debian package man-db): pages not rendered")
    for page in pages:
        p = subprocess.run(["man", "-l", str(man / page)], capture_output=True, text=True,
                           env={**os.environ, "MANWIDTH": "80", "MAN_KEEP_STDERR": "1"})
        assert p.returncode == 0 and "OPTIONS" in p.stdout and not p.stderr.strip(), (page, p.stderr)
    comp = (installed / "usr/share/bash-completion/completions/archverify").read_text()
    assert "_ARCHVERIFY_COMPLETE" in comp and "complete " in comp
    # the completion answers from the installed program
    env = {**os.environ, "COMP_WORDS": "archverify sc", "COMP_CWORD": "1", "_ARCHVERIFY_COMPLETE": "bash_complete",
           "PYTHONPATH": str(installed / "usr/lib/archverify")}
    p = subprocess.run([str(installed / "usr/bin/archverify")], capture_output=True, text=True, env=env)
    assert "scan" in p.stdout


@pytest.mark.slow
def test_systemd_units_verify(installed):
    unitdir = installed / "lib/systemd/system"
    units = [unitdir / "archverify-check.service", unitdir / "archverify-check.timer"]
    assert "[Install]" not in units[0].read_text()  # only the timer is enabled, by hand
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed: the units were not verified")
    env = {**os.environ, "MANPATH": str(installed / "usr/share/man")}
    p = subprocess.run(["systemd-analyze", "verify", *map(str, units)], capture_output=True, text=True, env=env)
    problems = [line for line in p.stderr.splitlines() if line.strip()]
    if not Path("/usr/bin/archverify").exists():  # not installed here: the extracted one stands in
        assert os.access(installed / "usr/bin/archverify", os.X_OK)
        problems = [x for x in problems if "/usr/bin/archverify is not executable" not in x]
    assert problems == []


def test_prometheus_rules_pass_promtool():
    rules = ROOT / "contrib/prometheus/archverify-rules.yml"
    # scripts/bootstrap --test takes it from Debian's prometheus package into .venv/bin
    promtool = shutil.which("promtool", path=f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}")
    if promtool is None:
        pytest.skip("promtool is not here (scripts/bootstrap --test takes it from Debian's prometheus package): "
                    "the alerting rules were NOT checked")
    p = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_examples_name_only_metrics_archverify_writes():
    import json
    import re

    from verify.report import metrics

    src = Path(metrics.__file__).read_text()
    written = set(re.findall(r'"(archverify_check_[a-z_]+)"', src))
    for f in ("contrib/prometheus/archverify-rules.yml", "contrib/grafana/archverify-dashboard.json"):
        used = set(re.findall(r"archverify_check_[a-z_]+", (ROOT / f).read_text()))
        assert used and used <= written, (f, used - written)
    dash = json.loads((ROOT / "contrib/grafana/archverify-dashboard.json").read_text())
    titles = {p["title"] for p in dash["panels"]}
    assert {"Findings per kind", "Last complete run", "Run duration"} <= titles


def test_license_is_spdx_and_the_gpl_text():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["license"] == "GPL-3.0-or-later" and meta["license-files"] == ["LICENSE"]
    assert "GNU GENERAL PUBLIC LICENSE" in (ROOT / "LICENSE").read_text()[:200]


def test_changelog_version_is_the_program_version():
    import verify

    head = (ROOT / "debian/changelog").read_text().split("\n", 1)[0]
    assert head.startswith(f"archverify ({verify.__version__})")


@pytest.mark.slow
def test_wheel_has_no_c_and_sdist_carries_the_tests(tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "error::DeprecationWarning"}
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                        "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "Deprecat" not in p.stderr
    (whl,) = tmp_path.glob("archverify-*.whl")
    names = zipfile.ZipFile(whl).namelist()
    assert any(n.startswith("verify/_scan.") and n.endswith(".so") for n in names)
    assert not [n for n in names if n.endswith(".c")]
    assert any(n.endswith("licenses/LICENSE") for n in names)
    p = subprocess.run([sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp_path)], cwd=ROOT,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    (sdist,) = tmp_path.glob("archverify-*.tar.gz")
    import tarfile

    members = tarfile.open(sdist).getnames()
    top = members[0].split("/")[0]
    for need in ("tests/conftest.py", "tests/fixtures", "scripts/ceph-dev-cluster", "scripts/pg-dev-cluster",
                 "benchmarks/naive_scan.py", "LICENSE", "verify/_scan.pyx", "verify/native/_rules.h", "debian/rules"):
        assert f"{top}/{need}" in members, need
    assert not [m for m in members if m.endswith(".c") or m.endswith(".so")]


def _apt_get(*args) -> subprocess.CompletedProcess:
    # another apt run on this machine (an unattended upgrade, a parallel suite) is waited for
    p = subprocess.run(["apt-get", "-y", "-q", "-o", "DPkg::Lock::Timeout=300", *args], capture_output=True,
                       text=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, timeout=900)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    return p


@pytest.mark.slow
def test_apt_install_for_real(deb, tmp_path):
    """apt installs the package as a cluster node would (about 15 s, most of it man-db's index),
    and it is purged again afterwards unless it was installed before the test."""
    if os.geteuid() != 0:
        pytest.skip("apt install needs root")
    was = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "archverify"], capture_output=True,
                         text=True).stdout.startswith("install ok installed")
    _apt_get("install", str(deb))
    try:
        assert subprocess.run(["/usr/bin/archverify", "sample", str(tmp_path / "s")]).returncode == 0
        p = subprocess.run(["/usr/bin/archverify", "scan", "--config", str(tmp_path / "s/archipelago.conf")],
                           capture_output=True, text=True, cwd="/")
        assert p.returncode == 1
        assert subprocess.run(["man", "-w", "archverify-scan"], capture_output=True).returncode == 0
        p = subprocess.run(["systemctl", "is-enabled", "archverify-check.timer"], capture_output=True, text=True)
        assert p.stdout.strip() != "enabled"
    finally:
        if not was:
            _apt_get("purge", "archverify")


@pytest.mark.slow
def test_the_packaged_archverify_scans_a_rados_pool(installed, ceph_cluster, rados_store):
    """The .deb's own /usr/bin/archverify, with Debian's python3-rados, on the session's real Ceph."""
    import json

    p = av(installed, "scan", "--backend", "rados", "-c", str(ceph_cluster.conf), "-k", str(ceph_cluster.keyring),
           "--pool", "maps", "--blocks-pool", "blocks", "--format", "json")
    assert p.returncode == 1, p.stderr  # the planted pool has findings
    doc = json.loads(p.stdout)
    assert {(f["kind"], f["name"]) for f in doc["findings"]} == rados_store.planted
