"""virt_detach on a REAL guest: the busybox Linux of scripts/build-guest.sh releases hot-unplugged
virtio-blk disks, so libvirt's DEVICE_REMOVED event really arrives.

- ``guest``: q35 (pc-q35-7.2, ACPI PCI hotplug): an unplug completes in ~0.1 s.
- ``pciehp_guest``: pc-q35-5.2 (native PCIe hotplug): the guest's pciehp waits 5 s after the
  attention button, so an unplug takes ~6 s: the retry-while-pending path.

Each guest is booted once per module (5-7 s under TCG) and disks are hot-plugged into it and
detached again. The guest prints its block devices (name:serial) on its serial console, which
QEMU writes to a file: that is how the tests see a disk disappear inside the guest.
No assertion here is about durations; waits have generous deadlines only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import libvirt
import pytest

from _detach_lib import (
    Console,
    LabError,
    attach,
    build_guest,
    detach_domain_xml,
    disk_aliases,
    disk_xml,
    has_alias,
    inactive_xml,
    live_xml,
    make_image,
    new_name,
    reconnecting,
    run_detach_module,
)
from _itlib import image_dir

LIVE_AND_CONFIG = libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_AFFECT_CONFIG


@dataclass
class GuestDisk:
    target: str
    alias: str
    serial: str
    source: str


class Guest:
    """The running busybox guest of this module and the disks hot-plugged into it."""

    def __init__(self, lab, name, console, targets_used=0):
        self.lab = lab
        self.name = name
        self.console = console
        self._count = targets_used  # vdb, vdc, ... already taken by cold-plugged disks

    def _target(self):
        """vdb, vdc, ... vdz, vdaa, ...: never reused within the module."""
        self._count += 1
        n, letters = self._count + 1, ""
        while n:
            n, rem = divmod(n - 1, 26)
            letters = chr(ord("a") + rem) + letters
        return "vd" + letters

    def hotplug(self, count, tag, flags=LIVE_AND_CONFIG, alias=True):
        """Hot-plug ``count`` virtio-blk disks (ua-<tag>-N aliases) and wait until the guest lists them."""
        disks = []
        for i in range(count):
            target = self._target()
            disk = GuestDisk(target, "ua-%s-%d" % (tag, i) if alias else None, "%s-%d" % (tag, i),
                             make_image(self.name, "%s.img" % target))
            attach(self.lab, self.name, disk_xml(disk.source, target, "virtio", disk.alias, disk.serial), flags)
            disks.append(disk)
        self.console.wait_serials(present=[d.serial for d in disks])
        return disks


def boot_guest(lab, domains, suffix, machine, disks=()):
    """Build the guest if needed (scripts/build-guest.sh), boot it, wait for its ready marker.

    The domain is registered with the ``domains`` fixture, whose cleanup destroys and undefines it
    and deletes its image directory (disk images and console log) at the end of the module.
    ``disks``: [(target, alias, serial)] cold-plugged virtio-blk disks.
    """
    try:
        kernel = build_guest()
    except LabError as exc:
        pytest.fail(str(exc), pytrace=False)
    name = new_name(suffix)
    domains.names.append(name)
    os.makedirs(image_dir(name), exist_ok=True)
    console = Console(os.path.join(image_dir(name), "console.log"))
    xmls = [disk_xml(make_image(name, "%s.img" % t), t, "virtio", a, s) for t, a, s in disks]
    xml = detach_domain_xml(name, lab.domain_type, xmls, guest=kernel, console=console.path, memory_mib=128,
                            root_ports=16, scsi=False, machine=machine)
    reconnecting(lab, lambda conn: conn.defineXML(xml).create())
    lab.owned.add(name)
    try:
        console.wait_ready()
        console.wait_serials(present=[s for _t, _a, s in disks])
    except LabError as exc:
        pytest.fail(str(exc), pytrace=False)
    return Guest(lab, name, console, targets_used=len(disks))


@pytest.fixture(scope="module")
def guest(lab, domains):
    """The busybox guest on q35 (pc-q35-7.2): ACPI PCI hotplug."""
    return boot_guest(lab, domains, "guest", "q35")


@pytest.fixture(scope="module")
def pciehp_guest(lab, domains):
    """The busybox guest on pc-q35-5.2: native PCIe hotplug (pciehp), with two cold-plugged disks."""
    return boot_guest(lab, domains, "pciehp", "pc-q35-5.2",
                      disks=[("vdb", "ua-np-cold", "NP-COLD"), ("vdc", "ua-np-rerun", "NP-RERUN")])


@pytest.fixture
def detach(lab, tmp_path, backup_dir):
    def _run(check=False, **args):
        args.setdefault("uri", lab.uri)
        args.setdefault("backup_dir", backup_dir)
        return run_detach_module(args, str(tmp_path / "work"), check=check)
    return _run


def assert_removed_by_event(dev, attempts=1):
    assert dev["persistent"] == "removed", dev
    assert dev["live"] == "removed", dev
    assert dev["event"] == "DEVICE_REMOVED event", dev
    assert dev["attempts"] == attempts, dev


@pytest.mark.parametrize("key", ["alias", "serial", "target"])
def test_virtio_disk_detached_from_running_guest(guest, lab, detach, backup_dir, key):
    """The acceptance case (key=alias) plus the other selectors of the same disk."""
    (disk,) = guest.hotplug(1, "one-%s" % key)
    assert disk_aliases(live_xml(lab, guest.name))[disk.target] == disk.alias
    assert disk_aliases(inactive_xml(lab, guest.name))[disk.target] == disk.alias

    res = detach(domain=guest.name, devices=[{key: getattr(disk, key)}])

    assert not res.failed, res.describe()
    assert res.result["changed"] is True
    assert res.result["active"] is True
    (dev,) = res.devices
    assert_removed_by_event(dev)
    assert dev["matched_by"] == key
    assert dev["kind"] == "disk"
    assert dev["alias"] == dev["live_alias"] == disk.alias
    assert dev["method"] == "alias"  # virDomainDetachDeviceAlias: returns at once, the event tells the rest
    # the guest saw the disk go (its console lists the serials of its block devices)
    guest.console.wait_serials(absent=[disk.serial])
    # gone from both definitions
    assert disk.target not in disk_aliases(live_xml(lab, guest.name))
    assert disk.target not in disk_aliases(inactive_xml(lab, guest.name))
    assert not has_alias(live_xml(lab, guest.name), disk.alias)
    # the backup holds the definition from before, with the disk
    assert res.result["backup"] and os.path.dirname(res.result["backup"]) == backup_dir
    with open(res.result["backup"], encoding="utf-8") as handle:
        assert disk_aliases(handle.read())[disk.target] == disk.alias
    assert oct(os.stat(res.result["backup"]).st_mode & 0o777) == "0o600"

    again = detach(domain=guest.name, devices=[{key: getattr(disk, key)}])
    assert not again.failed, again.describe()
    assert again.result["changed"] is False
    assert (again.devices[0]["persistent"], again.devices[0]["live"]) == ("absent", "absent")


def test_eight_disks_detached_concurrently_in_one_call(guest, lab, detach):
    """Concurrency is asserted from the per-device timeline, not from durations: every device's
    request started before any device's outcome was known."""
    disks = guest.hotplug(8, "eight")
    before = disk_aliases(live_xml(lab, guest.name))
    assert all(before.get(d.target) == d.alias for d in disks)

    res = detach(domain=guest.name, devices=[{"alias": d.alias} for d in disks])

    assert not res.failed, res.describe()
    assert res.result["changed"] is True
    assert [d["selector"] for d in res.devices] == [{"alias": d.alias} for d in disks]  # request order
    for dev in res.devices:
        assert_removed_by_event(dev)
    started = [d["started"] for d in res.devices]
    finished = [d["finished"] for d in res.devices]
    assert all(s <= f for s, f in zip(started, finished)), res.describe()
    assert max(started) < min(finished), "not concurrent: started %s, finished %s" % (started, finished)

    guest.console.wait_serials(absent=[d.serial for d in disks])
    live, inactive = disk_aliases(live_xml(lab, guest.name)), disk_aliases(inactive_xml(lab, guest.name))
    assert not any(d.target in live or d.target in inactive for d in disks)


