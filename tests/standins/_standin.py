"""Stand-ins for Archipelago's ``archipelago`` and ``vlmc`` commands, for tests only.

They behave like the real commands where archverify depends on it, failures
included: ``archipelago stop`` without ``-f`` refuses while volumes are mapped,
``start`` refuses when peers run, ``status`` prints one line per peer and exits 0
whatever the state, errors exit 255 like the real CLI. ``start`` reads the node's
archipelago.conf as Archipelago does (Python's ConfigParser, no '#' inline comments,
``pithos_migrate`` only: a hyphenated key is ignored) and the running filed keeps
those settings until the next start. ``archipelago-standin access NAME...`` is a
data request to that filed: with pithos_migrate on it performs filed's lazy
migration of 64-hex objects, link old to new then unlink old, so where the two
paths coincide the only copy is unlinked; two different files fail with EIO.
``vlmc open`` upgrades a v1 map ``archip_NAME`` to v2 ``NAME`` in the mapper's
order (in place, then renamed, then purged) and takes the map's lock.

State (which node runs, what is mapped, every command run) lives in the JSON file
named by $ARCHIP_STANDIN_STATE; the node is $ARCHIP_NODE; its config is
$ARCHIPELAGO_CONF (default /etc/archipelago/archipelago.conf). Failures can be
injected per node and command (``archipelago-standin fail NODE CMD [--kill]``);
``--kill`` SIGKILLs the caller, as a crash of the machine running archverify would.
"""

from __future__ import annotations

import configparser
import errno
import fcntl
import json
import os
import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

layout = None  # verify.core.layout and verify.core.formats: imported only by the commands that touch the stores,
F = None  # verify.core.formats, imported by the map commands only (start-up time of every command)


def _formats():
    global F, layout
    if F is None:
        from verify.core import formats
        from verify.core import layout as lay

        F, layout = formats, lay
    return F

DEFAULT_ROLES = ["blockerb", "blockerm", "mapperd", "vlmcd", "poold"]


class Error(Exception):
    pass


def green(s: str) -> str:  # the real CLI colours its output whether or not it is a terminal
    return f"\x1b[32m{s}\x1b[0m"


def red(s: str) -> str:
    return f"\x1b[31m{s}\x1b[0m"


def node_name() -> str:
    return os.environ.get("ARCHIP_NODE", "localhost")


@contextmanager
def state():
    path = os.environ.get("ARCHIP_STANDIN_STATE")
    if not path:
        raise Error("ARCHIP_STANDIN_STATE is not set")
    with open(path + ".lock", "a+") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        try:
            st = json.loads(Path(path).read_text())
        except FileNotFoundError:
            st = {}
        st.setdefault("nodes", {})
        st.setdefault("mapped", {})
        st.setdefault("events", [])
        st.setdefault("fail", [])
        try:
            yield st
        finally:  # failures are recorded too (refusals, injected failures)
            tmp = path + ".tmp"
            Path(tmp).write_text(json.dumps(st, indent=1, sort_keys=True))
            os.replace(tmp, path)


def read_conf(argv_conf: str | None = None) -> configparser.ConfigParser:
    path = argv_conf or os.environ.get("ARCHIPELAGO_CONF", "/etc/archipelago/archipelago.conf")
    cfg = configparser.ConfigParser(interpolation=None, strict=False, inline_comment_prefixes=(";",))
    try:
        with open(path) as fh:
            cfg.read_file(fh)
    except OSError:
        raise Error("Cannot read config file") from None
    return cfg


def peer_settings(cfg: configparser.ConfigParser) -> dict:
    out = {}
    for sec in ("blockerb", "blockerm"):
        if not cfg.has_section(sec):
            raise Error(f"No section: '{sec}'")
        s = {"type": cfg.get(sec, "type"), "pithos_migrate": False, "direct": False}
        if cfg.has_option(sec, "archip_dir"):
            s["archip_dir"] = cfg.get(sec, "archip_dir")
        if cfg.has_option(sec, "pithos_migrate"):
            try:
                s["pithos_migrate"] = cfg.getboolean(sec, "pithos_migrate")
            except ValueError as e:
                raise Error(str(e)) from None
        if cfg.has_option(sec, "direct"):
            s["direct"] = cfg.getboolean(sec, "direct")
        out[sec] = s
    return out


def roles(cfg: configparser.ConfigParser) -> list[str]:
    if cfg.has_option("PEERS", "ROLES"):
        return cfg.get("PEERS", "ROLES").split()
    return DEFAULT_ROLES


def check_fail(st: dict, node: str, cmd: str) -> None:
    for rule in st["fail"]:
        if rule["node"] in (node, "*") and rule["cmd"] == cmd and rule.get("times", 1) > 0:
            rule["times"] = rule.get("times", 1) - 1
            st["events"].append({"node": node, "cmd": cmd, "injected": True, "t": time.time()})
            if rule.get("kill"):
                rule["killed"] = os.getppid()
                os.kill(os.getppid(), signal.SIGKILL)
            raise Error(f"injected failure of '{cmd}' on {node}")


