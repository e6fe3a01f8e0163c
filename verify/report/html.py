"""``archverify report --html``: the runs that ``check --state DIR`` kept, as one HTML page.

The page is self-contained: the charts are SVG drawn here, the style is inline, and
nothing in it names a URL, so it opens the same on a laptop with no network, from a
mail attachment or from a web server's directory listing. It reads the state files
only (``DIR/runs/*.json.gz``, read by :func:`verify.ops.state.read_run`): every run's
counts per store and kind, so the page breaks the findings down by kind and by store
and draws each kind's count over the runs kept; the last run's new and resolved
findings and, from its full list, the worst findings of each kind (the first
:data:`SHOWN` by name, with the count). The title names the ``--instance`` and the
stores the last run checked.
"""

from __future__ import annotations

import html
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from ..ops import state as state_mod
from ..core.errors import StoreError
from ..core.findings import KINDS, Severity

SHOWN = 20  # names listed per kind, and of the new and the resolved findings

# one colour per severity, readable on white and in grey print
COLOURS = {Severity.UNREADABLE: "#6a1b9a", Severity.ERROR: "#c62828", Severity.WARNING: "#ef6c00",
           Severity.INFO: "#1565c0", None: "#546e7a"}
EXIT_MEANING = {0: "nothing found", 1: "findings", 2: "incomplete (part of a store unreadable, or trouble)"}


@dataclass
class Run:
    """One run as the state dir keeps it."""

    file: str
    time: float
    exit_code: int
    stages: list[str]
    per_kind: Counter = field(default_factory=Counter)
    per_store: Counter = field(default_factory=Counter)
    per_store_kind: Counter = field(default_factory=Counter)  # (store, kind) -> count
    instance: str | None = None
    stores: dict = field(default_factory=dict)  # role -> what the run's report says of the store
    findings: list | None = None  # [kind, store, name], the newest runs only
    new: dict | None = None  # {"count": N, "first": [[kind, store, name], ...]}; None before a baseline
    resolved: dict | None = None


@dataclass
class History:
    runs: list[Run]  # oldest first
    unreadable: list[str]  # run files that could not be read (named on the page, never fatal)


def load_history(state_dir: str | Path) -> History:
    """Every run kept in ``state_dir``, oldest first; a damaged file is listed, not fatal."""
    d = Path(state_dir)
    if not d.is_dir():
        raise StoreError(f"{d}: no such state dir (the --state DIR of 'archverify check')")
    files = sorted((d / "runs").glob("*.json.gz"))
    if not files:
        raise StoreError(f"{d}: no runs kept yet; run 'archverify check --state {d}' first")
    runs, unreadable = [], []
    for f in files:
        try:
            doc = state_mod.read_run(f)
            run = Run(f.name, doc["time"], doc["exit_code"], list(doc.get("stages", [])),
                      instance=doc.get("instance"), stores=dict(doc.get("stores") or {}), findings=doc["findings"])
            if doc.get("baseline"):
                run.new, run.resolved = doc.get("new"), doc.get("resolved")
            for store, kind, n in doc["counts"]:
                run.per_kind[kind] += n
                run.per_store[store] += n
                run.per_store_kind[(store, kind)] += n
        except (OSError, EOFError, ValueError, KeyError, TypeError) as e:
            unreadable.append(f"{f.name}: {e}")
            continue
        runs.append(run)
    if not runs:
        raise StoreError(f"{d / 'runs'}: none of the {len(files)} run files is readable ({unreadable[-1]})")
    runs.sort(key=lambda r: (r.time, r.file))
    return History(runs, unreadable)


def _severity(kind: str) -> Severity | None:
    k = KINDS.get(kind)
    return k.severity if k else None


def _kind_order(kinds) -> list[str]:
    """Worst severity first, then by name: the order the human report uses."""
    return sorted(kinds, key=lambda k: (-(_severity(k) if _severity(k) is not None else -1), k))


def _esc(s: object) -> str:
    return html.escape(str(s), quote=True)


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t))


def _nice_max(v: int) -> int:
    """A round axis maximum at or above ``v`` (1, 2, 5 times a power of ten)."""
    if v <= 0:
        return 1
    step = 1
    while True:
        for m in (1, 2, 5):
            if m * step >= v:
                return m * step
        step *= 10


def bar_chart(rows: list[tuple[str, int, str]], width: int = 640) -> str:
    """Horizontal bars: one (label, value, colour) per row, the value written at the bar's end."""
    if not rows:
        return '<p class="none">none</p>'
    label_w, bar_h, gap = 230, 20, 6
    top = max(v for _, v, _ in rows)
    scale = (width - label_w - 80) / max(top, 1)
    height = len(rows) * (bar_h + gap) + gap
    out = [f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">']
    for i, (label, value, colour) in enumerate(rows):
        y = gap + i * (bar_h + gap)
        w = max(value * scale, 1 if value else 0)
        out.append(f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end">{_esc(label)}</text>')
        out.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colour}">'
                   f'<title>{_esc(label)}: {value}</title></rect>')
        out.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 15}" class="value">{value}</text>')
    out.append("</svg>")
    return "\n".join(out)


