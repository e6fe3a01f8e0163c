"""Option groups shared by several commands are lists of click decorators."""

from __future__ import annotations


def apply_options(f, opts):
    """Decorates ``f`` with ``opts`` so that --help lists them in the order given."""
    for o in reversed(opts):
        f = o(f)
    return f
