"""``archverify migrate-objects``: move what lazy migration never touched (filed only)."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter

import click

from .. import backends
from ..durable import catch_stop_signals
from ..core.errors import UsageError
from ..ops.fixes.migrate import migrate_objects
from .conventions import Run, conventions, state_option
from .options import apply_options
from .output_options import warn
from .store_options import jobs_option, resolve, unread_stores
from .exit_status import FIXES, JOURNALED_STOPPED, exit_status

DEFAULT_JOURNAL_DIR = "/var/lib/archverify"


def filed_store_options(f):
    opts = [
        click.option("--config", "config_path", type=click.Path(),
                     help="archipelago.conf to read the filed dirs from [default: /etc/archipelago/archipelago.conf "
                          "when no dir is given]"),
        click.option("--maps-dir", type=click.Path(file_okay=False), help="The maps store dir ([blockerm] archip_dir)."),
        click.option("--blocks-dir", type=click.Path(file_okay=False), help="The blocks store dir ([blockerb] archip_dir)."),
        state_option(default=DEFAULT_JOURNAL_DIR, old_names=("--journal-dir",),
                     help="Where the journal (and the run lock) is kept; a rerun after a crash resumes from it."),
        conventions(writes=True),
    ]
    return apply_options(f, opts)


def path_stores(config_path, maps_dir, blocks_dir):
    """The stores kept as files at paths (a pool has none to move between)."""
    be, warnings = resolve(config_path, None, maps_dir, blocks_dir, "auto", paths_only=True)
    warn(warnings)  # the config's warnings, printed as every command prints them
    return be


VERB = {"planned": "would", "done": "done", "skipped": "skipped", "conflict": "CONFLICT", "failed": "FAILED"}


def render_results(results: list[dict], run: Run, out=None) -> int:
    out = out or sys.stdout
    counts = Counter(r["status"] for r in results)
    apply = run.apply
    if not run.human:
        json.dump(run.document(results=results, counts=dict(counts), applied=apply), out, sort_keys=True)
        out.write("\n")
    else:
        for r in results:
            if run.quiet:
                continue  # -q: only the counts
            line = f"{VERB.get(r['status'], r['status']):8} {r['action']:10} {r['store']:6} {r['name']}"
            if r["action"] != "none":
                line += f"  {r['old']} -> {r['new']}"
            if r.get("detail"):
                line += f"  ({r['detail']})"
            out.write(line + "\n")
            if "old_xxh3" in r:
                out.write(f"{'':9}old {r['old']}: {r['old_size']} bytes, xxh3-128 {r['old_xxh3']}\n")
                out.write(f"{'':9}new {r['new']}: {r['new_size']} bytes, xxh3-128 {r['new_xxh3']}\n")
        summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "nothing to do"
        out.write(f"migrate-objects: {summary}\n")
        if counts.get("planned"):
            out.write("preview only: run again with --yes to apply\n")
        if counts.get("conflict"):
            out.write("conflicts are never fixed automatically: compare the files; "
                      "--resolve-identical removes the old path of byte-identical ones\n")
    return 1 if counts.get("planned") or counts.get("conflict") or counts.get("failed") else 0


@exit_status(FIXES, JOURNALED_STOPPED)
@click.command("migrate-objects")
@filed_store_options
@click.option("--resolve-identical", is_flag=True,
              help="For object_conflict: remove the old path when both files are byte-identical.")
@click.option("--legacy-dir", "legacy_dirs", multiple=True, metavar="[ROLE=]DIR",
              help="A v0.3 dir outside archip_dir (FILED_IMAGES, or maps=FILED_MAPS); repeatable. Objects the store "
                   "lacks are linked or copied into their v0.4 path; nothing is removed from DIR.")
@jobs_option
def command(config_path, maps_dir, blocks_dir, state_dir, run: Run, resolve_identical, legacy_dirs, jobs):
    """Move unmigrated, misplaced and leftover objects to their v0.4 path (filed only).

    On a config with one store filed and the other a RADOS pool, the filed store
    is fixed (a pool has no old paths). A preview unless --yes. Each move is filed's own (link, then unlink the old
    name), safe while Archipelago runs and safe to interrupt: a rerun finishes
    the job. Conflicts (two different files for one object) are only reported;
    objects whose old and new paths are one file are never touched. Examples:

    \b
      archverify migrate-objects --config /etc/archipelago/archipelago.conf
      archverify migrate-objects --config /etc/archipelago/archipelago.conf --yes
      archverify migrate-objects --blocks-dir /srv/archip/blocks --maps-dir /srv/archip/maps \\
          --legacy-dir /srv/old/images --legacy-dir maps=/srv/old/maps --yes
    """
    if run.apply:
        catch_stop_signals()  # from here a signal stops the run between two objects (exit 130/143)
    be = path_stores(config_path, maps_dir, blocks_dir)
    dirs = {role: be.store_dir(role) for role in backends.ROLES if be.store_dir(role) is not None}
    for spec in legacy_dirs:
        path = spec.split("=", 1)[1] if spec.startswith(("maps=", "blocks=")) else spec
        if not os.path.isdir(path):
            raise UsageError(f"{path}: --legacy-dir is not a directory")
    results = migrate_objects(dirs, apply=run.apply, journal_dir=state_dir, resolve_identical=resolve_identical,
                              legacy_dirs=legacy_dirs, jobs=jobs)
    warn(unread_stores(be, config_path))
    sys.exit(render_results(results, run))