def trend_chart(kind: str, runs: list[Run], width: int = 420, height: int = 150) -> str:
    """One kind's count over the runs: a line with a dot per run, y axis from 0, first and last date."""
    colour = COLOURS[_severity(kind)]
    left, right, top, bottom = 52, 12, 24, 28
    values = [r.per_kind.get(kind, 0) for r in runs]
    ymax = _nice_max(max(values))
    pw, ph = width - left - right, height - top - bottom
    n = len(runs)

    def x(i: int) -> float:
        return left + (pw * i / (n - 1) if n > 1 else pw / 2)

    def y(v: int) -> float:
        return top + ph - ph * v / ymax

    out = [f'<svg class="chart trend" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">',
           f'<text x="{left}" y="15" class="title">{_esc(kind)}</text>',
           f'<text x="{width - right}" y="15" text-anchor="end" class="value">now {values[-1]}</text>']
    for v in (0, ymax // 2 if ymax >= 2 else None, ymax):
        if v is None:
            continue
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="grid"/>')
        out.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end" class="axis">{v}</text>')
    pts = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
    if n > 1:
        out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2"/>')
    for i, (r, v) in enumerate(zip(runs, values)):
        out.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}">'
                   f'<title>{_esc(_when(r.time))}: {v}</title></circle>')
    out.append(f'<text x="{left}" y="{height - 8}" class="axis">{_esc(_when(runs[0].time)[:10])}</text>')
    if n > 1:
        out.append(f'<text x="{width - right}" y="{height - 8}" text-anchor="end" class="axis">'
                   f'{_esc(_when(runs[-1].time)[:10])}</text>')
    out.append("</svg>")
    return "\n".join(out)


STYLE = """
body { font-family: sans-serif; margin: 2em; color: #212121; max-width: 1400px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: .5em 0; } td, th { padding: .2em .8em; border-bottom: 1px solid #eee; }
th { text-align: left; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
.chart text { font-size: 12px; fill: #212121; } .chart .value { font-weight: bold; }
.chart .axis { font-size: 11px; fill: #616161; } .chart .title { font-weight: bold; font-size: 13px; }
.chart .grid { stroke: #e0e0e0; stroke-width: 1; }
.trends { display: flex; flex-wrap: wrap; gap: 1em; } .none { color: #616161; }
.sev { display: inline-block; width: .8em; height: .8em; margin-right: .3em; }
.warn { color: #c62828; } td.name { font-family: monospace; word-break: break-all; }
.more { color: #616161; font-style: italic; } h3 { font-size: 1.05em; margin-bottom: .2em; }
"""


def store_label(role: str, desc: dict) -> str:
    """``maps: /srv/archip/maps`` or ``blocks: pool blocks (ns x)``: where the run looked."""
    if "pool" in desc:  # a pool (RADOS) rather than a dir
        ns = f" (namespace {desc['namespace']})" if desc.get("namespace") else ""
        return f"{role}: RADOS pool {desc.get('pool')}{ns}"
    return f"{role}: {desc.get('dir', '?')}"


def title(last: Run, state_dir: str) -> str:
    """The instance and the stores of the last run; the state dir only for runs that predate them."""
    stores = "; ".join(store_label(r, last.stores[r]) for r in ("maps", "blocks") if r in last.stores)
    if last.instance and stores:
        return f"{last.instance} ({stores})"
    return last.instance or stores or state_dir


def _finding_list(keys: list, count: int, table_id: str) -> list[str]:
    """A table of [kind, store, name] rows, and how many more there are."""
    if not count:
        return ['<p class="none">none</p>']
    w = [f'<table id="{table_id}"><tr><th>kind</th><th>store</th><th>name</th></tr>']
    for kind, store, name in keys[:SHOWN]:
        w.append(f'<tr data-kind="{_esc(kind)}"><td>{_esc(kind)}</td><td>{_esc(store)}</td>'
                 f'<td class="name">{_esc(name)}</td></tr>')
    w.append("</table>")
    if count > min(len(keys), SHOWN):
        w.append(f'<p class="more">and {count - min(len(keys), SHOWN)} more ({count} in all; '
                 "'archverify check --since-last' or --logdir lists every one)</p>")
    return w


