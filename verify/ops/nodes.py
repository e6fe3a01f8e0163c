"""Running Archipelago's own commands on every node, and reading and writing a file there.

A node command template (default ``ssh -o BatchMode=yes {node}``) is split with
shlex once; ``{node}`` is replaced inside the tokens after splitting, so a node name
is always part of exactly one argv element. Node names are validated as hostnames
or IP addresses, so none can pass for an option or carry shell syntax. Commands are
argv lists: when the template runs ``ssh`` (whose remote side hands the command to a
shell), the argv is sent as one ``shlex.join`` string that the remote shell splits
back into the same argv; any other template gets the argv elements as they are.
Only ssh and coreutils are needed on a node (``head``, ``cat``, ``cp``, ``mv``, ``sync``,
``sha256sum``).

With no nodes, commands run on this machine directly and files are written with
:func:`verify.config.confedit.atomic_write`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import shlex
import subprocess
import time
from dataclasses import dataclass, field

from ..config import archipelago as config
from ..core.errors import ArchverifyError, UsageError

DEFAULT_TEMPLATE = "ssh -o BatchMode=yes {node}"
LOCAL = None  # the node value meaning "this machine, no template"
TIMEOUT = 600.0  # archipelago stop waits up to 15 s per peer; leave room for slow nodes

_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"{_LABEL}(\.{_LABEL})*\.?\Z")
_SCOPE_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,15}\Z")  # an interface name (IFNAMSIZ) or index
_USER = re.compile(r"[a-z_][a-z0-9_.-]{0,31}\Z")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # archipelago colours its output, terminal or not


class NodeError(ArchverifyError):
    """A command on a node failed; the message names the node and the command."""


def validate_node(name: str) -> str:
    """A hostname (RFC 1123), an IPv4/IPv6 address, optionally ``user@`` in front."""
    n = name.strip()
    host = n
    if "@" in n:
        user, host = n.split("@", 1)
        if not _USER.match(user):
            raise UsageError(f"node {name!r}: invalid user name before '@'")
    if not host or len(host) > 253:
        raise UsageError(f"node {name!r}: empty or too long")
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        scope = getattr(addr, "scope_id", None)
        if scope is not None and not _SCOPE_ID.match(scope):
            raise UsageError(f"node {name!r}: the IPv6 scope id must be an interface name or number "
                             "(letters, digits, '_', '-', '.')")
        return n
    if not _HOSTNAME.match(host) or host.replace(".", "").isdigit():
        raise UsageError(f"node {name!r}: not a hostname or IP address (letters, digits, '-' and '.' only; "
                         "no leading '-')")
    return n


def parse_nodes(spec: str | None) -> list[str] | None:
    """``N1,N2,...`` (spaces allowed) into a validated list without duplicates; None for none."""
    if spec is None:
        return None
    nodes = [validate_node(p) for p in re.split(r"[,\s]+", spec) if p]
    if not nodes:
        raise UsageError("--nodes names no node")
    dup = {n for n in nodes if nodes.count(n) > 1}
    if dup:
        raise UsageError(f"--nodes names {', '.join(sorted(dup))} twice")
    return nodes


def label(node: str | None) -> str:
    return node if node is not None else "localhost"


@dataclass
class Result:
    node: str | None
    argv: list[str]
    rc: int
    stdout: str
    stderr: str
    raw: bytes = b""  # stdout as bytes (file contents)

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def brief(self) -> str:
        """The last non-empty line of output: what the command said when it failed."""
        lines = [ln.strip() for ln in (self.stderr + "\n" + self.stdout).splitlines() if ln.strip()]
        return lines[-1] if lines else f"exit code {self.rc}"


@dataclass
class NodeStatus:
    node: str | None
    state: str  # "running", "stopped", "partial" or "unknown"
    peers: dict[str, bool] = field(default_factory=dict)
    detail: str = ""


@dataclass
class Runner:
    """Runs argv lists on nodes through the template; ``None`` is this machine."""

    template: str = DEFAULT_TEMPLATE
    timeout: float = TIMEOUT
    env: dict | None = None  # extra environment (tests); None inherits ours

    def __post_init__(self) -> None:
        try:
            self.tokens = shlex.split(self.template)
        except ValueError as e:
            raise UsageError(f"--node-cmd {self.template!r}: {e}") from None
        if not self.tokens or not any("{node}" in t for t in self.tokens):
            raise UsageError(f"--node-cmd {self.template!r}: must contain {{node}}")
        self.remote_shell = any(os.path.basename(t.replace("{node}", "")) == "ssh" for t in self.tokens)

    def argv(self, node: str | None, cmd: list[str]) -> list[str]:
        if node is LOCAL:
            return list(cmd)
        validate_node(node)
        prefix = [t.replace("{node}", node) for t in self.tokens]
        return prefix + ([shlex.join(cmd)] if self.remote_shell else list(cmd))

    def run(self, node: str | None, cmd: list[str], input: bytes | None = None) -> Result:
        argv = self.argv(node, cmd)
        env = None if self.env is None else {**os.environ, **self.env}
        try:
            p = subprocess.run(argv, input=input, capture_output=True, timeout=self.timeout, env=env,
                               stdin=subprocess.DEVNULL if input is None else None)
        except FileNotFoundError:
            return Result(node, argv, 127, "", f"{argv[0]}: command not found")
        except subprocess.TimeoutExpired:
            return Result(node, argv, 124, "", f"timed out after {self.timeout:.0f}s")
        return Result(node, argv, p.returncode, _ANSI.sub("", p.stdout.decode("utf-8", "replace")),
                      _ANSI.sub("", p.stderr.decode("utf-8", "replace")), p.stdout)

    def check(self, node: str | None, cmd: list[str], input: bytes | None = None) -> Result:
        r = self.run(node, cmd, input)
        if not r.ok:
            raise NodeError(f"{label(node)}: '{shlex.join(cmd)}' failed: {r.brief()}")
        return r

    # ---- Archipelago's commands ---------------------------------------------------

    def stop(self, node: str | None, force: bool = False) -> Result:
        return self.run(node, ["archipelago", "stop", "-f"] if force else ["archipelago", "stop"])

    def start(self, node: str | None) -> Result:
        return self.run(node, ["archipelago", "start"])

    def status(self, node: str | None) -> NodeStatus:
        """Parses ``archipelago status``: one ``ROLE  running|not running`` line per peer.

        Its exit code says nothing (it is 0 either way), so the lines decide.
        """
        r = self.run(node, ["archipelago", "status"])
        peers: dict[str, bool] = {}
        for line in r.stdout.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] != "blktap":
                tail = " ".join(parts[1:]).lower()
                if tail.startswith("not running") or tail.startswith("has valid pidfile"):
                    peers[parts[0]] = False
                elif tail.startswith("running"):
                    peers[parts[0]] = True
        if not r.ok or not peers:
            return NodeStatus(node, "unknown", peers, r.brief())
        if all(peers.values()):
            state = "running"
        elif not any(peers.values()):
            state = "stopped"
        else:
            state = "partial"
        return NodeStatus(node, state, peers)

    def showmapped(self, node: str | None) -> list[str]:
        """Volumes mapped on ``node`` (``vlmc showmapped``: a header line, then ``id image device``)."""
        r = self.check(node, ["vlmc", "showmapped"])
        vols = []
        for line in r.stdout.splitlines():
            parts = line.split()
            if not parts or parts[0] == "id" or line.strip().lower().startswith("no volumes"):
                continue
            if len(parts) >= 2:
                vols.append(parts[1])
        return vols

    # ---- files ----------------------------------------------------------------------

    def read_file(self, node: str | None, path: str) -> bytes:
        """A config file: a regular file (through symlinks) of at most ``config.MAX_BYTES``.

        On a node, ``test -f`` first, so a FIFO there cannot hang the command, and
        ``head -c`` so that a device or a huge file is never read past the cap.
        """
        if node is LOCAL:
            return config.read_bytes(path)
        script = ('[ -f "$1" ] || { echo "not a regular file (or missing)" >&2; exit 3; }; '
                  f'exec head -c {config.MAX_BYTES + 1} -- "$1"')
        r = self.run(node, ["sh", "-c", script, "sh", path])
        where = f"{label(node)}:{path}"
        if not r.ok:
            raise config.UnreadableConfig(where, "unreadable", f"cannot read: {r.brief()}")
        if len(r.raw) > config.MAX_BYTES:
            raise config.UnreadableConfig(where, "too_large", f"more than {config.MAX_BYTES} bytes: "
                                          "not an archipelago.conf")
        return r.raw

    def write_file(self, node: str | None, path: str, data: bytes, expect: bytes | None = None,
                   backup: str | None = None) -> None:
        """Replaces ``path`` atomically, keeping owner and mode, after an optional backup copy.

        ``expect`` is the content read before editing: when the file changed since,
        nothing is written. On a node this is one ``sh -c`` of coreutils with every
        path quoted by shlex.quote (the paths are ours: the config path and suffixes).
        """
        from ..config.confedit import atomic_write

        if node is LOCAL:
            atomic_write(path, data, expect=expect, backup=backup)
            return
        q = shlex.quote
        steps = ["set -e", f"p=$(readlink -f -- {q(path)})", 'tmp="$p.archverify-tmp"']
        if expect is not None:
            digest = hashlib.sha256(expect).hexdigest()
            steps.append(f"printf '%s  %s\\n' {digest} \"$p\" | sha256sum -c --status - "
                         f"|| {{ echo {q(path + ': changed while being edited; run again')} >&2; exit 3; }}")
        if backup is not None:
            steps.append(f'cp -p -- "$p" {q(backup)}')
        steps += [
            'cp -p -- "$p" "$tmp"',  # the copy carries owner and mode; cat then replaces its content
            'cat > "$tmp"',
            'sync -- "$tmp" 2>/dev/null || sync',
            'mv -f -- "$tmp" "$p"',
            'sync -- "$(dirname -- "$p")" 2>/dev/null || sync',
        ]
        r = self.run(node, ["sh", "-c", "; ".join(steps)], input=data)
        if not r.ok:
            self.run(node, ["rm", "-f", "--", f"{path}.archverify-tmp"])
            raise NodeError(f"{label(node)}:{path}: cannot write: {r.brief()}")


def wait_state(runner: Runner, node: str | None, want: str, tries: int = 3, pause: float = 1.0) -> NodeStatus:
    """``archipelago status`` until it shows ``want`` (peers take a moment to come and go)."""
    st = runner.status(node)
    for _ in range(tries - 1):
        if st.state == want:
            break
        time.sleep(pause)
        st = runner.status(node)
    return st
