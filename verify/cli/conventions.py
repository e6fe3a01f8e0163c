"""What every command shares, written once (docs/cli.md, "Conventions"):

- ``--format human|json`` (``jsonl`` where a command streams findings), and one JSON
  wrapper ``{tool, version, command, ..., warnings}``;
- ``-q/--quiet`` and ``-v/--verbose``;
- one preview model: a command that changes something only shows what it would do,
  unless ``--yes``; ``--dry-run`` is an explicit preview, refused together with ``--yes``;
- ``--state DIR``, the one name of the directory a command keeps its state in (older
  spellings stay as hidden aliases, so existing crontabs keep working);
- every ``archverify: warning:`` line is also in the JSON document's ``warnings``.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field

import click

from .. import __version__
from ..core.errors import UsageError
from ..core.findings import printable
from .options import apply_options

TOOL = "archverify"
RUN_KEY = "archverify.run"


@dataclass
class Run:
    """One invocation's conventions, as the command sees them."""

    command: str
    fmt: str = "human"
    quiet: bool = False
    verbose: bool = False
    apply: bool = False  # --yes on a command that writes: act, not only preview
    dry_run: bool = False  # --dry-run given (a command that only creates its own outputs then writes none)
    warnings: list[str] = field(default_factory=list)

    @property
    def human(self) -> bool:
        return self.fmt == "human"

    def say(self, line: str) -> None:
        """A line of the human report (stdout). Not shown with -q, and never in the middle of
        JSON: with --format json it goes to stderr, where it does not break a parser."""
        if self.quiet:
            return
        click.echo(line, err=not self.human)

    def detail(self, line: str) -> None:
        """A line only -v wants."""
        if self.verbose:
            self.say(line)

    def document(self, **payload) -> dict:
        return {"tool": TOOL, "version": __version__, "command": self.command, **payload,
                "warnings": list(self.warnings)}

    def emit(self, **payload) -> None:
        """The command's one JSON document on stdout (only with --format json)."""
        click.echo(json.dumps(self.document(**payload), sort_keys=True))


def current_run() -> Run | None:
    ctx = click.get_current_context(silent=True)
    while ctx is not None:
        run = ctx.meta.get(RUN_KEY)
        if run is not None:
            return run
        ctx = ctx.parent
    return None


def warn(lines) -> None:
    """``archverify: warning: ...`` on stderr (also with -q: a warning is never noise), and into
    the JSON document's ``warnings``."""
    run = current_run()
    for w in lines:
        text = printable(w)
        if run is not None:
            run.warnings.append(text)
        click.echo(f"{TOOL}: warning: {text}", err=True)


def command_name(ctx: click.Context) -> str:
    names = []
    while ctx.parent is not None:
        names.append(ctx.info_name or ctx.command.name)
        ctx = ctx.parent
    return " ".join(reversed(names)) or (ctx.info_name or "")


def conventions(formats=("human", "json"), writes: bool = False, format_help: str | None = None,
                creates: str | None = None):
    """--format, -q, -v, --dry-run and --yes on a command; it receives ``run`` (a :class:`Run`).

    ``writes``: the command changes something that exists (a store, archipelago.conf, a
    running service), so without --yes it only previews. A read-only command takes the
    same two flags, so a script may pass them everywhere; they change nothing there.
    ``creates``: what a command that only creates its own output writes (``sample``,
    ``report``); it needs no --yes, and --dry-run writes nothing."""

    def deco(f):
        @functools.wraps(f)
        def wrapper(*args, fmt, quiet, verbose, dry_run, yes, **kw):
            if dry_run and yes:
                raise UsageError("--dry-run (only show what would be done) and --yes (do it) contradict "
                                 "each other: give one")
            if quiet and verbose:
                raise UsageError("-q/--quiet and -v/--verbose contradict each other: give one")
            ctx = click.get_current_context()
            run = Run(command_name(ctx), fmt, quiet, verbose, apply=bool(yes and writes), dry_run=dry_run)
            ctx.meta[RUN_KEY] = run
            return f(*args, run=run, **kw)

        if writes:
            yes_help = "Do it. Without --yes the command only shows what it would do."
            dry_help = "Only show what would be done (the default without --yes); refused with --yes."
        elif creates:
            yes_help = (f"Accepted for uniformity; not needed: this command only creates {creates}, "
                        "which changes nothing that exists.")
            dry_help = f"Write nothing: only say what would be written ({creates})."
        else:
            yes_help = "Accepted for uniformity; this command changes nothing, so there is nothing to confirm."
            dry_help = "Accepted for uniformity; this command changes nothing anyway."
        opts = [
            click.option("--format", "fmt", type=click.Choice(formats), default="human", show_default=True,
                         help=format_help or "human: for people; json: one document {tool, version, command, ..., "
                                             "warnings} on stdout."),
            click.option("-q", "--quiet", is_flag=True,
                         help="Print less: the verdict only (warnings and errors still go to stderr)."),
            click.option("-v", "--verbose", is_flag=True, help="Print more: every item, not only the first few."),
            click.option("--dry-run", is_flag=True, help=dry_help),
            click.option("--yes", is_flag=True, help=yes_help),
        ]
        return apply_options(wrapper, opts)

    return deco


def state_option(default: str | None = None, required: bool = False, old_names: tuple[str, ...] = (),
                 help: str = ""):  # noqa: A002 - click's own word
    """``--state DIR``; ``old_names`` (--journal-dir, --state-dir) are hidden aliases of it."""

    def dest(name: str) -> str:
        return "old_" + name.lstrip("-").replace("-", "_")

    def deco(f):
        @functools.wraps(f)
        def wrapper(*args, state_dir=None, **kw):
            given = {"--state": state_dir} if state_dir is not None else {}
            for n in old_names:
                v = kw.pop(dest(n))
                if v is not None:
                    given[n] = v
            if len(set(given.values())) > 1:
                raise UsageError(" and ".join(f"{k} {v}" for k, v in given.items())
                                 + ": two state dirs; give one (--state)")
            value = next(iter(given.values()), default)
            if value is None and required:
                raise click.UsageError("Missing option '--state'.")
            return f(*args, state_dir=value, **kw)

        text = help + (f"  [default: {default}]" if default else "") + ("  [required]" if required else "")
        opts = [click.option("--state", "state_dir", type=click.Path(file_okay=False), metavar="DIR", help=text)]
        opts += [click.option(n, dest(n), type=click.Path(file_okay=False), hidden=True) for n in old_names]
        return apply_options(wrapper, opts)

    return deco
