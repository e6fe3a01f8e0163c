"""Runs a command at a terminal, as an operator does: its output on a pty of 100x30, read while it runs.

A pty's buffered output is lost once its last slave end closes, so the master is drained by a thread for
the whole run rather than read after the child has ended.
"""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import termios
import threading


def on_pty(argv: list[str], env: dict, cwd, timeout: float = 300, stdout_pipe: bool = False):
    """Runs ``argv`` with stdin and stderr on one pty (stdout too unless ``stdout_pipe``).

    Returns (exit code, screen text, stdout bytes): the screen text has ``\\r\\n`` made ``\\n``, and stdout
    bytes are empty unless ``stdout_pipe``.
    """
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    chunks: list[bytes] = []

    def drain():
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every slave end is closed
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    out = b""
    try:
        p = subprocess.Popen(argv, stdin=slave, stdout=subprocess.PIPE if stdout_pipe else slave, stderr=slave,
                             env=env, cwd=cwd, start_new_session=True)
        os.close(slave)
        slave = None
        if stdout_pipe:
            out, _ = p.communicate(timeout=timeout)
        code = p.wait(timeout=timeout)
        reader.join(timeout=60)
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)
    return code, b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n"), out
