"""``archverify report --state DIR --html FILE`` on runs kept by a real ``check --state``.

The state dir gets one real run (check on the sample store) and older runs written by
hand in the format verify/state.py documents, so the trend has something to draw.
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


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("report")
    assert run("sample", str(d / "store")).returncode == 0
    assert run("check", "--config", str(d / "store" / "archipelago.conf"), "--state", str(d / "state"),
               "--quiet").returncode == 1
    (real,) = (d / "state" / "runs").glob("*.json.gz")
    last = json.loads(gzip.open(real, "rt").read())
    for days in (1, 2):  # older runs with more unmigrated objects, fewer after each night's fix
        extra = [["object_unmigrated", "blocks", f"{i:064x}"] for i in range(10 * days)]
        write_run(d / "state", last["time"] - 86400 * days, last["findings"] + extra)
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
    assert len(t.rows["runs"]) - 1 == 3
    assert int(re.search(r'id="total">(\d+)<', page).group(1)) == sum(want_kind.values())
    # charts: one by kind, one by store, one trend per kind seen in any run
    assert t.svgs == 2 + len(want_kind)
    # self-contained: no URL anywhere (not even the SVG namespace), no script, no external resource
    assert not re.search(r"(?i)\b(https?|ftp)://|//[a-z0-9.-]+\.[a-z]{2,}/", page)
    assert not any(re.match(r"(?i)(https?:|//|data:text/html)", a) for a in t.attrs)
    assert "<script" not in page.lower() and "<link" not in page.lower()
    # atomic: only the page in the directory, no temp file left behind
    assert os.listdir(tmp_path) == ["r.html"]


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
    assert len(t.rows["runs"]) - 1 == 3


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
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1400, 2000)
    # a blank page compresses to a few KB; bars, lines and text do not
    assert len(data) > 50_000
    if os.environ.get("ARCHVERIFY_KEEP_SCREENSHOT"):
        shutil.copy(png, os.environ["ARCHVERIFY_KEEP_SCREENSHOT"])
