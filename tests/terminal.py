"""Real processes on a pseudo-terminal of a real terminal's size (a pty of 0 columns gets no
progress bar from tqdm): what an operator at a terminal sees."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import termios
import threading


def open_terminal(rows: int = 24, cols: int = 120) -> tuple[int, int]:
    """(master, slave) of a new pty of ``rows`` x ``cols``."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    return master, slave


def drain(master: int, chunks: list[bytes]) -> None:
    """Everything written to the terminal, into ``chunks``, until every slave end is closed."""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every slave end is closed
            return
        if not chunk:
            return
        chunks.append(chunk)


def run_at_terminal(argv: list[str], env: dict, timeout: float = 120) -> tuple[int, bytes, bytes]:
    """``argv`` with its stderr on a terminal and stdout on a pipe: (exit code, stdout, the terminal's bytes)."""
    master, slave = open_terminal()
    chunks: list[bytes] = []
    out: list[bytes] = []
    try:
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=slave, env=env)
        os.close(slave)
        slave = None
        reader = threading.Thread(target=lambda: out.append(p.stdout.read()))  # neither may fill up
        reader.start()
        drain(master, chunks)
        reader.join(timeout)
        p.wait(timeout=timeout)
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)
    return p.returncode, b"".join(out), b"".join(chunks)
