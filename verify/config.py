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


def _parser() -> configparser.ConfigParser:
    return configparser.ConfigParser(interpolation=None, inline_comment_prefixes=("#",), strict=False)


def load(path: str | Path = DEFAULT_PATH) -> ArchipConfig:
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (give --config PATH, or the store flags)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {getattr(e, 'strerror', None) or e}") from None
    return loads(text, path)


def loads(text: str, path: str | Path) -> ArchipConfig:
    """Like :func:`load`, from text already read (another node's file, read over ssh)."""
    parser = _parser()
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as e:
        raise ConfigError(f"{path}: not an INI file: {str(e).splitlines()[0]}") from None
    return from_parser(parser, Path(path))


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


@dataclass
class Problem:
    level: str  # "error" (Archipelago or archverify cannot work with it) or "warning"
    message: str


def check(text: str, path: str | Path, pool_exists=None) -> tuple[ArchipConfig | None, list[Problem]]:
    """Every problem of the file at once, for ``archverify config``; :func:`load` stops at the first.

    Checks sections, blocker types, that dirs exist (and pools, when ``pool_exists``,
    a ``name -> bool | None`` callable, is given), the hyphenated key, and values
    Archipelago's parser would refuse: it has no inline comments, so
    ``pithos_migrate = True  # on`` is not a boolean to it.
    """
    problems: list[Problem] = []
    raw = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        raw.read_string(text, source=str(path))
    except configparser.Error as e:
        return None, [Problem("error", f"{path}: not an INI file: {str(e).splitlines()[0]}")]
    for role, section in SECTIONS.items():
        where = f"{path} [{section}]"
        if not raw.has_section(section):
            problems.append(Problem("error", f"{path}: no [{section}] section ({role} store)"))
            continue
        sec = raw[section]
        btype = sec.get("type", "").split("#")[0].strip()
        if btype not in ("file_blocker", "rados_blocker"):
            problems.append(Problem("error", f"{where}: unknown blocker type {btype!r} (file_blocker or rados_blocker)"))
        for key in ("pithos_migrate", "direct"):
            if key in sec:
                v = sec[key].strip()
                if v.lower() not in TRUE | FALSE - {""}:
                    problems.append(Problem("error", f"{where}: {key} = {v!r} is not a boolean to Archipelago"
                                            + (" (it has no inline comments)" if "#" in v else "")))
        if "pithos-migrate" in sec:
            problems.append(Problem("warning", f"{where}: 'pithos-migrate' (hyphen) is ignored by Archipelago; "
                                    "the key is 'pithos_migrate'"
                                    + ("" if "pithos_migrate" in sec else ": migration is OFF here")
                                    + " ('archverify pithos-migrate enable|disable' fixes the spelling)"))
        if btype == "file_blocker":
            for key in ("archip_dir", "lock_dir"):
                d = sec.get(key, "").strip()
                if key == "archip_dir" and not d:
                    problems.append(Problem("error", f"{where}: file_blocker without archip_dir"))
                elif d and not Path(d).is_dir():
                    problems.append(Problem("error", f"{where}: {key} {d} is not a directory on this node"))
        elif btype == "rados_blocker":
            pool = sec.get("pool", "").strip()
            if not pool:
                problems.append(Problem("error", f"{where}: rados_blocker without pool"))
            elif pool_exists is not None:
                found = pool_exists(pool)
                if found is False:
                    problems.append(Problem("error", f"{where}: pool {pool!r} does not exist"))
                elif found is None:
                    problems.append(Problem("warning", f"{where}: pool {pool!r} not checked (cluster unreachable)"))
    if raw.has_section("PEERS"):
        roles = raw["PEERS"].get("ROLES", "").split()
        for section in SECTIONS.values():
            if section not in roles:
                problems.append(Problem("warning", f"{path} [PEERS] ROLES lacks {section}: it will not run here"))
    else:
        problems.append(Problem("warning", f"{path}: no [PEERS] section"))
    cfg = None
    if not any(p.level == "error" for p in problems):
        try:
            cfg = loads(text, path)
        except ConfigError as e:
            problems.append(Problem("error", str(e)))
    return cfg, problems
