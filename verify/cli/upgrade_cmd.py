"""``archverify upgrade-maps``: every v1 map (and v0 map of known size) becomes v2 (filed or RADOS)."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys

import click

from ..config import archipelago as config
from ..core import formats as F
from ..durable import catch_stop_signals
from ..core.errors import UsageError
from ..ops.fixes.upgrade import upgrade_maps
from .conventions import conventions, state_option
from .migrate_cmd import DEFAULT_JOURNAL_DIR
from .output_options import warn
from .store_options import given_options, jobs_option, pithos_db_option, resolve, store_options
from .exit_status import FIXES, JOURNALED_STOPPED, exit_status

DEFAULT_BACKUP_DIR = "/var/lib/archverify/map-backups"
ONLINE_JOBS = 4  # vlmc processes at once, as finalize runs them


def detect_mode(archipelago: str = "archipelago") -> str:
    """'offline' when ``archipelago status`` says nothing runs here (exit 0), else 'vlmc'."""
    if shutil.which(archipelago) is None:
        raise UsageError("cannot tell whether Archipelago runs ('archipelago' not found): "
                         "say --online or --offline (offline only when it is stopped on every node)")
    try:
        p = subprocess.run([archipelago, "status"], capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise UsageError(f"'archipelago status' failed ({e}): say --online or --offline") from None
    return "offline" if p.returncode == 0 else "vlmc"


def direct_from_config(config_path: str | None) -> bool:
    """filed's ``direct`` in [blockerm], read by verify.config.archipelago (absent: True, as shipped)."""
    if not config_path:
        return config.DIRECT_DEFAULT
    return config.load(config_path).stores["maps"].direct


def load_sizes(specs, sizes_file, pithos_db) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for spec in specs:
        name, _, size = spec.partition("=")
        if not F.is_hex64(name) or not size.isdigit():
            raise UsageError(f"--v0-size {spec!r}: expected HEX64NAME=BYTES")
        sizes[name] = int(size)
    if sizes_file:
        try:
            with open(sizes_file, encoding="utf-8") as fh:
                for n, line in enumerate(fh, 1):
                    parts = line.split()
                    if not parts or parts[0].startswith("#"):
                        continue
                    if len(parts) != 2 or not F.is_hex64(parts[0]) or not parts[1].isdigit():
                        raise UsageError(f"{sizes_file}:{n}: expected 'HEX64NAME BYTES'")
                    sizes[parts[0]] = int(parts[1])
        except OSError as e:
            raise UsageError(f"{sizes_file}: {e.strerror}") from None
    if pithos_db:
        sizes.update(sizes_from_pithos_db(pithos_db))
    return sizes


def sizes_from_pithos_db(url: str) -> dict[str, int]:
    """v0 map sizes from Pithos's ``versions`` (read-only, streamed); a mapfile with two sizes is left out."""
    from ..ops.pithos import db as pithosdb

    return pithosdb.v0_sizes(pithosdb.resolve_url(url))


@exit_status({0: "nothing left to upgrade", 1: "maps left: a preview's plan, failed or invalid maps", 2: FIXES[2]},
             JOURNALED_STOPPED)
@click.command("upgrade-maps")
@store_options(pithos_migrate=False)
@click.option("--online", "mode", flag_value="vlmc", help="Through the running Archipelago: vlmc open + close.")
@click.option("--offline", "mode", flag_value="offline",
              help="archverify writes the v2 maps itself; Archipelago must be stopped on every node.")
@click.option("--logdir", type=click.Path(file_okay=False),
              help="Write upgraded.log, failed.log and invalid.log into DIR, like the old finalize script.")
@click.option("--backup-dir", type=click.Path(file_okay=False), default=DEFAULT_BACKUP_DIR, show_default=True,
              help="The original bytes of every map object touched are saved here first.")
@state_option(default=DEFAULT_JOURNAL_DIR, old_names=("--journal-dir",),
              help="Journal and run lock; a rerun after a crash resumes from it.")
