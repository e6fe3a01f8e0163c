"""archverify run as user nobody, for the tests of unreadable parts: root reads everything,
so a mode-000 dir means what it says only to another user.

The checkout may live where nobody cannot reach it (a 0700 home dir, as /root is), so the
child gets its own copy of what it imports: the ``verify`` package (extensions included)
and the venv's packages, hard-linked where the file system allows, in a world-readable
dir, run by the real interpreter (the venv's ``python`` is a link nobody cannot follow).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NOBODY = 65534


@dataclass
class Nobody:
    command: list[str]  # setpriv to nobody (none when the tests do not run as root), an interpreter
    env: dict  # PYTHONPATH: what that user can import

    def archverify(self, *args, **kw) -> subprocess.CompletedProcess:
        """``archverify ARGS`` as that user, from /, its output as text."""
        kw = {"capture_output": True, "text": True, "cwd": "/", "timeout": 120, **kw}
        return subprocess.run([*self.command, "-m", "verify", *map(str, args)], env=self.env, **kw)


def _copy(src: Path, dst: Path) -> None:
    def link_or_copy(s, d):
        try:
            os.link(s, d)
        except OSError:  # another file system, or links not allowed: a copy
            shutil.copy2(s, d)

    shutil.copytree(src, dst, symlinks=True, copy_function=link_or_copy,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pth", "__editable__*"))


@pytest.fixture(scope="session")
def nobody():
    """Runs archverify as nobody; not as root, as this user (who is bound by the permissions too)."""
    if os.geteuid() != 0:
        yield Nobody([sys.executable], {**os.environ, "PYTHONPATH": str(REPO)})
        return
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (Debian package util-linux) is not installed")
    d = Path(tempfile.mkdtemp(prefix="archverify-nobody-"))
    try:
        os.chmod(d, 0o755)
        site = d / "site"
        purelib = Path(sysconfig.get_paths()["purelib"])
        if purelib != Path(sysconfig.get_paths()["stdlib"]).parent:  # a venv's packages
            _copy(purelib, site)
        site.mkdir(exist_ok=True)
        shutil.rmtree(site / "verify", ignore_errors=True)
        _copy(REPO / "verify", site / "verify")
        for base, dirs, files in os.walk(d):
            for x in dirs:
                os.chmod(os.path.join(base, x), 0o755)
            for x in files:
                p = os.path.join(base, x)
                if not os.path.islink(p):
                    os.chmod(p, os.stat(p).st_mode | 0o444)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/", "PYTHONPATH": str(site),
               "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1"}
        drop = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        who = Nobody([*drop, os.path.realpath(sys.executable)], env)
        probe = who.archverify("--version")
        assert probe.returncode == 0, f"nobody cannot run archverify from {d}: {probe.stderr}"
        yield who
    finally:
        shutil.rmtree(d, ignore_errors=True)
