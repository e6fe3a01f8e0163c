"""The ``archverify`` command: a click group whose subcommands live one per module."""

from __future__ import annotations

import importlib
import io
import os
import signal
import sys
import traceback

import click

from .. import __version__
from ..core import signals
from ..core.errors import EXIT_TIME_BOXED, ArchverifyError, Terminated, TimeBoxed
from ..core.findings import printable

EPILOG = """\b
Exit codes: 0 nothing found, 1 findings, 2 usage/config error or part of a
store unreadable, 75 stopped at --max-duration (scan, check), 130 interrupted
(SIGINT), 143 terminated (SIGTERM); each command's own end its help. Run 'archverify COMMAND --help' for each command."""


EXIT_INTERNAL = 2
DEBUG_ENV = "ARCHVERIFY_DEBUG"


def debugging(ctx: click.Context | None = None) -> bool:
    """--debug on the group, or ARCHVERIFY_DEBUG=1: show tracebacks of internal errors."""
    if ctx is not None and ctx.meta.get("archverify.debug"):
        return True
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


# Every command and the module (in verify.cli) whose ``command`` it is. A module is imported
# only when its command runs or is listed (``--help``), so that ``archverify scan`` pays for
# the imports of the scan alone (click's "lazily loading subcommands" pattern).
COMMANDS = {
    "check": "check_cmd", "config": "config_cmd", "finalize": "finalize_cmd", "migrate-objects": "migrate_cmd",
    "pithos-check": "pithos_check_cmd", "pithos-migrate": "pithos_migrate_cmd", "report": "report_cmd",
    "restart": "restart_cmd", "sample": "sample_cmd", "scan": "scan_cmd", "upgrade-maps": "upgrade_cmd",
}


class Group(click.Group):
    """Turns every ArchverifyError into one line on stderr and its exit code.

    Anything else is a bug: one line and exit 2, the traceback only when debugging,
    so a cron mail or a terminal never gets a page of Python. Subcommands named in
    ``lazy_commands`` (name: module of this package) are imported at first use.
    """

    def __init__(self, *args, lazy_commands: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx):
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx, cmd_name):
        if cmd_name not in self.commands and cmd_name in self.lazy_commands:
            module = importlib.import_module(f"{__package__}.{self.lazy_commands[cmd_name]}")
            self.add_command(module.command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """click's main, but a usage error is one line, ``archverify: error: ...``, and exit 2,
        as every other error is (not click's usage block of three lines)."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.ClickException as e:
            hint = ""
            if isinstance(e, click.exceptions.UsageError) and e.ctx is not None:
                hint = f" (see '{e.ctx.command_path} --help')"
            click.echo(f"archverify: error: {printable(e.format_message())}{hint}", err=True)
            sys.exit(e.exit_code)
        except click.exceptions.Abort:
            click.echo(f"archverify: {signals.stop_word(signal.SIGINT)}", err=True)
            sys.exit(signals.exit_code(signal.SIGINT))
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx):
        boxed = None
        try:
            with signals.stop_on_signals():
                return super().invoke(ctx)
        except ArchverifyError as e:
            click.echo(f"archverify: error: {printable(str(e))}", err=True)  # a path may hold a newline
            sys.exit(e.exit_code)
        except TimeBoxed as e:  # stopped and joined as an interruption is; the one line says how to go on
            boxed = str(e) or "stopped at the time box (--max-duration)"
        except KeyboardInterrupt as e:  # the work already stopped and joined its threads
            terminated = isinstance(e, Terminated)
        except BrokenPipeError:
            # the reader stopped reading (`| head`): not our failure, and nothing more to say
            silence_closed_pipes()
            sys.exit(0)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as e:  # noqa: BLE001 - the one place a bug becomes one line
            if debugging(ctx):
                traceback.print_exc()
            click.echo(f"archverify: internal error: {type(e).__name__}: {printable(str(e))}"
                       + ("" if debugging(ctx) else f" (run with --debug or {DEBUG_ENV}=1 for the traceback)"),
                       err=True)
            sys.exit(EXIT_INTERNAL)
        # only an interruption gets here: out of its except block, the frames it unwound are gone
        # (their finally blocks ran, their threads joined) before the interpreter exits
        if boxed is not None:
            click.echo(f"archverify: {printable(boxed)}", err=True)
            sys.exit(EXIT_TIME_BOXED)
        signo = signal.SIGTERM if terminated else signal.SIGINT
        click.echo(f"archverify: {signals.stop_word(signo)}", err=True)
        sys.exit(signals.exit_code(signo))


class _PipeSafeWriter(io.RawIOBase):
    """A file descriptor whose reader may go away: after EPIPE, writes go to /dev/null.

    ``archverify check | head -1`` then ends as a run that printed everything would,
    with its own exit code (0 or 1 by the findings), not 1 or 120 for the pipe.
    """

    def __init__(self, fd: int):
        super().__init__()
        self._fd = fd

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return os.isatty(self._fd)

    def write(self, b) -> int:
        view = memoryview(b)
        done = 0
        while done < len(view):
            try:
                done += os.write(self._fd, view[done:])
            except BrokenPipeError:
                _to_devnull(self._fd)
                return len(view)
        return done


def _to_devnull(fd: int) -> None:
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, fd)
    os.close(null)


def silence_closed_pipes() -> None:
    """Send what is still buffered for a closed stdout/stderr to /dev/null (no error at exit)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):
            continue  # not a real file (a test runner's buffer)
        _to_devnull(fd)


def _pipe_safe(stream):
    """``stream`` rebuilt over a :class:`_PipeSafeWriter`, same encoding and buffering."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return stream
    stream.flush()
    return io.TextIOWrapper(io.BufferedWriter(_PipeSafeWriter(fd)), encoding=stream.encoding, errors=stream.errors,
                            line_buffering=stream.line_buffering, write_through=False)


@click.group(cls=Group, lazy_commands=COMMANDS, epilog=EPILOG,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="archverify")
@click.option("--debug", is_flag=True, help=f"Show the traceback of an internal error (also: {DEBUG_ENV}=1).")
@click.pass_context
def cli(ctx, debug):
    """Prove that an Archipelago v0.4 upgrade migrated every object and map.

    Start with 'archverify scan --config /etc/archipelago/archipelago.conf'.
    """
    ctx.meta["archverify.debug"] = debug


def every_command() -> dict[str, click.Command]:
    """Every command and subcommand by the name typed ('pithos-migrate enable'): for the docs
    and the man pages (this imports every command's module)."""
    ctx = click.Context(cli, info_name="archverify")
    out = {}
    for name in cli.list_commands(ctx):
        cmd = cli.get_command(ctx, name)
        out[name] = cmd
        for sub, c in sorted(getattr(cmd, "commands", {}).items()):
            out[f"{name} {sub}"] = c
    return out


def main(argv=None):
    """Console-script entry point; click usage errors exit 2, as ours do."""
    sys.stdout, sys.stderr = _pipe_safe(sys.stdout), _pipe_safe(sys.stderr)
    cli.main(args=argv, prog_name="archverify")


if __name__ == "__main__":
    main()
