"""The stand-ins behave like Archipelago where finalize depends on it (checked against the real v0.4 output)."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

from standins.harness import FIXTURES, make_cluster
from verify.core import layout
from verify.ops.sample import AT_RISK_NAMES, FiledStoreWriter, pithos_hash


def test_vlmc_open_upgrades_v1_like_the_real_mapper(tmp_path, monkeypatch):
    # golden-v1-upgrade.tar.gz: archip_alpha-vol1 before, and alpha-vol1 with its map-data after
    # 'open alpha-vol1', as written by Archipelago v0.4's own mapperd and filed (golden store, step 02)
    with tarfile.open(FIXTURES / "golden-v1-upgrade.tar.gz") as tf:
        tf.extractall(tmp_path / "golden")  # our own fixture: regular files and dirs only
    store = tmp_path / "store"
    (store / "blocks").mkdir(parents=True)
    os.rename(tmp_path / "golden" / "before" / "maps", store / "maps")
    c = make_cluster(tmp_path, store / "blocks", store / "maps", nodes=("n1",), monkeypatch=monkeypatch)
    c.conf("n1").write_text(c.conf("n1").read_text().replace("direct = True", "direct = False"))  # as the golden run
    c.standin("n1", "archipelago", "start")
    assert c.standin("n1", "vlmc", "open", "alpha-vol1").returncode == 0
    after = tmp_path / "golden" / "after" / "maps"
    for rel in ("ae/7b/2f/alpha-vol1", "0d/86/82/alpha-vol1_0000000000000000"):
        assert (store / "maps" / rel).read_bytes() == (after / rel).read_bytes(), rel
    files = sorted(p.name for p in (store / "maps").rglob("*") if p.is_file())
    assert files == ["alpha-vol1", "alpha-vol1_0000000000000000", "alpha-vol1_lock"]  # archip_ purged
    assert c.standin("n1", "vlmc", "open", "alpha-vol1", check=False).returncode == 0  # the same node again
    c.standin("n1", "vlmc", "close", "alpha-vol1")
    assert not any(p.name.endswith("_lock") for p in (store / "maps").rglob("*"))


def test_filed_lazy_migration(tmp_path, monkeypatch):
    store = tmp_path / "store"
    w = FiledStoreWriter(store / "blocks")
    FiledStoreWriter(store / "maps")
    data = os.urandom(4096)
    unmigrated = pithos_hash(data)
    w.put(unmigrated, data, "pithos")
    at_risk = AT_RISK_NAMES[2]
    w.put(at_risk, b"only copy", "pithos")
    d2 = os.urandom(4096)
    conflict = pithos_hash(d2)
    w.put(conflict, d2, "pithos")
    w.put(conflict, d2[:100], "v04")
    c = make_cluster(tmp_path, store / "blocks", store / "maps", nodes=("n1",), monkeypatch=monkeypatch)
    conf = c.conf("n1")
    # the shipped comment's hyphen spelling: Archipelago ignores it, so nothing migrates
    conf.write_text(conf.read_text().replace("umask = 007\n\n[blockerm]", "umask = 007\npithos-migrate = True\n\n[blockerm]"))
    c.standin("n1", "archipelago", "start")
    r = c.standin("n1", "archipelago-standin", "access", unmigrated, at_risk)
    assert r.returncode == 0 and w.path(unmigrated, "pithos").exists() and not w.path(unmigrated).exists()
    # pithos_migrate read at start only
    conf.write_text(conf.read_text().replace("pithos-migrate = True", "pithos_migrate = True"))
    c.standin("n1", "archipelago-standin", "access", unmigrated)
    assert w.path(unmigrated, "pithos").exists()
    c.standin("n1", "archipelago", "stop")
    c.standin("n1", "archipelago", "start")
    r = c.standin("n1", "archipelago-standin", "access", unmigrated, conflict, at_risk, check=False)
    assert r.returncode == 5  # EIO on the conflict
    assert w.path(unmigrated).read_bytes() == data and not w.path(unmigrated, "pithos").exists()
    assert w.path(conflict, "pithos").exists() and w.path(conflict).exists()
    assert layout.paths_coincide(at_risk.encode()) and not w.path(at_risk).exists()  # the data-loss case
    r = c.standin("n1", "archipelago-standin", "access", at_risk, check=False)
    assert r.returncode == 2  # gone for good


def test_not_running_and_bad_config(tmp_path, monkeypatch):
    c = make_cluster(tmp_path, tmp_path / "b", tmp_path / "m", nodes=("n1",), monkeypatch=monkeypatch)
    assert c.standin("n1", "vlmc", "open", "vol-000", check=False).returncode == 255
    assert c.standin("n1", "archipelago-standin", "access", "x" * 64, check=False).returncode == 255
    conf = c.conf("n1")
    conf.write_text(conf.read_text().replace("direct = True", "direct = True\npithos_migrate = True  # on", 1))
    assert c.standin("n1", "archipelago", "start", check=False).returncode == 255  # no '#' inline comments
    assert not c.state()["nodes"]["n1"]["running"]
    Path(conf).unlink()
    assert c.standin("n1", "archipelago", "status", check=False).returncode == 255
