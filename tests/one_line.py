"""The house rule for a refused run, asserted one way everywhere: its exit code, nothing on stdout,
one ``archverify: error:`` line on stderr, no traceback."""

from __future__ import annotations


def one_line_error(code: int, out: str, err: str, exit_code: int = 2) -> str:
    """Assert the rule on a run's exit code and outputs; the error line."""
    assert code == exit_code, (code, out, err)
    assert out == "", out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("archverify: error:"), err
    assert "Traceback" not in err, err
    return lines[0]