def node_state(st: dict, node: str) -> dict:
    return st["nodes"].setdefault(node, {"running": False, "peers": {}, "starts": 0, "stops": 0})


# ---- archipelago -------------------------------------------------------------------------


def archipelago(argv: list[str]) -> int:
    conf = None
    if len(argv) >= 2 and argv[0] in ("-c", "--config"):
        conf, argv = argv[1], argv[2:]
    if not argv:
        raise Error("usage: archipelago [-c CONF] start|stop [-f]|status|restart")
    cmd, rest = argv[0], argv[1:]
    node = node_name()
    cfg = read_conf(conf)
    with state() as st:
        check_fail(st, node, cmd)
        ns = node_state(st, node)
        mapped = st["mapped"].get(node, [])
        if cmd == "status":
            for r in reversed(roles(cfg)):
                print(f"{r:<30}{green('running') if ns['running'] else red('not running'):<20}")
            print(f"{'blktap':<30}{green('Loaded'):<20}")
            return 0
        if cmd in ("stop", "restart"):
            force = cmd == "restart" or "-f" in rest or "--force" in rest
            if mapped and not force:
                print_mapped(mapped)
                st["events"].append({"node": node, "cmd": "stop", "force": False, "refused": True, "t": time.time()})
                raise Error("Cannot stop archipelago. Mapped volumes exist")
            if ns["running"]:
                ns["running"] = False
                ns["stops"] += 1
                for name in [v for v, owner in st.setdefault("opened", {}).items() if owner == node]:
                    del st["opened"][name]  # the mapper's locks die with it
            st["events"].append({"node": node, "cmd": "stop", "force": force, "mapped": list(mapped),
                                 "t": time.time()})
            print("Archipelago stopped")
            if cmd == "stop":
                return 0
        if cmd in ("start", "restart"):
            if ns["running"]:
                raise Error("Cannot start. Try stopping first")
            peers = peer_settings(cfg)
            ns.update(running=True, peers=peers)
            ns["starts"] += 1
            st["events"].append({"node": node, "cmd": "start", "t": time.time(),
                                 "pithos_migrate": {s: p["pithos_migrate"] for s, p in peers.items()}})
            print("Archipelago started")
            return 0
    raise Error(f"unknown command {cmd!r}")


# ---- filed -------------------------------------------------------------------------------


def _store(ns: dict, section: str) -> tuple[str, dict]:
    p = ns["peers"][section]
    if p["type"] != "file_blocker":
        raise Error(f"{section} is not a file_blocker")
    return p["archip_dir"], p


def filed_path(ns: dict, section: str, name: str) -> str:
    """filed's get_dirs: the old Pithos path first for 64-hex names, migrating it when told to."""
    _formats()
    root, peer = _store(ns, section)
    raw = name.encode()
    new = os.path.join(root, os.fsdecode(layout.v04_path(raw)))
    if not layout.is_hex64(raw):
        return new
    old = os.path.join(root, os.fsdecode(layout.pithos_path(raw)))
    if not os.path.exists(old):
        return new
    if not peer["pithos_migrate"]:
        return old
    os.makedirs(os.path.dirname(new), exist_ok=True)
    try:
        os.link(old, new)
    except FileExistsError:
        if not os.path.samefile(old, new):
            raise Error(f"{name}: EIO (old and new files differ)") from None
    try:
        os.unlink(old)  # where old == new this removes the only copy
    except OSError as e:
        print(f"warning: cannot unlink {old}: {e.strerror}", file=sys.stderr)
    return new


def access(argv: list[str]) -> int:
    section = "blockerb"
    if argv and argv[0] == "--maps":
        section, argv = "blockerm", argv[1:]
    node = node_name()
    rc = 0
    with state() as st:
        check_fail(st, node, "access")
        ns = node_state(st, node)
        if not ns["running"]:
            raise Error(f"Archipelago is not running on {node}")
        for name in argv:
            try:
                p = filed_path(ns, section, name)
                with open(p, "rb") as fh:
                    data = fh.read()
                print(f"{name} {len(data)}")
            except Error as e:
                print(str(e), file=sys.stderr)
                rc = errno.EIO
            except FileNotFoundError:
                print(f"{name}: ENOENT", file=sys.stderr)
                rc = rc or errno.ENOENT
        st["events"].append({"node": node, "cmd": "access", "names": len(argv), "rc": rc, "t": time.time()})
    return rc


# ---- vlmc --------------------------------------------------------------------------------


def print_mapped(mapped: list[str]) -> None:
    if not mapped:
        print("No volumes mapped")
        print("")
        return
    print("id\timage\t\tdevice")
    for i, v in enumerate(mapped):
        print(f"{i}\t{v}\t/dev/xen/blktap-2/tapdev{i}")


def _put(ns: dict, section: str, name: str, data: bytes) -> None:
    _formats()
    root, peer = _store(ns, section)
    if peer.get("direct") and len(data) % 512:
        data += b"\0" * (512 - len(data) % 512)  # direct I/O pads every write
    p = os.path.join(root, os.fsdecode(layout.v04_path(name.encode())))
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as fh:
        fh.write(data)


