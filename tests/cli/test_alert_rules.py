"""Each shipped alert rule fires on the case it names and stays quiet on a clean run: ``promtool
test rules`` on series made from the textfiles of real ``archverify check`` runs.

A case is a timeline of real runs (a clean store, the sample store with every kind of
finding, a broken config, a store that gains a finding); at each minute the series are
what the newest textfile says, as node_exporter would serve it (a series the file no
longer has goes stale). The runs' timestamps are moved onto the timeline (a run at
minute m ended at m*60), everything else is the file's. The rules are the shipped
file's, with the annotations left out of the test copy (promtool would compare their
rendered text; ``promtool check rules`` checks their templates in test_packaging.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "contrib/prometheus/archverify-rules.yml"
CONF = ROOT / "tests/fixtures/archipelago-filed.conf"
SCRAPE = {"instance": "node1:9100", "job": "node"}  # what the scrape adds to node_exporter's series
TIMESTAMPS = ("archverify_check_last_run_timestamp_seconds", "archverify_check_last_success_timestamp_seconds")
DAY = 24 * 60

promtool = shutil.which("promtool", path=f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}")
pytestmark = pytest.mark.skipif(promtool is None, reason="promtool is not here (scripts/bootstrap --test takes it "
                                "from Debian's prometheus package): the alert rules were NOT tested")


def check(conf: Path, prom: Path, state: Path) -> int:
    p = subprocess.run([sys.executable, "-m", "verify", "check", "--config", str(conf), "--state", str(state),
                        "--prometheus-textfile", str(prom), "--instance", "nightly", "-q"],
                       capture_output=True, text=True, cwd=ROOT)
    assert "Traceback" not in p.stderr, p.stderr
    return p.returncode


def config(d: Path, maps: Path, blocks: Path) -> Path:
    maps.mkdir(parents=True, exist_ok=True)
    blocks.mkdir(parents=True, exist_ok=True)
    conf = d / "archipelago.conf"
    conf.write_text(CONF.read_text().replace("@MAPS@", str(maps)).replace("@BLOCKS@", str(blocks)))
    return conf


class Timeline:
    """Real runs at minutes of a timeline, and the series node_exporter would serve from their files."""

    def __init__(self, d: Path):
        self.d = d
        self.prom = d / "archverify.prom"
        self.state = d / "state"
        self.files: list[tuple[int, dict]] = []  # (minute, {series: value})
        self.nominal: dict[float, int] = {}  # a run's real end time -> its minute

    def run(self, minute: int, conf: Path) -> int:
        code = check(conf, self.prom, self.state)
        samples = {}
        real_end = None
        for fam in text_string_to_metric_families(self.prom.read_text()):
            for s in fam.samples:
                labels = {**s.labels, **SCRAPE}
                key = s.name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
                samples[key] = (s.name, s.value)
                if s.name == TIMESTAMPS[0]:
                    real_end = s.value
        self.nominal[real_end] = minute
        out = {}
        for key, (name, value) in samples.items():
            if name in TIMESTAMPS:
                (value,) = [m * 60 for t, m in self.nominal.items() if abs(t - value) < 1e-3]
            out[key] = value
        self.files.append((minute, out))
        return code

    def series(self, until: int) -> list[dict]:
        keys = sorted({k for _, f in self.files for k in f})
        out = []
        for key in keys:
            values = []
            for minute in range(until + 1):
                current = [f for m, f in self.files if m <= minute]
                values.append(current[-1].get(key) if current else None)
            out.append({"series": key, "values": _compress(values)})
        return out


def _compress(values: list) -> str:
    """promtool's expanding notation: 'v+0xN' for N+1 equal samples, 'stale' then '_xN' for none."""
    parts, i = [], 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[i]:
            j += 1
        n = j - i + 1
        if values[i] is None:
            if i > 0:
                parts.append("stale")
                n -= 1
            if n:
                parts.append(f"_x{n}")
        else:
            parts.append(f"{values[i]!r}+0x{n - 1}")
        i = j + 1
    return " ".join(parts)


def run_promtool(tmp: Path, tests: list[dict]) -> None:
    rules = yaml.safe_load(RULES.read_text())
    for g in rules["groups"]:
        for r in g["rules"]:
            r.pop("annotations", None)
    (tmp / "rules.yml").write_text(yaml.safe_dump(rules))
    doc = {"rule_files": [str(tmp / "rules.yml")], "evaluation_interval": "1m", "tests": tests}
    (tmp / "tests.yml").write_text(yaml.safe_dump(doc, width=100000))
    p = subprocess.run([promtool, "test", "rules", str(tmp / "tests.yml")], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


ALERTS = ("ArchverifyCheckStale", "ArchverifyCheckIncomplete", "ArchverifyDataAtRisk", "ArchverifyNewFindings",
          "ArchverifyNotMigrated")


def expect(at: int, firing: dict[str, list[dict]]) -> list[dict]:
    """Every shipped alert at minute ``at``: the ones in ``firing`` with these label sets, the others none."""
    return [{"eval_time": f"{at}m", "alertname": a, "exp_alerts": [{"exp_labels": lb} for lb in firing.get(a, [])]}
            for a in ALERTS]


def rule_labels(name: str) -> dict:
    (rule,) = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if r["alert"] == name]
    return rule.get("labels", {})


