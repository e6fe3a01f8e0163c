"""Reading ``/etc/archipelago/archipelago.conf``: where the two stores are.

``[blockerb]`` holds data objects ("blocks"), ``[blockerm]`` maps ("maps"). Each is a
``file_blocker`` (``archip_dir``, ``pithos_migrate``) or a ``rados_blocker`` (``pool``,
``cephx_id``). The key is ``pithos_migrate``; the shipped file's comment spells it
``pithos-migrate``, which Archipelago ignores: we warn about it rather than honour
it. Writing the file is :mod:`verify.confedit`'s job; this module only reads.
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError

DEFAULT_PATH = Path("/etc/archipelago/archipelago.conf")
SECTIONS = {"blocks": "blockerb", "maps": "blockerm"}
TRUE = {"1", "yes", "true", "on"}
FALSE = {"0", "no", "false", "off", ""}


@dataclass
class StoreConfig:
    role: str  # "maps" or "blocks"
    section: str
    type: str  # "filed" or "rados"
    archip_dir: str | None = None
    pool: str | None = None
    cephx_id: str | None = None
    pithos_migrate: bool = False  # effective value, as Archipelago reads it
    hyphen_key: bool = False  # "pithos-migrate" present: ignored by Archipelago
    hyphen_value: bool | None = None  # what the misspelt key says the operator meant

    @property
    def known_off(self) -> bool:
        """pithos_migrate is off and nobody meant it on: coinciding paths are safe here.

        A misspelt ``pithos-migrate = True`` is off today, but the operator meant it on and
        will fix the spelling: its objects at risk are reported all the same.
        """
        return not self.pithos_migrate and self.hyphen_value is not True


@dataclass
class ArchipConfig:
    path: Path
    stores: dict[str, StoreConfig]
    roles: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def parse_bool(value: str, where: str) -> bool:
    v = value.strip().lower()
    if v in TRUE:
        return True
    if v in FALSE:
        return False
    raise ConfigError(f"{where}: {value!r} is not a boolean (use True or False)")


def load(path: str | Path = DEFAULT_PATH) -> ArchipConfig:
    path = Path(path)
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=("#",), strict=False)
    try:
        with open(path, encoding="utf-8") as fh:
            parser.read_file(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (give --config PATH, or the store flags)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {getattr(e, 'strerror', None) or e}") from None
    except configparser.Error as e:
        raise ConfigError(f"{path}: not an INI file: {str(e).splitlines()[0]}") from None
    return from_parser(parser, path)


def from_parser(parser: configparser.ConfigParser, path: Path) -> ArchipConfig:
    stores: dict[str, StoreConfig] = {}
    warnings: list[str] = []
    for role, section in SECTIONS.items():
        if not parser.has_section(section):
            raise ConfigError(f"{path}: no [{section}] section ({role} store); is this an Archipelago v0.4 config?")
        sec = parser[section]
        where = f"{path} [{section}]"
        btype = sec.get("type", "").strip()
        if btype == "file_blocker":
            archip_dir = sec.get("archip_dir", "").strip()
            if not archip_dir:
                raise ConfigError(f"{where}: file_blocker without archip_dir")
            sc = StoreConfig(role, section, "filed", archip_dir=archip_dir)
        elif btype == "rados_blocker":
            pool = sec.get("pool", "").strip()
            if not pool:
                raise ConfigError(f"{where}: rados_blocker without pool")
            sc = StoreConfig(role, section, "rados", pool=pool, cephx_id=(sec.get("cephx_id") or "").strip() or None)
        else:
            raise ConfigError(f"{where}: unknown blocker type {btype!r} (file_blocker or rados_blocker)")
        if "pithos_migrate" in sec:
            sc.pithos_migrate = parse_bool(sec["pithos_migrate"], f"{where} pithos_migrate")
        if "pithos-migrate" in sec:
            sc.hyphen_key = True
            sc.hyphen_value = sec["pithos-migrate"].strip().lower() not in FALSE
            warnings.append(
                f"{where}: 'pithos-migrate' (hyphen) is ignored by Archipelago; the key is 'pithos_migrate'"
                + ("" if "pithos_migrate" in sec else ": migration is OFF here")
            )
        stores[role] = sc
    roles = []
    if parser.has_section("PEERS"):
        roles = [r for r in parser["PEERS"].get("ROLES", "").replace(",", " ").split() if r]
    return ArchipConfig(path, stores, roles, warnings)
