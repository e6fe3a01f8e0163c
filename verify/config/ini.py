"""Python 2's ``ConfigParser``, byte for byte: how Archipelago reads archipelago.conf.

Archipelago (python/archipelago/common.py) reads its file with Python 2's
``RawConfigParser``; :func:`parse` does the same over bytes: no ``#`` inline comments,
``;`` after a space starts one, an indented line continues the value above it, a
repeated key or section is merged with the last value winning, keys are
case-insensitive, and bytes that are not UTF-8 are just bytes. Its own module: what
archverify takes from the parsed file, and every verdict on it, is verify/config/archipelago.py's;
the editor (verify/config/confedit.py) parses with it too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

DEFAULT_SECTION = "DEFAULT"

_SECTION_RE = re.compile(rb"\[(?P<header>[^]]+)\]")  # ConfigParser.SECTCRE (Python 2)
_OPTION_RE = re.compile(rb"(?P<option>[^:=\s][^:=]*)\s*(?P<vi>[:=])\s*(?P<value>.*)$")  # ConfigParser.OPTCRE


def show(value: bytes | str) -> str:
    """A value quoted for one line of output: control characters and non-UTF-8 bytes escaped."""
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogateescape")
    out = []
    for ch in value.decode("utf-8", "surrogateescape"):
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:
            out.append(f"\\x{o - 0xDC00:02x}")
        elif ch in "\\'":
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif not ch.isprintable():
            out.append(f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}")
        else:
            out.append(ch)
    return "'" + "".join(out) + "'"


@dataclass
class Entry:
    """One ``key = value`` line (and its continuation lines) as ConfigParser stores it."""

    key: str  # lower-cased, as optionxform does
    value: bytes  # stripped, ' ;' comment cut, continuation lines joined with '\n'
    line: int
    continued: list[int] = field(default_factory=list)  # line numbers of continuation lines


@dataclass
class Section:
    name: str
    headers: list[int] = field(default_factory=list)  # a name given twice is one merged section
    entries: list[Entry] = field(default_factory=list)  # every occurrence, in file order

    def last(self, key: str) -> Entry | None:
        for e in reversed(self.entries):
            if e.key == key:
                return e
        return None


@dataclass
class Ini:
    sections: dict[str, Section]
    defaults: Section
    errors: list[tuple[int, str]]  # (line, why): ConfigParser refuses the whole file

    def get(self, section: str, key: str) -> Entry | None:
        """What ``cfg.get(section, key)`` returns: the last value in the section, else in [DEFAULT]."""
        sec = self.sections.get(section)
        e = sec.last(key) if sec is not None else None
        return e if e is not None else self.defaults.last(key)


def parse(data: bytes) -> Ini:
    """Python 2's ``RawConfigParser._read`` over bytes (lines end at '\\n' only)."""
    sections: dict[str, Section] = {}
    defaults = Section(DEFAULT_SECTION)
    errors: list[tuple[int, str]] = []
    cur: Section | None = None
    entry: Entry | None = None
    for n, line in enumerate(data.split(b"\n"), 1):
        if not line.strip() or line[:1] in (b"#", b";"):
            continue  # blank and comment lines do not end a continuation
        if line.split(None, 1)[0].lower() == b"rem" and line[:1] in (b"r", b"R"):
            continue
        if line[:1].isspace() and cur is not None and entry is not None:
            v = line.strip()
            if v:
                entry.value += b"\n" + v
                entry.continued.append(n)
            continue
        m = _SECTION_RE.match(line)
        if not m and line[:1] == b"[" and b"]" not in line:
            errors.append((n, f"{show(line.strip())} opens a section name but never closes it (no ']')"))
            entry = None
            continue
        if m:
            name = m.group("header").decode("utf-8", "surrogateescape")
            if name == DEFAULT_SECTION:
                cur = defaults
            else:
                cur = sections.setdefault(name, Section(name))
            cur.headers.append(n)
            entry = None
            continue
        if cur is None:
            errors.append((n, "a line before the first [section]"))
            continue
        m = _OPTION_RE.match(line)
        if not m:
            errors.append((n, f"neither '[section]' nor 'key = value': {show(line.strip())}"))
            continue
        value = m.group("value")
        if b";" in value:  # ';' starts a comment only after white space, and only the first ';' counts
            pos = value.find(b";")
            if pos > 0 and value[pos - 1:pos].isspace():
                value = value[:pos]
        value = value.strip()
        if value == b'""':
            value = b""
        key = m.group("option").rstrip().lower().decode("utf-8", "surrogateescape")
        entry = Entry(key, value, n)
        cur.entries.append(entry)
    return Ini(sections, defaults, errors)