def render(history: History, state_dir: str) -> str:
    runs = history.runs
    last = runs[-1]
    kinds_ever = _kind_order({k for r in runs for k in r.per_kind})
    last_kinds = _kind_order(k for k, v in last.per_kind.items() if v)
    total = sum(last.per_kind.values())
    name = title(last, state_dir)
    w = []
    w.append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">")
    w.append(f"<title>archverify report: {_esc(name)}</title>\n<style>{STYLE}</style>\n</head>\n<body>")
    w.append(f'<h1>archverify check: <span id="instance">{_esc(name)}</span></h1>')
    if last.stores:
        w.append('<ul id="stores">' + "".join(f"<li>{_esc(store_label(r, d))}</li>" for r, d in
                                             sorted(last.stores.items())) + "</ul>")
    w.append(f'<p>Last run <b>{_esc(_when(last.time))}</b>, exit code <b>{last.exit_code}</b> '
             f'({_esc(EXIT_MEANING.get(last.exit_code, "unknown"))}), stages {_esc(", ".join(last.stages) or "none")}; '
             f'<b id="total">{total}</b> findings. {len(runs)} runs kept, the first on {_esc(_when(runs[0].time))}.</p>')
    if history.unreadable:
        w.append('<p class="warn">Run files that could not be read (left out): '
                 + "; ".join(_esc(u) for u in history.unreadable) + "</p>")

    w.append("<h2>Since the run before</h2>")
    if last.new is None:
        w.append('<p class="none" id="no-baseline">No baseline yet: the last run is the first kept '
                 "(or the first of this archverify), so nothing is new or resolved.</p>")
    else:
        w.append(f'<h3>New: <span id="new-count">{last.new["count"]}</span></h3>')
        w.extend(_finding_list(last.new.get("first", []), last.new["count"], "new"))
        w.append(f'<h3>Resolved: <span id="resolved-count">{last.resolved["count"]}</span></h3>')
        w.extend(_finding_list(last.resolved.get("first", []), last.resolved["count"], "resolved"))

    w.append("<h2>Last run: the worst findings of each kind</h2>")
    if last.findings is None:
        w.append('<p class="none">This run keeps counts only.</p>')
    elif not last_kinds:
        w.append('<p class="none">none</p>')
    by_kind: dict[str, list] = {}
    for f in last.findings or ():
        by_kind.setdefault(f[0], []).append(f)
    for k in last_kinds if last.findings is not None else ():
        keys = by_kind.get(k, [])
        w.append(f'<h3 data-kind="{_esc(k)}">{_esc(k)}: {last.per_kind[k]}</h3>')
        w.extend(_finding_list(keys, last.per_kind[k], f"worst-{k}"))

    w.append("<h2>Last run: findings by kind</h2>")
    w.append(bar_chart([(k, last.per_kind[k], COLOURS[_severity(k)]) for k in last_kinds]))
    w.append('<table id="by-kind"><tr><th>kind</th><th>severity</th><th>findings</th><th>what to do</th></tr>')
    for k in last_kinds:
        sev = _severity(k)
        advice = KINDS[k].advice if k in KINDS else ""
        w.append(f'<tr data-kind="{_esc(k)}"><td><span class="sev" style="background:{COLOURS[sev]}"></span>{_esc(k)}</td>'
                 f'<td>{_esc(sev.name.lower() if sev is not None else "?")}</td>'
                 f'<td class="n">{last.per_kind[k]}</td><td>{_esc(advice)}</td></tr>')
    w.append("</table>")

    w.append("<h2>Last run: findings by store</h2>")
    stores = sorted(last.per_store)
    w.append(bar_chart([(s, last.per_store[s], "#455a64") for s in stores]))
    w.append('<table id="by-store"><tr><th>store</th><th>kind</th><th>findings</th></tr>')
    for s in stores:
        for k in _kind_order(k for (st, k) in last.per_store_kind if st == s):
            w.append(f'<tr data-store="{_esc(s)}" data-kind="{_esc(k)}"><td>{_esc(s)}</td><td>{_esc(k)}</td>'
                     f'<td class="n">{last.per_store_kind[(s, k)]}</td></tr>')
    w.append("</table>")

    w.append(f"<h2>Trend over the {len(runs)} runs kept</h2>")
    if kinds_ever:
        w.append('<div class="trends">')
        w.extend(trend_chart(k, runs) for k in kinds_ever)
        w.append("</div>")
    else:
        w.append('<p class="none">No run kept any finding.</p>')

    w.append('<h2>Runs</h2>\n<table id="runs"><tr><th>ended</th><th>exit code</th><th>stages</th><th>findings</th></tr>')
    for r in reversed(runs):
        w.append(f'<tr><td>{_esc(_when(r.time))}</td><td class="n">{r.exit_code}</td><td>{_esc(", ".join(r.stages))}</td>'
                 f'<td class="n">{sum(r.per_kind.values())}</td></tr>')
    w.append("</table>")
    w.append(f'<p class="none">Written by archverify {_esc(__version__)} report on {_esc(_when(time.time()))}. '
             "Kinds a run did not check fully are carried over from the run before it.</p>")
    w.append("</body>\n</html>\n")
    return "\n".join(w)
