"""``archverify sample DIR``: a realistic store to try archverify on."""

from __future__ import annotations

import os
from pathlib import Path

import click

from ..core.errors import OutputError, UsageError
from ..ops.sample import write_sample
from .conventions import Run, conventions
from .exit_status import CREATES, exit_status

CONF = """\
# archipelago.conf written by 'archverify sample' (the shape of Archipelago's shipped file)
[ARCHIPELAGO]
USER = archipelago
GROUP = archipelago

[PEERS]
ROLES = blockerb blockerm mapperd vlmcd

[blockerb]
type = file_blocker
archip_dir = {blocks}
# pithos-migrate = True   (the shipped comment's spelling, which Archipelago ignores)
pithos_migrate = True

[blockerm]
type = file_blocker
archip_dir = {maps}
pithos_migrate = True
"""


@exit_status(CREATES)
@click.command("sample")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--seed", type=int, default=4, show_default=True, help="Same seed, same store.")
@click.option("--volumes", type=click.IntRange(1, 100000), default=12, show_default=True, help="Healthy volumes to write.")
@conventions(creates="files in a new or empty DIRECTORY")
def command(directory, seed, volumes, run: Run):
    """Write a sample filed store (maps/, blocks/ and archipelago.conf) into DIRECTORY.

    Mostly migrated objects and valid v2 maps, with every kind of finding that
    'scan' reports planted at least once. It only creates files in a new (or
    empty) directory, so it needs no --yes; --dry-run writes nothing. Then try:

    \b
      archverify scan --config DIRECTORY/archipelago.conf
    """
    d = Path(directory)
    if d.exists() and any(d.iterdir()):
        raise UsageError(f"{d}: exists and is not empty; give a new directory")
    conf = d / "archipelago.conf"
    if run.dry_run:
        _tell(run, d, conf, None)
        return
    try:
        s = write_sample(d, seed=seed, volumes=volumes)
        conf.write_text(CONF.format(blocks=os.path.abspath(s.blocks_dir), maps=os.path.abspath(s.maps_dir)))
    except OSError as e:
        raise OutputError(f"{e.filename or d}: cannot write the sample store: {e.strerror or e}") from None
    _tell(run, d, conf, {k: len(v) for k, v in s.planted.items()})


def _tell(run: Run, d: Path, conf: Path, planted: dict | None) -> None:
    if not run.human:
        run.emit(directory=os.path.abspath(d), config=os.path.abspath(conf), written=planted is not None,
                 planted=planted)
    elif planted is None:
        run.say(f"would write a sample store (maps/, blocks/, archipelago.conf) into {d}")
    else:
        run.say(f"wrote a sample store with {sum(planted.values())} planted findings of {len(planted)} kinds "
                f"into {d}")
        run.say(f"next: archverify scan --config {conf}")
