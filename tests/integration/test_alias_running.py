"""virt_device_alias on a RUNNING domain: only the persistent definition changes; the running QEMU keeps
libvirt's automatic aliases until a cold boot, which the module and virt_domain_info report.

Measured here: two <interface type='user'> with the same MAC start fine under TCG (0.55 s).
"""

from __future__ import annotations

import uuid

import pytest

from _alias_lib import (ALIAS_TYPES, CHANNEL_ALIAS, RNG_ALIAS, Nic, RDisk, alias_map, define_rich, file_alias,
                        image_path, mac_alias, run_named)

SERIAL = "vf-ser-%s" % uuid.uuid4().hex[:12]
MAC = "52:54:00:a2:00:01"


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    base = tmp_path_factory.mktemp("alias-running")
    return {"dir": str(base / "work"), "backups": str(base / "backups")}


@pytest.fixture(scope="module")
def running(lab, domains):
    name = define_rich(lab, domains, "alias-run", [RDisk("vda", "virtio", serial=SERIAL), RDisk("sda", "scsi")],
                       [Nic(MAC), Nic(MAC)], start=True)
    assert lab.dom(name).isActive()
    return name


def alias_run(lab, work, check=False, **args):
    args.setdefault("uri", lab.uri)
    args.setdefault("backup_dir", work["backups"])
    return run_named("virt_device_alias", args, work["dir"], check=check)


def info(lab, work, **args):
    args.setdefault("uri", lab.uri)
    res = run_named("virt_domain_info", args, work["dir"])
    assert not res.failed, res.stdout
    assert res.result["changed"] is False
    return res


def aliased_devices(facts):
    return [d for d in facts["devices"] if d["kind"] in ALIAS_TYPES]


def test_running_domain_gets_aliases_at_next_cold_boot(lab, work, running):
    name = running
    want = ["ua-disk-%s" % SERIAL, file_alias(image_path(name, "sda")), mac_alias(MAC), mac_alias(MAC, 2),
            CHANNEL_ALIAS, RNG_ALIAS]
    live_before = lab.live_xml(name)
    automatic = alias_map(live_before)
    assert automatic == ["virtio-disk0", "scsi0-0-0-0", "net0", "net1", "channel0", "rng0"]

    # Fix: the persistent definition gets the aliases; the running domain is left alone.
    fix = alias_run(lab, work, domains=[name])
    assert not fix.failed, fix.stdout
    assert fix.result["changed"] is True
    assert [f["desired"]["alias"] for f in fix.result["findings"]] == want
    for finding in fix.result["findings"]:
        assert (finding["rule"], finding["status"], finding["pending_restart"]) == ("alias-missing", "fixed", True)
    assert fix.result["summary"]["pending_restart"] == 6
    assert fix.result["domains"][0]["active"] is True
    assert lab.dom(name).isActive(), "the module must never stop a domain"
    assert alias_map(lab.inactive_xml(name)) == want
    assert alias_map(lab.live_xml(name)) == automatic

    # virt_domain_info: persistent alias vs live alias, 'alias' in live_differs.
    [facts] = info(lab, work, domains=[name]).result["domains"]
    assert facts["active"] is True and facts["state"] == "running"
    devs = aliased_devices(facts)
    assert [d["alias"] for d in devs] == want
    assert [d["live_alias"] for d in devs] == automatic
    for dev in devs:
        assert dev["live"] is True and "alias" in dev["live_differs"], dev
        assert dev["live_alias"] != dev["alias"]

    # Second run: nothing to change; every device reported live-differs / pending.
    again = alias_run(lab, work, domains=[name])
    assert not again.failed, again.stdout
    assert again.result["changed"] is False
    assert [(f["rule"], f["status"], f["pending_restart"]) for f in again.result["findings"]] == \
        [("live-differs", "pending", True)] * 6
    assert [f["current"]["alias"] for f in again.result["findings"]] == automatic
    assert [f["desired"]["alias"] for f in again.result["findings"]] == want
    assert "cold boot" in again.result["findings"][0]["message"]
    assert again.result["domains"][0]["backup"] is None
    assert alias_map(lab.inactive_xml(name)) == want

    # Cold boot: the live XML carries the ua- aliases, nothing is left to report.
    lab.dom(name).destroy()
    lab.dom(name).create()
    assert alias_map(lab.live_xml(name)) == want
    [facts] = info(lab, work, domains=[name]).result["domains"]
    for dev in aliased_devices(facts):
        assert dev["live_alias"] == dev["alias"], dev
        if dev["kind"] != "channel":   # see test_domain_info_lookup: channel source is generated live
            assert dev["live_differs"] == [], dev
    final = alias_run(lab, work, domains=[name])
    assert not final.failed, final.stdout
    assert final.result["changed"] is False
    assert final.result["findings"] == []