def _get(ns: dict, section: str, name: str) -> bytes | None:
    try:
        with open(filed_path(ns, section, name), "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def _rm(ns: dict, section: str, name: str) -> None:
    _formats()
    root, _ = _store(ns, section)
    try:
        os.unlink(os.path.join(root, os.fsdecode(layout.v04_path(name.encode()))))
    except FileNotFoundError:
        pass


def upgrade_v1(ns: dict, name: str) -> None:
    """The mapper's v1 upgrade: archip_NAME rewritten as v2 in place, written as NAME, then purged."""
    _formats()
    old = F.ARCHIP_PREFIX + name
    data = _get(ns, "blockerm", old)
    if data is None:
        raise Error(f"{name}: no such volume")
    if data[:4] == F.pack_v2_header(0)[:4]:  # an earlier open was interrupted: already v2 in place
        m = F.parse_v2_header(data)
        m = F.parse_v2(data[:32], {b: _get(ns, "blockerm", F.mapdata_name(old, b)) or b""
                                   for b in range(F.mapdata_blocks(m.size, m.blocksize))})
    else:
        m = F.parse_v1(data)
        hdr, md = F.write_v2(m.size, m.entries, flags=0, epoch=0, name=old)
        for k, v in md.items():
            _put(ns, "blockerm", k, v)
        _put(ns, "blockerm", old, hdr + data[32:])  # the first 32 bytes only, like the mapper
    hdr, md = F.write_v2(m.size, m.entries, flags=0, epoch=1, name=name)
    for k, v in md.items():
        _put(ns, "blockerm", k, v)
    _put(ns, "blockerm", name, hdr)
    cur = _get(ns, "blockerm", old)
    _put(ns, "blockerm", old, F.pack_v2_header(m.size, flags=F.MF_DELETED, epoch=0) + cur[32:])
    for k in F.write_v2(m.size, m.entries, name=old)[1]:
        _rm(ns, "blockerm", k)
    _rm(ns, "blockerm", old)


def vlmc(argv: list[str]) -> int:
    if not argv:
        raise Error("usage: vlmc showmapped|map|unmap|open|close NAME")
    cmd, rest = argv[0], argv[1:]
    node = node_name()
    _formats()
    with state() as st:
        check_fail(st, node, cmd)
        ns = node_state(st, node)
        mapped = st["mapped"].setdefault(node, [])
        opened = st.setdefault("opened", {})
        if cmd == "showmapped":
            print_mapped(mapped)
            return 0
        if not rest:
            raise Error(f"vlmc {cmd}: a volume name is needed")
        name = rest[0]
        if len(name) < 6:
            raise Error("Name should have at least len 6")
        if not F.is_valid_volume_name(name):
            raise Error("Invalid volume name")
        if not ns["running"]:
            raise Error(f"vlmc {cmd} failed")
        if cmd == "map":
            if name not in mapped:
                mapped.append(name)
            print(f"/dev/xen/blktap-2/tapdev{mapped.index(name)}")
            return 0
        if cmd == "unmap":
            if name in mapped:
                mapped.remove(name)
            return 0
        if cmd == "open":
            if "--assume_v0" in rest:
                raise Error("vlmc open failed: this stand-in does not open v0 maps")
            if opened.get(name) not in (None, node):
                raise Error("vlmc open failed")
            head = _get(ns, "blockerm", name)
            if head is None:
                upgrade_v1(ns, name)
            _put(ns, "blockerm", name + "_lock", f"{node}_1003".encode())
            opened[name] = node
            st["events"].append({"node": node, "cmd": "open", "name": name, "t": time.time()})
            print("Volume opened")
            return 0
        if cmd == "close":
            if opened.get(name) != node:
                raise Error("vlmc close failed")
            _rm(ns, "blockerm", name + "_lock")
            del opened[name]
            st["events"].append({"node": node, "cmd": "close", "name": name, "t": time.time()})
            print("Volume closed")
            return 0
    raise Error(f"unknown command {cmd!r}")


def control(argv: list[str]) -> int:
    """``archipelago-standin``: what tests do to the cluster (access objects, inject failures)."""
    if not argv:
        raise Error("usage: archipelago-standin access [--maps] NAME...|fail NODE CMD [--times N] [--kill]|state")
    cmd, rest = argv[0], argv[1:]
    if cmd == "access":
        return access(rest)
    if cmd == "fail":
        rule = {"node": rest[0], "cmd": rest[1], "times": 1, "kill": "--kill" in rest}
        if "--times" in rest:
            rule["times"] = int(rest[rest.index("--times") + 1])
        with state() as st:
            st["fail"].append(rule)
        return 0
    if cmd == "state":
        with state() as st:
            print(json.dumps(st, indent=1, sort_keys=True))
        return 0
    raise Error(f"unknown command {cmd!r}")


def main(prog: str) -> None:
    try:
        rc = {"archipelago": archipelago, "vlmc": vlmc, "archipelago-standin": control}[prog](sys.argv[1:])
    except Error as e:
        print(red(str(e)))
        rc = 255  # the real CLI returns -1 on every error
    sys.exit(rc)
