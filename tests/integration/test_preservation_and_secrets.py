"""A fix changes only <driver cache= io=>: everything libvirt filled in survives, and the VNC
password is kept in the definition but never shown."""

from __future__ import annotations

import os
import uuid

import libvirt
import pytest

from _itlib import (
    LEGACY_VNC_PASSWORD,
    LONG_VNC_REFUSED,
    META_NS,
    VNC_PASSWORD,
    Disk,
    addresses,
    device_order,
    domain_xml,
    drivers,
    machine,
    macs,
    metadata_c14n,
    parse,
    without_driver_modes,
)


def test_vnc_password_is_kept_and_never_printed(lab, domains, run, backup_dir):
    name = domains.define([Disk("vda", "virtio", "none", "native"), Disk("sda", "scsi", "none", "native")],
                          suffix="vnc", vnc_passwd=VNC_PASSWORD)
    graphics = parse(lab.inactive_xml(name)).find("devices/graphics")
    assert graphics.get("passwd") == VNC_PASSWORD, "fixture: libvirt did not keep the password"

    check = run(check=True, diff=True, domains=[name], io="threads", backup_dir=backup_dir)
    assert not check.failed, check.stdout
    assert check.result["changed"] is True and len(check.result["findings"]) == 2
    [diff] = check.result["diff"]
    for side in ("before", "after"):
        assert parse(diff[side]).find("devices/graphics").get("passwd") not in (None, VNC_PASSWORD)
    assert VNC_PASSWORD not in check.stdout + check.stderr

    fix = run(diff=True, domains=[name], io="threads", backup_dir=backup_dir)
    assert not fix.failed, fix.stdout
    assert fix.result["changed"] is True and fix.result["diff"]
    assert VNC_PASSWORD not in fix.stdout + fix.stderr

    after = lab.dom(name).XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE | libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert parse(after).find("devices/graphics").get("passwd") == VNC_PASSWORD, "the fix dropped the VNC password"
    assert drivers(after) == {"vda": ("none", "threads"), "sda": ("none", "threads")}
    # The backup is the one place that must hold it (0600, see test_legacy_domain).
    with open(fix.result["domains"][0]["backup"], encoding="utf-8") as handle:
        assert VNC_PASSWORD in handle.read()


def test_unfixable_legacy_definition_fails_alone_and_leaks_nothing(lab, domains, run, backup_dir):
    """libvirt 9.0 and later refuse a 9-character VNC password at every define: a legacy domain
    carrying one cannot be redefined at all. The module says so in BOTH modes (``blocked``, with
    the remedy) and sends no define; the other domain of the same call is still fixed. libvirt 7.0
    accepts such a password (docs/generations.md, row 1): there both domains drift and are fixed and
    the password is kept as it was. Either way it never appears in the output."""
    legacy = domains.define_legacy([Disk("sda", "scsi", "writeback", "native")], suffix="vnc9",
                                   vnc_passwd=LEGACY_VNC_PASSWORD)
    other = domains.define([Disk("sda", "scsi", "none", "native")], suffix="other")
    before = lab.inactive_xml(legacy)

    check = run(check=True, diff=True, domains=[legacy, other], io="threads", backup_dir=backup_dir)
    assert not check.failed, check.stdout
    assert LEGACY_VNC_PASSWORD not in check.stdout + check.stderr
    fix = run(diff=True, domains=[legacy, other], io="threads", backup_dir=backup_dir)
    assert LEGACY_VNC_PASSWORD not in fix.stdout + fix.stderr
    assert [f["status"] for f in fix.findings(domain=other)] == ["fixed"]
    assert drivers(lab.inactive_xml(other)) == {"sda": ("none", "threads")}
    if LONG_VNC_REFUSED:
        assert {f["domain"] for f in check.findings(status="drift")} == {other}
        for res in (check, fix):
            [finding] = res.findings(domain=legacy)
            assert finding["status"] == "blocked", finding
            assert "VNC password" in finding["message"] and "8 characters" in finding["message"], finding
        assert lab.inactive_xml(legacy) == before
        assert not [f for f in os.listdir(backup_dir) if legacy in f], "a backup means a define was attempted"
    else:
        assert {f["domain"] for f in check.findings(status="drift")} == {legacy, other}
        assert not fix.failed, fix.msg
        assert [f["status"] for f in fix.findings(domain=legacy)] == ["fixed"]
        after = lab.inactive_xml(legacy)
        assert drivers(after) == {"sda": ("writeback", "threads")}
        assert parse(after).find("devices/graphics").get("passwd") == LEGACY_VNC_PASSWORD


