"""``archverify sample DIR``: a realistic store to try archverify on."""

from __future__ import annotations

import os
from pathlib import Path

import click

from ..errors import OutputError, UsageError
from ..sample import write_sample

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


@click.command("sample")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--seed", type=int, default=4, show_default=True, help="Same seed, same store.")
@click.option("--volumes", type=click.IntRange(1, 100000), default=12, show_default=True, help="Healthy volumes to write.")
def command(directory, seed, volumes):
    """Write a sample filed store (maps/, blocks/ and archipelago.conf) into DIRECTORY.

    Mostly migrated objects and valid v2 maps, with every kind of finding that
    'scan' reports planted at least once. Then try:

    \b
      archverify scan --config DIRECTORY/archipelago.conf
    """
    d = Path(directory)
    if d.exists() and any(d.iterdir()):
        raise UsageError(f"{d}: exists and is not empty; give a new directory")
    conf = d / "archipelago.conf"
    try:
        s = write_sample(d, seed=seed, volumes=volumes)
        conf.write_text(CONF.format(blocks=os.path.abspath(s.blocks_dir), maps=os.path.abspath(s.maps_dir)))
    except OSError as e:
        raise OutputError(f"{e.filename or d}: cannot write the sample store: {e.strerror or e}") from None
    n = sum(len(v) for v in s.planted.values())
    click.echo(f"wrote a sample store with {n} planted findings of {len(s.planted)} kinds into {d}")
    click.echo(f"next: archverify scan --config {conf}")
