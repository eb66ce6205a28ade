"""virt_domain_info on a real libvirtd: canonical facts, device lookup (direct, alias fallback, by
serial/mac/target/source, live), live-only hot-plugged devices, and bad input."""

from __future__ import annotations

import re
import uuid

import pytest

from _alias_lib import (CHANNEL_ALIAS, RNG_ALIAS, Nic, RDisk, define_rich, file_alias, hotplug_scsi_disk,
                        image_path, mac_alias, run_named)
from _itlib import parse

SERIAL = "vf-ser-%s" % uuid.uuid4().hex[:12]
MAC = "52:54:00:a4:00:01"
FIXED_SERIAL = "vf-ser-%s" % uuid.uuid4().hex[:12]
FIXED_MAC = "52:54:00:a4:00:02"
PCI = re.compile(r"^0000:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    base = tmp_path_factory.mktemp("domain-info")
    return {"dir": str(base / "work"), "backups": str(base / "backups")}


def info(lab, work, check=False, **args):
    args.setdefault("uri", lab.uri)
    return run_named("virt_domain_info", args, work["dir"], check=check)


@pytest.fixture(scope="module")
def bare(lab, domains):
    """Running, alias-less (as on an older host), with a LIVE-only hot-plugged scsi disk sdb."""
    name = define_rich(lab, domains, "info-bare", [RDisk("vda", "virtio", serial=SERIAL), RDisk("sda", "scsi")],
                       [Nic(MAC), Nic(MAC)], start=True)
    hotplug_scsi_disk(lab, name, "sdb", live_only=True)
    assert "sdb" in lab.live_xml(name) and "sdb" not in lab.inactive_xml(name)
    return name


@pytest.fixture(scope="module")
def fixed(lab, domains, work):
    """Defined only, aliased by virt_device_alias."""
    name = define_rich(lab, domains, "info-fixed", [RDisk("vda", "virtio", serial=FIXED_SERIAL), RDisk("sda", "scsi")],
                       [Nic(FIXED_MAC)], rng=False, channel=False)
    res = run_named("virt_device_alias", {"uri": lab.uri, "domains": [name], "backup_dir": work["backups"]},
                    work["dir"])
    assert not res.failed and res.result["changed"] is True, res.stdout
    return name


@pytest.fixture(scope="module")
def facts(lab, work, bare, fixed):
    res = info(lab, work, domains=[fixed, bare], lookup=[
        {"alias": "ua-disk-%s" % FIXED_SERIAL},
        {"alias": "ua-disk-%s" % SERIAL},
        {"alias": mac_alias(MAC)},
        {"alias": mac_alias(MAC, 2)},
        {"alias": RNG_ALIAS},
        {"alias": "ua-no-such-device"},
        {"serial": SERIAL},
        {"mac": MAC.upper()},
        {"target": "sda"},
        {"source": image_path(bare, "sda")},
        {"target": "sdb"},
        {"alias": "net1"},
    ])
    assert not res.failed, res.stdout
    by_name = {d["name"]: d for d in res.result["domains"]}
    return res, by_name[fixed], by_name[bare]


def lookups(dom):
    return {tuple(sorted(entry["selector"].items())): entry for entry in dom["lookup"]}


def one(dom, **selector):
    return lookups(dom)[tuple(sorted(selector.items()))]


def test_facts_of_running_and_defined_domains(lab, facts, bare, fixed):
    res, fdom, bdom = facts
    assert res.result["changed"] is False
    assert sorted(d["name"] for d in res.result["domains"]) == sorted([bare, fixed])
    assert res.result["host"]["hypervisor"] == "QEMU" and res.result["host"]["uri"] == lab.uri
    for dom, name, state in ((fdom, fixed, "shut off"), (bdom, bare, "running")):
        xml = parse(lab.inactive_xml(name))
        assert dom["uuid"] == lab.dom(name).UUIDString()
        assert dom["state"] == state and dom["active"] is (state == "running") and dom["persistent"] is True
        assert dom["domain_type"] == lab.domain_type
        assert dom["machine"] == xml.find("os/type").get("machine") and dom["machine"].startswith("pc-q35-")
        assert dom["arch"] == "x86_64"
        # Every device in document order (only <emulator>, <audio> are not devices).
        tags = [el.tag for el in xml.find("devices") if isinstance(el.tag, str) and el.tag not in ("emulator", "audio")]
        assert [d["kind"] for d in dom["devices"]] == tags
        assert [d["index"] for d in dom["devices"]] == list(range(len(tags)))
        for dev in dom["devices"]:
            if dev["kind"] in ("disk", "interface") and dev["bus"] != "scsi":
                assert PCI.match(dev["address"] or ""), dev
        sda = [d for d in dom["devices"] if d["target"] == "sda"][0]
        assert sda["address"] == "drive:controller=0:bus=0:target=0:unit=0"
        assert sda["source"] == image_path(name, "sda") and sda["format"] == "raw"
    # The defined domain: no live side.
    for dev in fdom["devices"]:
        assert dev["live"] is None and dev["live_alias"] is None and dev["live_differs"] == []
    assert fdom["live_only_devices"] == []


def test_domains_are_sorted_by_name(lab, work, bare, fixed):
    names = sorted([bare, fixed], reverse=True)     # request them in reverse name order
    res = info(lab, work, domains=names)
    assert not res.failed, res.stdout
    assert [d["name"] for d in res.result["domains"]] == sorted(names)


def test_running_alias_less_domain_shows_automatic_live_aliases(facts):
    _res, _fdom, bdom = facts
    nics = [d for d in bdom["devices"] if d["kind"] == "interface"]
    assert [(d["mac"], d["alias"], d["live_alias"]) for d in nics] == [(MAC, None, "net0"), (MAC, None, "net1")]
    for dev in nics:
        # no user alias in the definition: libvirt's automatic live alias is not a difference
        assert dev["live"] is True and dev["live_differs"] == []
    vda = [d for d in bdom["devices"] if d["target"] == "vda"][0]
    assert (vda["serial"], vda["alias"], vda["live_alias"]) == (SERIAL, None, "virtio-disk0")


def test_lookup_by_alias_direct_after_fix(facts, fixed):
    fdom = facts[1]
    hit = one(fdom, alias="ua-disk-%s" % FIXED_SERIAL)
    assert (hit["matched_by"], hit["found_in"], hit["count"]) == ("alias", "persistent", 1)
    [dev] = hit["devices"]
    assert (dev["target"], dev["serial"], dev["alias"]) == ("vda", FIXED_SERIAL, "ua-disk-%s" % FIXED_SERIAL)

    # The same selector on the other domain finds nothing (different serial).
    assert one(facts[2], alias="ua-disk-%s" % FIXED_SERIAL)["count"] == 0


@pytest.mark.parametrize("selector,matched_by,path", [
    ({"alias": "ua-disk-%s" % SERIAL}, "serial", "/domain/devices/disk[1]"),
    ({"alias": mac_alias(MAC)}, "mac", "/domain/devices/interface[1]"),
    ({"alias": mac_alias(MAC, 2)}, "mac", "/domain/devices/interface[2]"),
    ({"alias": RNG_ALIAS}, "source", "/domain/devices/rng"),
], ids=["serial", "mac-1st", "mac-2nd", "rng"])
def test_lookup_by_alias_falls_back_on_alias_less_domain(facts, selector, matched_by, path):
    _res, _fdom, bdom = facts
    hit = one(bdom, **selector)
    assert (hit["matched_by"], hit["found_in"], hit["count"]) == (matched_by, "persistent", 1), hit
    assert hit["devices"][0]["path"] == path and hit["devices"][0]["alias"] is None


def test_lookup_by_alias_derived_from_source_path(lab, work, bare):
    sda = file_alias(image_path(bare, "sda"))
    res = info(lab, work, domains=[bare], lookup=[{"alias": sda}, {"alias": CHANNEL_ALIAS}])
    assert not res.failed, res.stdout
    [dom] = res.result["domains"]
    assert (one(dom, alias=sda)["matched_by"], one(dom, alias=sda)["devices"][0]["target"]) == ("source", "sda")
    assert one(dom, alias=CHANNEL_ALIAS)["matched_by"] == "target"


def test_lookup_by_serial_mac_target_source(facts, bare):
    _res, _fdom, bdom = facts
    hit = one(bdom, serial=SERIAL)
    assert (hit["matched_by"], hit["count"], hit["devices"][0]["target"]) == ("serial", 1, "vda")
    hit = one(bdom, mac=MAC.upper())            # case-insensitive; both NICs share it
    assert (hit["matched_by"], hit["count"]) == ("mac", 2)
    assert [d["path"] for d in hit["devices"]] == ["/domain/devices/interface[1]", "/domain/devices/interface[2]"]
    hit = one(bdom, target="sda")
    assert (hit["matched_by"], hit["found_in"], hit["count"]) == ("target", "persistent", 1)
    assert hit["devices"][0]["source"] == image_path(bare, "sda")
    hit = one(bdom, source=image_path(bare, "sda"))
    assert (hit["matched_by"], hit["count"], hit["devices"][0]["target"]) == ("source", 1, "sda")


def test_lookup_without_match(facts):
    _res, fdom, bdom = facts
    for dom in (fdom, bdom):
        hit = one(dom, alias="ua-no-such-device")
        assert (hit["matched_by"], hit["found_in"], hit["count"], hit["devices"]) == (None, None, 0, [])


def test_live_only_hot_plugged_disk(facts, bare):
    _res, _fdom, bdom = facts
    assert "sdb" not in [d["target"] for d in bdom["devices"]]
    [sdb] = [d for d in bdom["live_only_devices"] if d["target"] == "sdb"]
    assert (sdb["persistent"], sdb["live"], sdb["alias"]) == (False, True, None)
    assert sdb["live_alias"] == "scsi0-0-0-1" and sdb["source"] == image_path(bare, "sdb")
    assert [d["target"] for d in bdom["live_only_devices"]] == ["sdb"]
    # Lookup searches the persistent definition first, then the live one.
    hit = one(bdom, target="sdb")
    assert (hit["matched_by"], hit["found_in"], hit["count"]) == ("target", "live", 1)
    hit = one(bdom, alias="net1")               # libvirt's automatic alias exists only live
    assert (hit["matched_by"], hit["found_in"], hit["count"]) == ("alias", "live", 1)
    assert hit["devices"][0]["mac"] == MAC


def test_check_mode_gives_the_same_facts(lab, work, facts, bare, fixed):
    res = info(lab, work, check=True, domains=[fixed, bare])
    assert not res.failed and res.result["changed"] is False, res.stdout
    strip = [{k: v for k, v in d.items() if k != "lookup"} for d in res.result["domains"]]
    assert strip == [{k: v for k, v in d.items() if k != "lookup"} for d in facts[0].result["domains"]]


# --- known false differences on a running domain --------------------------------------------------

def test_guest_agent_channel_source_is_not_a_live_difference(facts):
    _res, _fdom, bdom = facts
    [channel] = [d for d in bdom["devices"] if d["kind"] == "channel"]
    assert "source" not in channel["live_differs"], channel


def test_automatic_aliases_of_controllers_are_not_live_differences(facts):
    _res, _fdom, bdom = facts
    pci = [d for d in bdom["devices"] if d["kind"] == "controller" and d["live_alias"] in ("pcie.0", "pci.1")]
    assert len(pci) == 2
    assert [d["live_differs"] for d in pci] == [[], []]


# --- bad input ---------------------------------------------------------------------------------

def assert_clean_failure(res, *needles):
    assert res.failed and res.rc == 1, res.stdout
    assert res.result.get("changed") is False
    for needle in needles:
        assert needle in res.msg, "%r not in %r" % (needle, res.msg)
    assert "Traceback" not in res.stdout + res.stderr


def test_bad_input(lab, work, bare, fixed):
    before = {n: lab.inactive_xml(n) for n in (bare, fixed)}
    missing = "vf-it-missing-%s" % uuid.uuid4().hex[:8]
    assert_clean_failure(info(lab, work, domains=[fixed, missing]), "Domain(s) not found", missing,
                         "Fix the 'domains' option")
    assert_clean_failure(info(lab, work, domains=[fixed], lookup=[{"serial": "x", "mac": MAC}]),
                         "exactly one of alias, serial, mac, target, source")
    assert_clean_failure(info(lab, work, domains=[fixed], lookup=[{"wwn": "x"}]), "exactly one of")
    uri = "qemu:///system?socket=/run/nonexistent/sock"
    assert_clean_failure(info(lab, work, uri=uri), "Cannot connect to libvirt", "daemon is running")
    assert {n: lab.inactive_xml(n) for n in (bare, fixed)} == before