def test_long_vnc_password_at_define_is_what_this_libvirt_does(lab, domains):
    """The generation difference itself, through the API: 9.0+ refuse a 9-character VNC password
    with code 67, 7.0 keeps it."""
    xml = domain_xml("vf-it-%s-vnclen" % uuid.uuid4().hex[:8], lab.domain_type, [], vnc_passwd=LEGACY_VNC_PASSWORD)
    name = parse(xml).findtext("name")
    if LONG_VNC_REFUSED:
        with pytest.raises(libvirt.libvirtError) as refused:
            lab.conn.defineXML(xml)
        assert refused.value.get_error_code() == 67, str(refused.value)
        assert "VNC password is 9 characters long, only 8 permitted" in str(refused.value)
        assert name not in [d.name() for d in lab.conn.listAllDomains()]
    else:
        domains.names.append(name)
        lab.conn.defineXML(xml)
        lab.owned.add(name)
        assert parse(lab.inactive_xml(name)).find("devices/graphics").get("passwd") == LEGACY_VNC_PASSWORD


def test_fix_preserves_everything_libvirt_filled_in(lab, domains, run, backup_dir):
    disks = [Disk("sda", "scsi", "none", "native"), Disk("vda", "virtio", "writeback", "threads"),
             Disk("sdb", "scsi", None, None), Disk("vdb", "virtio", "none", None)]
    name = domains.define(disks, suffix="keep", macs=("52:54:00:7f:00:01", None, "52:54:00:7f:00:03"))
    before = lab.inactive_xml(name)
    # Sanity of the fixture: libvirt assigned what the test wants to see preserved.
    assert machine(before).startswith("pc-q35-")
    assert sum(1 for _dev, a in addresses(before) if a.get("type") == "pci") >= 8
    assert len(macs(before)) == 3 and all(macs(before))
    assert parse(before).find("metadata/{%s}tag" % META_NS) is not None

    fix = run(domains=[name], cache="directsync", backup_dir=backup_dir)
    assert not fix.failed, fix.stdout
    assert fix.result["changed"] is True
    after = lab.inactive_xml(name)
    assert drivers(after) == {"sda": ("directsync", "native"), "vda": ("directsync", "threads"),
                              "sdb": ("directsync", None), "vdb": ("directsync", None)}

    assert machine(after) == machine(before)
    assert addresses(after) == addresses(before)
    assert macs(after) == macs(before)
    assert device_order(after) == device_order(before)
    assert metadata_c14n(after) == metadata_c14n(before)
    assert parse(after).findtext("uuid") == parse(before).findtext("uuid")
    # Stronger: apart from the driver modes the definition is the same document.
    assert without_driver_modes(after) == without_driver_modes(before)


def test_fix_domain_with_root_port_added_by_libvirt(lab, domains, run, backup_dir):
    # 3 virtio NICs + 1 virtio disk + virtio-scsi + qemu-xhci need 6 ports; 2 are given.
    name = domains.define([Disk("vda", "virtio", "none", "native"), Disk("sda", "scsi", "none", "native")],
                          suffix="autoport", root_ports=2, macs=(None, None, None))
    before = lab.inactive_xml(name)
    order = [key for key in device_order(before) if key[0] == "controller"]
    assert order != sorted(order, key=lambda k: (k[1].split("/")[0] != "pci", k)), \
        "fixture: libvirt did not append an auto-added root port"

    fix = run(domains=[name], io="threads", backup_dir=backup_dir)
    assert not fix.failed, fix.msg
    after = lab.inactive_xml(name)
    assert drivers(after) == {"vda": ("none", "threads"), "sda": ("none", "threads")}
    # libvirt itself re-sorts the controllers; everything else keeps its place and address.
    assert sorted(map(repr, addresses(after))) == sorted(map(repr, addresses(before)))
    assert macs(after) == macs(before)
