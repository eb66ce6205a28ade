"""facts_diff: what the rolling upgrade compares before and after a host upgrade."""

from __future__ import annotations

import copy

from ansible_collections.virtfleet.libvirt.plugins.filter.facts_diff import FilterModule, facts_diff

BEFORE = {"domains": [
    {"name": "web01", "uuid": "u1", "machine": "pc-q35-7.2", "domain_type": "kvm", "arch": "x86_64", "devices": [
        {"kind": "disk", "target": "vda", "address": "0000:04:00.0", "alias": "ua-disk-a", "mac": None,
         "bus": "virtio", "source": "/img/a.qcow2", "model": None, "path": "/domain/devices/disk[1]"},
        {"kind": "interface", "target": None, "address": "0000:01:00.0", "alias": None, "mac": "52:54:00:00:00:01",
         "bus": None, "source": "default", "model": "virtio", "path": "/domain/devices/interface"},
    ]},
    {"name": "db01", "uuid": "u2", "machine": "pc-i440fx-7.2", "domain_type": "kvm", "arch": "x86_64", "devices": []},
]}


def test_unchanged_facts_give_no_differences_even_with_live_side_changes():
    after = copy.deepcopy(BEFORE)
    after["domains"][0]["devices"][0]["live_alias"] = "virtio-disk0"   # live side is not compared
    after["domains"].reverse()                                         # order of domains does not matter
    assert facts_diff(BEFORE, after) == []
    assert facts_diff(BEFORE["domains"], after["domains"]) == []


def test_machine_type_and_address_changes_are_named():
    after = copy.deepcopy(BEFORE)
    after["domains"][0]["machine"] = "pc-q35-8.0"
    after["domains"][0]["devices"][1]["address"] = "0000:02:00.0"
    assert facts_diff(BEFORE, after) == [
        "web01: machine pc-q35-7.2 -> pc-q35-8.0",
        "web01: device 1 (interface 52:54:00:00:00:01) address 0000:01:00.0 -> 0000:02:00.0",
    ]


def test_device_order_alias_mac_and_domain_set_changes():
    after = copy.deepcopy(BEFORE)
    devs = after["domains"][0]["devices"]
    devs.reverse()
    after["domains"].pop()            # db01 gone
    after["domains"].append({"name": "new01", "uuid": "u3", "devices": []})
    diff = facts_diff(BEFORE, after)
    assert "db01: domain disappeared" in diff and "new01: domain appeared" in diff
    assert any(line.startswith("web01: device 0 (disk vda) kind disk -> interface") for line in diff)
    short = copy.deepcopy(BEFORE)
    short["domains"][0]["devices"].pop()
    assert "web01: 2 devices -> 1" in facts_diff(BEFORE, short)


def test_registered_as_a_filter():
    assert FilterModule().filters()["facts_diff"] is facts_diff