def test_every_rule_has_a_case_here():
    names = [r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    assert sorted(names) == sorted(ALERTS)


@pytest.fixture(scope="module")
def sample_conf(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("sample")
    p = subprocess.run([sys.executable, "-m", "verify", "sample", str(d / "store")], capture_output=True, text=True,
                       cwd=ROOT)
    assert p.returncode == 0, p.stderr
    return d / "store" / "archipelago.conf"


def test_a_clean_store_checked_nightly_fires_nothing(tmp_path):
    t = Timeline(tmp_path)
    conf = config(tmp_path, tmp_path / "maps", tmp_path / "blocks")
    for night in range(9):
        assert t.run(night * DAY, conf) == 0
    until = 9 * DAY
    run_promtool(tmp_path, [{"interval": "1m", "input_series": t.series(until),
                             "alert_rule_test": [x for m in (30, 3 * DAY, 8 * DAY + 60, until) for x in expect(m, {})]}])


def _at_risk(samples: dict, base: dict) -> list[dict]:
    """The DataAtRisk alerts a textfile's error counts raise: one per kind with findings."""
    return [{**base, "kind": k.split('kind="')[1].split('"')[0], **rule_labels("ArchverifyDataAtRisk")}
            for k, v in samples.items()
            if k.startswith("archverify_check_findings{") and 'severity="error"' in k and v > 0]


BASE = {"archverify_instance": "nightly", **SCRAPE}


def test_findings_fire_data_at_risk_and_not_migrated_after_a_week(tmp_path, sample_conf):
    t = Timeline(tmp_path)
    for night in range(9):
        assert t.run(night * DAY, sample_conf) == 1
    at_risk = _at_risk(t.files[-1][1], BASE)
    assert len(at_risk) >= 3  # the sample store has errors of several kinds
    not_migrated = [{"archverify_instance": "nightly", "instance": SCRAPE["instance"],  # sum by these two
                     **rule_labels("ArchverifyNotMigrated")}]
    # the same findings night after night: nothing new, and never stale
    run_promtool(tmp_path, [{"interval": "1m", "input_series": t.series(9 * DAY), "alert_rule_test": [
        *expect(5, {}),  # 'for: 10m': not yet
        *expect(30, {"ArchverifyDataAtRisk": at_risk}),
        *expect(6 * DAY, {"ArchverifyDataAtRisk": at_risk}),  # warnings, but not for a week yet
        *expect(7 * DAY + 60, {"ArchverifyDataAtRisk": at_risk, "ArchverifyNotMigrated": not_migrated}),
    ]}])


def test_a_run_that_ends_before_reading_fires_incomplete_and_drops_the_old_findings(tmp_path, sample_conf):
    t = Timeline(tmp_path)
    assert t.run(0, sample_conf) == 1
    broken = tmp_path / "broken.conf"
    broken.write_text("[blockerb\narchip_dir = /nowhere\n")
    assert t.run(60, broken) == 2  # the same --instance: it is this check that broke
    incomplete = [{**BASE, **rule_labels("ArchverifyCheckIncomplete")}]
    run_promtool(tmp_path, [{"interval": "1m", "input_series": t.series(180), "alert_rule_test": [
        *expect(50, {"ArchverifyDataAtRisk": _at_risk(t.files[0][1], BASE)}),
        *expect(65, {}),  # the previous run's findings are not this run's; 'for: 10m' not yet
        *expect(75, {"ArchverifyCheckIncomplete": incomplete}),
        *expect(180, {"ArchverifyCheckIncomplete": incomplete}),
    ]}])


def test_a_new_finding_fires_new_findings_once(tmp_path):
    t = Timeline(tmp_path)
    blocks = tmp_path / "blocks"
    conf = config(tmp_path, tmp_path / "maps", blocks)
    assert t.run(0, conf) == 0  # no baseline: no new gauge at all
    (blocks / "xyz").write_bytes(b"a stray file")
    assert t.run(60, conf) == 1
    assert t.run(120, conf) == 1  # the same finding again: not new
    new = [{**BASE, **rule_labels("ArchverifyNewFindings")}]
    run_promtool(tmp_path, [{"interval": "1m", "input_series": t.series(180), "alert_rule_test": [
        *expect(30, {}), *expect(61, {"ArchverifyNewFindings": new}), *expect(150, {}),
    ]}])


def test_no_complete_run_for_two_days_fires_stale(tmp_path, sample_conf):
    """The timer stopped after one run, or every run since failed: the textfile stays, its last success ages."""
    t = Timeline(tmp_path)
    conf = config(tmp_path, tmp_path / "maps", tmp_path / "blocks")
    assert t.run(0, conf) == 0
    broken = tmp_path / "broken.conf"
    broken.write_text("[blockerb\narchip_dir = /nowhere\n")
    assert t.run(DAY + 60, broken) == 2  # keeps the first run's last success
    stale = [{**BASE, **rule_labels("ArchverifyCheckStale")}]
    incomplete = [{**BASE, **rule_labels("ArchverifyCheckIncomplete")}]
    run_promtool(tmp_path, [{"interval": "1m", "input_series": t.series(3 * DAY), "alert_rule_test": [
        *expect(DAY, {}),
        *expect(2 * DAY + 30, {"ArchverifyCheckIncomplete": incomplete}),  # 2 days old, 'for: 1h' not yet
        *expect(2 * DAY + 90, {"ArchverifyCheckIncomplete": incomplete, "ArchverifyCheckStale": stale}),
    ]}])
