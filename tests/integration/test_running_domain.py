"""A running domain: the persistent definition is fixed, the running QEMU keeps its settings
until a cold boot; the module never restarts a domain."""

from __future__ import annotations

import os

import pytest

from _itlib import Disk, drivers

DISKS = [
    Disk("vda", "virtio", cache="none", io="native"),
    Disk("sda", "scsi", cache="none", io="native"),
    Disk("sdb", "scsi", cache="writeback", io="threads"),   # already what is requested
]
OLD = {"vda": ("none", "native"), "sda": ("none", "native"), "sdb": ("writeback", "threads")}
NEW = {"vda": ("writeback", "threads"), "sda": ("writeback", "threads"), "sdb": ("writeback", "threads")}


@pytest.fixture(scope="module")
def running(domains):
    return domains.define(DISKS, suffix="running", start=True)


def test_cache_change_on_running_domain_waits_for_cold_boot(lab, running, run, backup_dir):
    assert lab.dom(running).isActive()

    # Check mode: drift, and the running domain would need a cold boot; nothing changes.
    check = run(check=True, domains=[running], cache="writeback", backup_dir=backup_dir)
    assert not check.failed, check.stdout
    assert len(check.result["findings"]) == 4
    assert {(f["status"], f["pending_restart"]) for f in check.result["findings"]} == {("drift", True)}
    assert drivers(lab.inactive_xml(running)) == OLD and drivers(lab.live_xml(running)) == OLD

    # cache: writeback makes io=native invalid: native -> threads, both pending a cold boot.
    fix = run(domains=[running], cache="writeback", backup_dir=backup_dir)
    assert not fix.failed, fix.stdout
    assert fix.result["changed"] is True
    rules = sorted((f["device"]["target"], f["rule"]) for f in fix.result["findings"])
    assert rules == [("sda", "cache-policy"), ("sda", "io-native-needs-direct-cache"),
                     ("vda", "cache-policy"), ("vda", "io-native-needs-direct-cache")]
    for finding in fix.result["findings"]:
        assert finding["status"] == "fixed"
        assert finding["pending_restart"] is True, finding
    assert fix.result["summary"]["pending_restart"] == 4
    assert fix.result["domains"][0]["active"] is True
    assert lab.dom(running).isActive(), "the module must never stop a domain"
    assert drivers(lab.live_xml(running)) == OLD
    assert drivers(lab.inactive_xml(running)) == NEW

    # Second run: nothing to change, the running domain is reported as pending.
    again = run(domains=[running], cache="writeback", backup_dir=backup_dir)
    assert not again.failed, again.stdout
    assert again.result["changed"] is False
    pending = sorted((f["device"]["target"], f["rule"], f["status"], f["pending_restart"])
                     for f in again.result["findings"])
    assert pending == [("sda", "live-differs", "pending", True), ("vda", "live-differs", "pending", True)]
    assert drivers(lab.inactive_xml(running)) == NEW

    # Cold boot: the running domain picks the definition up; nothing is left.
    lab.dom(running).destroy()
    lab.dom(running).create()
    assert drivers(lab.live_xml(running)) == NEW
    final = run(domains=[running], cache="writeback", backup_dir=backup_dir)
    assert not final.failed, final.stdout
    assert final.result["changed"] is False
    assert final.result["findings"] == []


def test_transient_domain_is_reported_not_touched(lab, domains, run, backup_dir):
    name = domains.create_transient([Disk("vda", "virtio", "none", "native")], suffix="transient")
    assert not lab.dom(name).isPersistent()
    for check in (True, False):
        res = run(check=check, domains=[name], io="threads", backup_dir=backup_dir)
        assert not res.failed, res.stdout
        assert res.result["changed"] is False
        [finding] = res.result["findings"]
        assert finding["status"] == "skipped" and finding["rule"] == "io-policy"
        assert "transient domain" in finding["message"]
        assert res.result["domains"][0]["persistent"] is False
    assert drivers(lab.live_xml(name)) == {"vda": ("none", "native")}
    assert not os.path.exists(backup_dir)
