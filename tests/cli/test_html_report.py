"""``archverify report --state DIR --html FILE`` on runs kept by a real ``check --state``.

The state dir gets two real runs (check on the sample store; then one orphan removed and
a stray file added, so the second has a new and a resolved finding) and older runs
written by hand in the format archverify wrote before state format 2 (a full list, no
counts), so the trend has something to draw and the old format is read.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest

from verify.report import html as html_report
from verify.core.findings import KINDS

ARCHVERIFY = [sys.executable, "-m", "verify"]


def run(*args, check=True):
    p = subprocess.run([*ARCHVERIFY, *args], capture_output=True, text=True)
    if check and p.returncode not in (0, 1):
        raise AssertionError(f"{args}: exit {p.returncode}: {p.stderr}")
    return p


def write_run(state: Path, when: float, findings: list[list[str]], exit_code: int = 1) -> None:
    doc = {"time": when, "exit_code": exit_code, "stages": ["scan", "references"],
           "covered": [], "findings": sorted(findings)}
    name = f"{int(when)}.000000000Z-1.json.gz"  # sorts before the real run's 2xxx... name
    with gzip.open(state / "runs" / name, "wt", encoding="utf-8") as fh:
        json.dump(doc, fh)


STRAY = "zz-stray-file"


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("report")
    assert run("sample", str(d / "store")).returncode == 0
    conf = str(d / "store" / "archipelago.conf")
    first = run("check", "--config", conf, "--state", str(d / "state"), "--format", "json", "--instance", "site-a")
    found = json.loads(first.stdout)["findings"]
    orphan = next(f for f in found if f["kind"] == "object_orphan"  # an orphan and nothing else
                  and [g["kind"] for g in found if g["name"] == f["name"]] == ["object_orphan"])
    (d / "store" / "blocks" / orphan["path"]).unlink()
    (d / "store" / "blocks" / STRAY).write_bytes(b"x")
    assert run("check", "--config", conf, "--state", str(d / "state"), "--quiet",
               "--instance", "site-a").returncode == 1
    real = sorted((d / "state" / "runs").glob("*.json.gz"))
    last = json.loads(gzip.open(real[0], "rt").read())
    for days in (1, 2):  # older runs with more unmigrated objects, fewer after each night's fix
        extra = [["object_unmigrated", "blocks", f"{i:064x}"] for i in range(10 * days)]
        write_run(d / "state", last["time"] - 86400 * days, last["findings"] + extra)
    (d / "orphan").write_text(orphan["name"])
    return d / "state"


class Tables(HTMLParser):
    """The rows of every table with an id, and every URL-looking attribute."""

    def __init__(self):
        super().__init__()
        self.rows: dict[str, list[list[str]]] = {}
        self.table = None
        self.cell = None
        self.svgs = 0
        self.attrs: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.attrs.extend(v or "" for _, v in attrs)
        if tag == "table":
            self.table = a.get("id")
            self.rows.setdefault(self.table, [])
        elif tag == "tr" and self.table:
            self.rows[self.table].append([])
        elif tag in ("td", "th") and self.table:
            self.cell = []
        elif tag == "svg":
            self.svgs += 1

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.rows[self.table][-1].append("".join(self.cell).strip())
            self.cell = None
        elif tag == "table":
            self.table = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def last_run(state: Path) -> dict:
    newest = sorted((state / "runs").glob("*.json.gz"))[-1]
    return json.loads(gzip.open(newest, "rt").read())


def test_counts_match_the_last_run_and_nothing_is_fetched(state, tmp_path):
    out = tmp_path / "r.html"
    p = run("report", "--state", str(state), "--html", str(out))
    assert p.returncode == 0, p.stderr
    page = out.read_text()
    t = Tables()
    t.feed(page)
    want_kind = Counter(k for k, _, _ in last_run(state)["findings"])
    want_store_kind = Counter((s, k) for k, s, _ in last_run(state)["findings"])
    got_kind = {r[0]: int(r[2]) for r in t.rows["by-kind"][1:]}
    got_store_kind = {(r[0], r[1]): int(r[2]) for r in t.rows["by-store"][1:]}
    assert got_kind == dict(want_kind) and "object_unmigrated" in got_kind
    assert got_store_kind == dict(want_store_kind)
    assert len(t.rows["runs"]) - 1 == 4
    assert int(re.search(r'id="total">(\d+)<', page).group(1)) == sum(want_kind.values())
    # charts: one by kind, one by store, one trend per kind seen in any run
    assert t.svgs == 2 + len(want_kind)
    # self-contained: no URL anywhere (not even the SVG namespace), no script, no external resource
    assert not re.search(r"(?i)\b(https?|ftp)://|//[a-z0-9.-]+\.[a-z]{2,}/", page)
    assert not any(re.match(r"(?i)(https?:|//|data:text/html)", a) for a in t.attrs)
    assert "<script" not in page.lower() and "<link" not in page.lower()
    # atomic: only the page in the directory, no temp file left behind
    assert os.listdir(tmp_path) == ["r.html"]


def test_names_the_instance_the_stores_the_new_resolved_and_worst_findings(state, tmp_path):
    out = tmp_path / "r.html"
    assert run("report", "--state", str(state), "--html", str(out)).returncode == 0
    page = out.read_text()
    t = Tables()
    t.feed(page)
    store = state.parent / "store"
    assert re.search(r"<title>archverify report: site-a \(maps: [^<]*/store/maps; blocks: [^<]*/store/blocks\)</title>",
                     page)
    assert str(state) not in page.split("</title>")[0]  # the title names the stores, not the state dir
    assert f"blocks: {store / 'blocks'}" in page
    orphan = (state.parent / "orphan").read_text()
    assert t.rows["new"][1:] == [["stray_entry", "blocks", STRAY]]
    assert t.rows["resolved"][1:] == [["object_orphan", "blocks", orphan]]
    findings = last_run(state)["findings"]
    per_kind = Counter(k for k, _, _ in findings)
    for kind, n in per_kind.items():  # every kind's first names, capped, and how many there are
        rows = t.rows[f"worst-{kind}"][1:]
        assert len(rows) == min(n, html_report.SHOWN)
        assert [r[1:] for r in rows] == sorted([st, nm] for k, st, nm in findings if k == kind)[:html_report.SHOWN]
    # the worst kinds come first
    order = re.findall(r'<h3 data-kind="([a-z_0-9]+)">', page)
    sev = [KINDS[k].severity for k in order]
    assert sev == sorted(sev, reverse=True) and set(order) == set(per_kind)


def test_many_findings_of_a_kind_are_capped_with_their_count(tmp_path):
    s = tmp_path / "state"
    (s / "runs").mkdir(parents=True)
    write_run(s, 1_700_000_000.0, [["object_orphan", "blocks", f"{i:064x}"] for i in range(250)])
    out = tmp_path / "r.html"
    assert run("report", "--state", str(s), "--html", str(out)).returncode == 0
    page = out.read_text()
    t = Tables()
    t.feed(page)
    assert len(t.rows["worst-object_orphan"]) - 1 == html_report.SHOWN
    assert f"and {250 - html_report.SHOWN} more (250 in all" in page
    assert 'id="no-baseline"' in page  # a run of the old format says nothing of new or resolved


def test_missing_or_empty_state_is_one_line_exit_2(tmp_path):
    for d in (tmp_path / "nope", tmp_path):
        p = run("report", "--state", str(d), "--html", str(tmp_path / "r.html"), check=False)
        assert p.returncode == 2 and "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r.html").exists()


def test_a_damaged_run_file_is_left_out_not_fatal(state, tmp_path):
    s = tmp_path / "state"
    shutil.copytree(state, s)
    (s / "runs" / "0000-damaged.json.gz").write_bytes(b"not gzip")
    p = run("report", "--state", str(s), "--html", str(tmp_path / "r.html"))
    assert p.returncode == 0 and "0000-damaged.json.gz" in p.stderr
    t = Tables()
    t.feed((tmp_path / "r.html").read_text())
    assert len(t.rows["runs"]) - 1 == 4


def test_unwritable_target_dir_fails_before_reading(state, tmp_path):
    p = run("report", "--state", str(state), "--html", str(tmp_path / "no" / "r.html"), check=False)
    assert p.returncode == 2 and "Traceback" not in p.stderr


CHROMIUM = shutil.which("chromium")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_renders_in_headless_chromium(state, tmp_path):
    out = tmp_path / "r.html"
    run("report", "--state", str(state), "--html", str(out))
    png = tmp_path / "r.png"
    p = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--no-first-run",
                        f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,2000",
                        f"--screenshot={png}", out.as_uri()], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    # what the browser made of the page: the names are in its DOM
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          "--disable-component-update", "--disable-sync", "--no-first-run",
                          f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", out.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    t = Tables()
    t.feed(dom.stdout)
    assert "site-a (maps: " in dom.stdout and str(state.parent / "store" / "blocks") in dom.stdout
    assert t.rows["new"][1:] == [["stray_entry", "blocks", STRAY]]
    assert t.rows["resolved"][1:] == [["object_orphan", "blocks", (state.parent / "orphan").read_text()]]
    for kind in {k for k, _, _ in last_run(state)["findings"]}:
        assert t.rows[f"worst-{kind}"][1][0] == kind
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1400, 2000)
    # a blank page compresses to a few KB; bars, lines and text do not
    assert len(data) > 50_000
    if os.environ.get("ARCHVERIFY_KEEP_SCREENSHOT"):
        shutil.copy(png, os.environ["ARCHVERIFY_KEEP_SCREENSHOT"])