@click.option("--vlmc", "vlmc_cmd", default="vlmc", show_default=True, help="--online: the vlmc command.")
@click.option("--direct-io/--no-direct-io", "direct", default=None,
              help="filed --offline: pad written objects to 512 bytes as filed with direct = True does "
                   "[default: [blockerm] direct from --config, else True as shipped]. RADOS never pads.")
@click.option("--v0-size", "v0_sizes", multiple=True, metavar="NAME=BYTES",
              help="Size of a v0 (Pithos) map; repeatable. v0 maps of unknown size are not upgraded.")
@click.option("--v0-sizes-file", type=click.Path(dir_okay=False), help="Lines of 'NAME BYTES' for v0 maps.")
@pithos_db_option("Read v0 map sizes from Pithos's database:")
@conventions(writes=True)
@jobs_option(note="; --online: at most 4 vlmc at a time")
def command(config_path, backend, maps_dir, blocks_dir, pithos_migrate, mode, logdir, backup_dir, state_dir,
            vlmc_cmd, direct, v0_sizes, v0_sizes_file, pithos_db, run, jobs, **rados_opts):
    """Upgrade every v1 map, and every v0 map whose size is known, to v2 (filed or RADOS).

    A preview unless --yes. --online opens and closes each volume with vlmc (the
    running mapper upgrades it); --offline writes byte for byte what the v0.4
    mapper writes (on RADOS through librados, as radosd writes them), and needs
    Archipelago stopped on every node. Maps whose lock is held are left alone
    and reported. Without either,
    'archipelago status' on this node decides. Interrupted upgrades
    (map_upgrade_incomplete) are completed. Truncated and shadowed maps are
    never upgraded nor logged as upgraded. Examples:

    \b
      archverify upgrade-maps --config /etc/archipelago/archipelago.conf
      archverify upgrade-maps --config /etc/archipelago/archipelago.conf --offline --yes --logdir /root/upgrade-logs
      archverify upgrade-maps --backend rados --pool maps -c /etc/ceph/ceph.conf --offline --yes
    """
    apply, journal_dir = run.apply, state_dir
    if apply:
        catch_stop_signals()  # from here a signal stops the upgrade between two maps (exit 130/143)
    be, warnings = resolve(config_path, backend, maps_dir, blocks_dir, pithos_migrate, direct=direct, **rados_opts)
    warn(warnings)
    sizes = load_sizes(v0_sizes, v0_sizes_file, pithos_db)
    if mode is None:
        mode = detect_mode() if apply else "offline"
    if mode == "vlmc" and "jobs" not in given_options():
        jobs = min(ONLINE_JOBS, jobs)  # each is a vlmc process opening a volume in the running Archipelago
    summary = upgrade_maps(be, apply=apply, backup_dir=backup_dir, logdir=logdir, mode=mode,
                           vlmc=tuple(shlex.split(vlmc_cmd)), jobs=jobs, pithos_sizes=sizes,
                           journal_dir=journal_dir)
    if not run.human:
        click.echo(json.dumps(run.document(**summary), sort_keys=True))
    else:
        verbs = {"planned": "would upgrade", "upgraded": "upgraded", "failed": "FAILED", "invalid": "INVALID"}
        for r in [] if run.quiet else summary["results"]:
            line = f"{verbs.get(r['status'], r['status']):14} {r['target']}"
            if r["name"] != r["target"]:
                line += f" (from {r['name']})"
            if r["plan"]:
                line += f" [{r['plan']}]"
            if r["detail"]:
                line += f": {r['detail']}"
            click.echo(line)
        counts = ", ".join(f"{v} {k}" for k, v in sorted(summary["counts"].items())) or "nothing to upgrade"
        click.echo(f"upgrade-maps ({summary['mode']}): {counts}")
        if summary["counts"].get("planned"):
            click.echo("preview only: run again with --yes to upgrade")
        for which, path in sorted(summary["logs"].items()):
            click.echo(f"{which}: {path}")
    sys.exit(summary["exit_code"])