def test_live_device_with_automatic_alias_paired_by_target(guest, lab, detach):
    """A running domain keeps libvirt's automatic aliases until a cold boot: the persistent disk has
    its ua- alias, the live one is still virtio-disk<N>. Selecting the ua- alias detaches the live
    disk by ITS alias and waits for the event that carries it."""
    (disk,) = guest.hotplug(1, "auto", flags=libvirt.VIR_DOMAIN_AFFECT_LIVE, alias=False)
    attach(lab, guest.name, disk_xml(disk.source, disk.target, "virtio", "ua-auto-cfg", disk.serial),
           libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    live_alias = disk_aliases(live_xml(lab, guest.name))[disk.target]
    assert live_alias and not live_alias.startswith("ua-")
    assert disk_aliases(inactive_xml(lab, guest.name))[disk.target] == "ua-auto-cfg"

    res = detach(domain=guest.name, devices=[{"alias": "ua-auto-cfg"}])

    assert not res.failed, res.describe()
    (dev,) = res.devices
    assert_removed_by_event(dev)
    assert (dev["alias"], dev["live_alias"]) == ("ua-auto-cfg", live_alias)
    guest.console.wait_serials(absent=[disk.serial])
    assert disk.target not in disk_aliases(live_xml(lab, guest.name))
    assert disk.target not in disk_aliases(inactive_xml(lab, guest.name))


def test_check_mode_on_running_guest_changes_nothing(guest, lab, detach, backup_dir):
    (disk,) = guest.hotplug(1, "check")
    live, inactive = live_xml(lab, guest.name), inactive_xml(lab, guest.name)

    res = detach(check=True, domain=guest.name, devices=[{"alias": disk.alias}])

    assert not res.failed, res.describe()
    assert res.result["changed"] is True
    (dev,) = res.devices
    assert (dev["persistent"], dev["live"], dev["attempts"]) == ("removed", "removed", 0)
    assert res.result["backup"] is None
    assert not os.path.exists(backup_dir)
    assert live_xml(lab, guest.name) == live
    assert inactive_xml(lab, guest.name) == inactive
    assert disk.serial in guest.console.serials()


# --- native PCIe hotplug (pc-q35-5.2): an unplug takes ~6 s ---------------------------------------

def test_native_pcie_unplug_is_waited_for_across_attempts(pciehp_guest, lab, detach):
    """pciehp waits 5 s after the attention button before it releases the device. With timeout=4
    the first wait runs out, the device is still there, so it is asked again and QEMU answers
    "already in the process of unplug" (pending, not a failure, and no second button press that
    would cancel the unplug); the event that then arrives belongs to the first request.
    (timeout=4 puts the re-send before QEMU's 5 s pending window ends; see the test below.)"""
    g = pciehp_guest
    res = detach(domain=g.name, devices=[{"alias": "ua-np-cold"}], timeout=4, attempts=8)

    assert not res.failed, res.describe()
    (dev,) = res.devices
    assert (dev["persistent"], dev["live"], dev["event"]) == ("removed", "removed", "DEVICE_REMOVED event"), dev
    # pciehp's 5 s are longer than one 4 s wait: a second request was sent (and taken as pending)
    assert 2 <= dev["attempts"] <= 8, dev
    g.console.wait_serials(absent=["NP-COLD"])
    assert "vdb" not in disk_aliases(live_xml(lab, g.name))
    assert "vdb" not in disk_aliases(inactive_xml(lab, g.name))


def test_native_pcie_rerun_while_unplug_still_pending(pciehp_guest, lab, detach):
    """The recovery the failure message recommends ("run again") while the guest still works on the
    unplug of the first run: run 1 gives up after 1 s; run 2 starts ~0.5 s later with timeout=4,
    so its re-send falls ~5.5 s after run 1's request: after QEMU's 5 s "already in the process of
    unplug" window, before pciehp has released the device (~6.2 s)."""
    g = pciehp_guest
    first = detach(domain=g.name, devices=[{"alias": "ua-np-rerun"}], timeout=1, attempts=1)
    assert first.failed and first.devices[0]["live"] == "failed", first.describe()

    res = detach(domain=g.name, devices=[{"alias": "ua-np-rerun"}], timeout=4, attempts=8)

    g.console.wait_serials(absent=["NP-RERUN"])  # the guest did release it, whatever the module said
    assert "vdc" not in disk_aliases(live_xml(lab, g.name))
    assert not res.failed, res.describe()  # actual: failed, "... failed on attempt 2: ... guest is busy ..."
    (dev,) = res.devices
    assert (dev["persistent"], dev["live"]) == ("absent", "removed"), dev


def test_native_pcie_hotplugged_disk_default_timeout(pciehp_guest, lab, detach):
    """The default timeout (15 s) covers native PCIe hot-unplug in one attempt."""
    g = pciehp_guest
    (disk,) = g.hotplug(1, "np-hot")  # waits until the guest lists it and has powered the slot up

    res = detach(domain=g.name, devices=[{"serial": disk.serial}])

    assert not res.failed, res.describe()
    (dev,) = res.devices
    assert_removed_by_event(dev)
    assert dev["matched_by"] == "serial"
    g.console.wait_serials(absent=[disk.serial])
    assert disk.target not in disk_aliases(live_xml(lab, g.name))
    assert disk.target not in disk_aliases(inactive_xml(lab, g.name))
