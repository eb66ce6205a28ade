"""A legacy definition libvirt no longer starts: io='native' on cached disks.

Such a definition cannot be created through the API any more (libvirt 9.0 rejects it at
define), but fleets carry them from older libvirt. The fixture writes it into
/etc/libvirt/qemu and restarts libvirtd, which loads it as it is.
"""

from __future__ import annotations

import os
import stat

import libvirt
import pytest

from _itlib import Disk, drivers, native_io_refused

BAD = Disk("sda", "scsi", cache="writeback", io="native")      # explicit writeback
GOOD = Disk("sdb", "scsi", cache="none", io="native")          # compliant, must stay as it is
NO_CACHE = Disk("vda", "virtio", cache=None, io="native")      # default cache = writeback


@pytest.fixture(scope="module")
def legacy(domains):
    return domains.define_legacy([BAD, GOOD, NO_CACHE], suffix="legacy")


def test_legacy_domain_is_fixed_and_then_starts(lab, legacy, run, backup_dir):
    # 1. libvirt refuses to start it, with its own message.
    with pytest.raises(libvirt.libvirtError) as refused:
        lab.dom(legacy).create()
    assert native_io_refused(refused.value), str(refused.value)
    before = lab.inactive_xml(legacy)
    assert drivers(before) == {"sda": ("writeback", "native"), "sdb": ("none", "native"), "vda": (None, "native")}

    # 2. Check mode: every deviation (both bad disks) with status drift; nothing changes.
    check = run(check=True, diff=True, domains=[legacy], backup_dir=backup_dir)
    assert not check.failed, check.stdout
    assert check.result["changed"] is True
    got = {f["device"]["target"]: f for f in check.result["findings"]}
    assert sorted(got) == ["sda", "vda"], check.result["findings"]
    for target, finding in got.items():
        assert finding["rule"] == "io-native-needs-direct-cache"
        assert finding["status"] == "drift"
        assert finding["domain"] == legacy
        assert finding["current"]["io"] == "native" and finding["desired"]["io"] == "threads"
        assert finding["current"]["cache"] == finding["desired"]["cache"] == "writeback"
        assert finding["pending_restart"] is False
    assert got["sda"]["current"]["cache_set"] is True and got["vda"]["current"]["cache_set"] is False
    assert check.result["summary"]["by_status"]["drift"] == 2
    [diff] = check.result["diff"]
    assert drivers(diff["before"]) == drivers(before)
    assert drivers(diff["after"]) == {"sda": ("writeback", "threads"), "sdb": ("none", "native"), "vda": (None, "threads")}
    assert lab.inactive_xml(legacy) == before, "check mode changed the definition"
    assert not os.path.exists(backup_dir), "check mode wrote a backup"

    # 3. Real run: fixed, with a private backup of the old definition.
    fix = run(domains=[legacy], backup_dir=backup_dir)
    assert not fix.failed, fix.stdout
    assert fix.result["changed"] is True
    assert sorted(f["device"]["target"] for f in fix.findings(status="fixed")) == ["sda", "vda"]
    assert len(fix.result["findings"]) == 2
    after = lab.inactive_xml(legacy)
    assert drivers(after) == {"sda": ("writeback", "threads"), "sdb": ("none", "native"), "vda": (None, "threads")}
    backup = fix.result["domains"][0]["backup"]
    assert backup and os.path.dirname(backup) == backup_dir
    assert stat.S_IMODE(os.stat(backup).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(backup_dir).st_mode) == 0o700
    with open(backup, encoding="utf-8") as handle:
        assert handle.read() == before

    # 4. The fixed domain starts.
    lab.dom(legacy).create()
    assert lab.dom(legacy).isActive()

    # 5. Idempotent: nothing left to do, also while it runs.
    again = run(domains=[legacy], backup_dir=backup_dir)
    assert not again.failed, again.stdout
    assert again.result["changed"] is False
    assert again.result["findings"] == []
    assert again.result["domains"][0]["backup"] is None
    assert lab.inactive_xml(legacy) == after
    assert os.listdir(backup_dir) == [os.path.basename(backup)]


def test_legacy_cdrom_with_native_io_is_fixed(lab, domains, run, backup_dir):
    cdrom = Disk("sdc", "sata", cache="writeback", io="native", device="cdrom")
    name = domains.define_legacy([Disk("sda", "scsi", "none", "native"), cdrom], suffix="cdrom")
    with pytest.raises(libvirt.libvirtError) as refused:
        lab.dom(name).create()
    assert native_io_refused(refused.value), str(refused.value)

    check = run(check=True, domains=[name], backup_dir=backup_dir)
    assert [(f["device"]["target"], f["rule"], f["status"]) for f in check.result["findings"]] == [
        ("sdc", "io-native-needs-direct-cache", "drift")]
    fix = run(domains=[name], backup_dir=backup_dir)
    assert not fix.failed, fix.msg
    assert drivers(lab.inactive_xml(name))["sdc"] == ("writeback", "threads")
    lab.dom(name).create()
