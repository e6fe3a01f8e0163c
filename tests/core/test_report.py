"""The one renderer (verify/report/render.py and its sections), names as every output shows
them, and the summary's counts derived from the findings."""

from __future__ import annotations

import json
import random
import re

import pytest
from click.testing import CliRunner

from verify.core import formats as F
from verify.report import render as report
from verify.cli.main import cli
from verify.cli.output_options import warn
from verify.core.findings import KINDS, Finding, escape_name, escape_names, printable
from verify.ops.sample import FiledStoreWriter
from verify.core.summary import ShardResult, Summary

M4 = F.BLOCK_SIZE_4M
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # any control but \t and \n
HOSTILE = [b"archip_evil\nmap_v1\tFAKE", b"screen\x1b[2Jwipe\rover", b"back\\slash\\xff", b"bad-\xff-utf8"]


def invoke(*args):
    r = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


# ---- names -------------------------------------------------------------------------------


def test_escape_name_is_printable_and_maps_back_to_one_name():
    seen = {}
    for raw in HOSTILE + [b"back\\slash\xff", b"plain", "caf\u00e9".encode()]:
        s = escape_name(raw)
        assert s.isprintable() or "\u00e9" in s
        assert s not in seen, (raw, seen.get(s))  # no two names show as one
        seen[s] = raw
    assert escape_name(b"plain") == "plain"
    assert escape_name(b"bad-\xff-utf8") == "bad-\\xff-utf8"  # as before: non-UTF-8 bytes as \xNN
    assert escape_name(b"a\nb\tc") == "a\\nb\\tc"
    assert escape_name(b"a\\b") == "a\\\\b"
    assert escape_name(escape_name(b"x\ny")) != escape_name(b"x\ny")  # a backslash is escaped, so it is unambiguous


def test_escape_names_is_escape_name_of_each():
    odd = [b"", b"plain", b"a\\b", b"a\nb", b"bad-\xff", "caf\u00e9".encode(), b"\x7f", b"\x1b[31m", b"~ !"]
    for raw in odd + [bytes([b]) for b in range(256)]:
        for batch in ([raw], [b"plain", raw, b""], [raw, raw]):
            assert escape_names(batch) == [escape_name(r) for r in batch], batch
    assert escape_names([]) == []


def test_printable_leaves_escaped_names_alone():
    for raw in HOSTILE:
        s = escape_name(raw)
        assert printable(s) == s
    assert not RAW_CONTROL.search(printable("a\x1b[2J\r\x00\x85b"))


def _hostile_store(tmp_path):
    maps, blocks = FiledStoreWriter(tmp_path / "maps"), FiledStoreWriter(tmp_path / "blocks")
    v1 = F.write_v1(M4, [(0, F.ZERO_HASH)])
    for raw in HOSTILE:
        maps.put(raw, v1[:12])  # a cut v1 map: map_corrupt, whatever its name
    blocks.put(b"blk\x1b]0;title\x07\n", b"x")  # a block no map names: object_orphan in check
    return tmp_path / "maps", tmp_path / "blocks"


@pytest.mark.parametrize("cmd", ["scan", "check"])
def test_control_characters_never_reach_a_line_raw(tmp_path, cmd):
    m, b = _hostile_store(tmp_path)
    stores = ["--maps-dir", m, "--blocks-dir", b]
    code, out, _ = invoke(cmd, *stores, "--format", "json")
    doc = json.loads(out)
    names = {f["name"] for f in doc["findings"]}
    assert {escape_name(r) for r in HOSTILE} <= names
    assert not any(RAW_CONTROL.search(n) or "\n" in n or "\t" in n for n in names)
    code, out, _ = invoke(cmd, *stores, "--logdir", tmp_path / "logs", "--max-shown", "100")
    assert code == doc["summary"]["exit_code"] == 1
    assert not RAW_CONTROL.search(out)
    for n in names:
        assert n in out
    per_kind = doc["summary"]["findings"]
    for log in (tmp_path / "logs").glob("*.log"):
        lines = log.read_text().splitlines()
        assert len(lines) == per_kind[log.stem], log  # no forged line
        assert all(len(line.split("\t")) == 4 and not RAW_CONTROL.search(line) for line in lines)
        assert {line.split("\t")[0] for line in lines} == {f["name"] for f in doc["findings"] if f["kind"] == log.stem}
    if cmd == "check":
        code, out, _ = invoke(cmd, *stores, "--quiet")
        assert code == 1 and len(out.splitlines()) == 1 and not RAW_CONTROL.search(out)


def test_warnings_are_printable(capsys):
    runner = CliRunner()
    r = runner.invoke(cli, ["--help"])  # a click context for click.echo
    assert r.exit_code == 0
    warn(["name \x1b[2J\rhere"])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and not RAW_CONTROL.search(err)


# ---- counts from findings ------------------------------------------------------------------


def test_summary_map_counts_come_from_findings():
    findings = [Finding("map_corrupt", "maps", f"m{i}") for i in range(5)] + [Finding("map_v1", "maps", "old")]
    s = Summary.from_result(ShardResult(counters={"maps.corrupt": 1, "maps.v1": 1}, findings=findings))
    assert s.as_dict()["maps"]["corrupt"] == 5 == s.as_dict()["findings"]["map_corrupt"]


