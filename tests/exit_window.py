"""One way of reaching Ceph, then an exit with librados' exit window held open (a program).

    python tests/exit_window.py CASE CEPH_CONF KEYRING

A librados client still connected when the process exits keeps its threads running while
exit() destroys libceph-common's static state (the option schema) under them; the client's
MonClient tick then reads an option that is gone (boost::bad_get, SIGABRT) or freed memory
(SIGSEGV). That window is a few microseconds of a normal exit, so the crash comes once in many
runs. Here libc's on_exit, registered before librados is loaded, runs sleep(status) after
libceph-common's destructors: the process exits with status HOLD_S, held HOLD_S seconds in
that window, and a client left connected crashes it every time. The case's own exit code (or
"ok") is printed on stdout.
"""

from __future__ import annotations

import ctypes
import os
import sys

HOLD_S = 5  # the first MonClient tick comes within 3 s of the connection

_libc = ctypes.CDLL(None)
# on_exit calls sleep(status, NULL): the status is the seconds held (extra arguments are ignored)
_libc.on_exit(ctypes.cast(_libc.sleep, ctypes.c_void_p), None)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
_kept: list = []  # what the case leaves open for the process's exit to deal with


def cli(*args) -> int:
    """An archverify command run in this process, as `python -m verify` runs it: its exit code."""
    from verify.cli.main import main

    try:
        main(list(args))
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return 0


def run(case: str, conf: str, keyring: str) -> object:
    ceph = ["-c", conf, "-k", keyring]
    store = ["--backend", "rados", "--pool", "maps", "--blocks-pool", "blocks", *ceph, "--format", "json",
             "--no-progress"]
    if case == "leaked":  # python-rados shuts nothing down by itself: this one stays connected
        import rados

        c = rados.Rados(conffile=conf, conf={"keyring": keyring})
        c.connect()
        return "ok"
    if case == "config":
        return cli("config", "--config", os.path.join(ROOT, "tests", "fixtures", "archipelago-rados.conf"), *ceph)
    if case in ("scan-c", "scan-python"):
        os.environ["ARCHVERIFY_RADOS_ENGINE"] = case.split("-")[1]
        return cli("scan", *store)
    if case == "check":
        return cli("check", *store, "--max-shown", "0")
    if case in ("backend-c", "backend-python"):  # connected, pools open, object I/O twin too: never closed
        from verify.backends.rados.backend import RadosBackend

        be = RadosBackend("maps", "blocks", conf, None, keyring, engine=case.split("-")[1])
        be.validate()
        be.stat("maps", b"vol-000")
        _kept.append(be)
        return "ok"
    if case == "extension":  # the extension's client with an ioctx, kept to the end
        from verify.native import _rados

        c = _rados.Cluster(None, conf, keyring)
        c.connect()
        _kept.append((c, c.open("maps")))
        return "ok"
    raise SystemExit(f"unknown case {case!r}")


if __name__ == "__main__":
    print(run(*sys.argv[1:4]), flush=True)
    sys.exit(HOLD_S)
