"""The ``archverify`` command: a click group whose subcommands live one per module."""

from __future__ import annotations

import sys

import click

from .. import __version__
from ..errors import ArchverifyError

EPILOG = """\b
Exit codes: 0 nothing found, 1 findings, 2 usage/config error or part of a
store unreadable. Run 'archverify COMMAND --help' for each command."""


class Group(click.Group):
    """Turns every ArchverifyError into one line on stderr and its exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ArchverifyError as e:
            click.echo(f"archverify: error: {e}", err=True)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("archverify: interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:
            sys.exit(1)


@click.group(cls=Group, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="archverify")
def cli():
    """Prove that an Archipelago v0.4 upgrade migrated every object and map.

    Start with 'archverify scan --config /etc/archipelago/archipelago.conf'.
    """


def _register():
    from . import (check_cmd, config_cmd, finalize_cmd, migrate_cmd, pithos_check_cmd, pithos_migrate_cmd,
                   report_cmd, restart_cmd, sample_cmd, scan_cmd, upgrade_cmd)

    for mod in (scan_cmd, check_cmd, pithos_check_cmd, config_cmd, pithos_migrate_cmd, restart_cmd, finalize_cmd,
                migrate_cmd, upgrade_cmd, sample_cmd, report_cmd):
        cli.add_command(mod.command)


_register()


def main(argv=None):
    """Console-script entry point; click usage errors exit 2, as ours do."""
    cli.main(args=argv, prog_name="archverify")


if __name__ == "__main__":
    main()