def test_check_corrupt_entries_are_counted_in_the_summary(tmp_path):
    """Map entries the scan cannot see are map_corrupt in check: the summary counts them too."""
    maps = FiledStoreWriter(tmp_path / "maps")
    (tmp_path / "blocks").mkdir()
    for how in ("short", "objectlen-0", "unknown-flags", "slash"):
        name = f"vol-{how}"
        header, mapdata = F.write_v2(M4, [F.Entry("a" * 64, 0)], name=name)
        maps.put(name, header)
        for md_name, data in mapdata.items():
            bad = bytearray(data)
            if how == "short":
                bad = bad[:100]
            elif how == "objectlen-0":
                bad[1:5] = (0).to_bytes(4, "little")
            elif how == "unknown-flags":
                bad[0] = 0xF0
            else:
                bad[5] = ord("/")
            maps.put(md_name, bytes(bad))
    code, out, _ = invoke("check", "--maps-dir", tmp_path / "maps", "--blocks-dir", tmp_path / "blocks",
                          "--format", "json")
    doc = json.loads(out)
    corrupt = [f for f in doc["findings"] if f["kind"] == "map_corrupt"]
    assert len(corrupt) == 4 and code == 1
    assert doc["summary"]["maps"]["corrupt"] == 4 == doc["summary"]["findings"]["map_corrupt"]
    code, out, _ = invoke("check", "--maps-dir", tmp_path / "maps", "--blocks-dir", tmp_path / "blocks")
    assert re.search(r"corrupt 4\b", out)


# ---- one renderer, sections -------------------------------------------------------------------


def _summary():
    return Summary.from_result(ShardResult(
        counters={"maps.files": 3, "maps.v2": 2, "refs.references": 7, "check.stage.scan": 1,
                  "check.stage.references": 1},
        findings=[Finding("map_v1", "maps", "a"), Finding("object_missing", "blocks", "b" * 64)]))


def test_every_format_of_every_command_comes_from_render():
    from verify.report import check as check_report, pithos as pithos_report

    s = _summary()
    facts = check_report.check_facts(s, None, False)
    cases = {"scan": report.scan_sections(s), "check": check_report.sections(s, facts),
             "pithos-check": pithos_report.sections(s)}
    for command, sections in cases.items():
        head = report.Head(command, "filed", {"maps": {"dir": "/m"}}, s)
        import io

        outs = {}
        for fmt in report.FORMATS:
            buf = io.StringIO()
            report.render(fmt, buf, head, sections, 20)
            outs[fmt] = buf.getvalue()
        doc = json.loads(outs["json"])
        assert doc["command"] == command and {f["kind"] for f in doc["findings"]} == {"map_v1", "object_missing"}
        assert set(doc) >= {"tool", "version", "command", "backend", "stores", "summary", "findings"}
        last = json.loads(outs["jsonl"].splitlines()[-1])
        assert last["summary"] == doc["summary"]
        assert ("check" in doc) == ("check" in last) == (command == "check")
        # the human report: one header, the kinds table once, in the section order
        human = outs["human"]
        assert human.count(f"{command} (filed)") == 1
        for kind in ("map_v1", "object_missing"):
            assert len(re.findall(rf"^(ERROR|warn|info|UNREAD)\s+{kind}\s", human, re.M)) == 1
        if command == "check":
            assert human.index("check stages:") < human.index("map_v1")


def test_check_human_report_keeps_scan_lines_and_check_lines_apart(tmp_path):
    """The check's lines come after the scan's counts and before the findings, even when a
    finding's detail contains a blank line (the old renderer cut the scan's text there)."""
    from verify.report import check as check_report

    s = Summary.from_result(ShardResult(counters={"check.stage.scan": 1},
                                        findings=[Finding("map_v1", "maps", "a", None, "x\n\ny")]))
    import io

    buf = io.StringIO()
    report.render("human", buf, report.Head("check", "filed", {}, s),
                  check_report.sections(s, check_report.check_facts(s, None, False)), 20)
    text = buf.getvalue()
    assert text.index("locks:") < text.index("check stages:") < text.index("map_v1")
    assert "x\\n\\ny" in text


def test_every_kind_renders():
    s = Summary.from_result(ShardResult(findings=[Finding(k, "maps", f"n-{k}") for k in KINDS]))
    import io

    buf = io.StringIO()
    report.write_human(buf, s, "filed", {}, max_shown=100)
    assert all(f"n-{k}" in buf.getvalue() for k in KINDS)


def test_jsonl_line_is_json_dumps_of_the_finding_to_the_byte():
    """The JSONL writer formats each finding itself (no dict, no encoder call per finding):
    it must stay the bytes json.dumps gives, whatever the strings hold."""
    rng = random.Random(7)
    alphabet = ["a", "Z", "0", " ", '"', "\\", "/", "\n", "\t", "\x00", "\x1f", "\x7f", "é", "€", "\u2028",
                "\U0001f600", "\udc80", "{", "}", ":", ","]
    for _ in range(2000):
        text = lambda: "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12)))  # noqa: E731
        f = Finding(rng.choice(sorted(KINDS)), rng.choice(["maps", "blocks"]), text(),
                    None if rng.random() < 0.5 else text(), text())
        line = report.jsonl_line(f)
        assert line == json.dumps(f.as_dict()) + "\n"
        assert Finding.from_dict(json.loads(line)) == f
