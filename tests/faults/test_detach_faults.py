"""virt_detach while the daemon goes away during the live wait (scripts/faultd.sh, a real busybox guest).

The guest runs on pc-q35-5.2 (native PCIe hotplug): its pciehp waits 5 s after the attention
button, so a virtio-blk unplug takes ~6.2 s, long enough to restart or SIGKILL libvirtd while the
module waits for DEVICE_REMOVED. The module must then say what happened (persistent definition
removed and verified, live detach requested with its outcome unknown, connection lost) instead of
"changed: false, devices: []", and return at once (the connection close wakes the wait) rather
than after its timeout. A rerun once the daemon is back must converge.

No assertion is about exact durations; the "returned long before the timeout" bound is 60 s vs
DETACH_TIMEOUT = 120 s.
"""

from __future__ import annotations

import time

import pytest

from _faultlib import ModuleRun, boot_guest, parse

DETACH_TIMEOUT = 120  # far above the ~6.2 s unplug: the module must return because the connection closed
REQUEST_DEADLINE = 60.0


@pytest.fixture(scope="module")
def guest(faultd):
    g = boot_guest(faultd, "pciehp", machine="pc-q35-5.2")
    yield g
    faultd.cleanup([g.name])


def disk_aliases(xml_text):
    out = {}
    for disk in parse(xml_text).iterfind("devices/disk"):
        alias = disk.find("alias")
        out[disk.find("target").get("dev")] = alias.get("name") if alias is not None else None
    return out


def wait_for_request(faultd, guest, target, proc):
    """Until the persistent detach is done and the guest started unplugging (a PCIe slot blinks):
    the live request has reached QEMU and the module is waiting for DEVICE_REMOVED."""
    end = time.monotonic() + REQUEST_DEADLINE
    while time.monotonic() < end:
        assert proc.running(), "the module ended before the fault: %s" % proc.result().result
        if target not in disk_aliases(faultd.inactive_xml(guest.name)) and (guest.console.blinking() or 0) > 0:
            return
        time.sleep(0.05)
    raise AssertionError("the live detach request never reached the guest; console:\n%s" % guest.console.tail())


def assert_lost_mid_wait(res: ModuleRun, alias, seconds):
    assert res.failed, res.result
    r = res.result
    assert r["connection_lost"] is True, r
    assert r["changed"] is True, r                  # the persistent definition was changed
    (dev,) = r["devices"]
    assert dev["selector"] == {"alias": alias}
    assert dev["persistent"] == "removed" and dev["verified"] is True, dev
    assert dev["live"] == "unknown" and dev["event"] == "connection lost", dev
    assert dev["attempts"] == 1, dev
    assert r["backup"], r
    assert "was lost" in r["msg"] and "outcome unknown" in r["msg"] and "run the same task again" in r["msg"], r
    assert seconds < REQUEST_DEADLINE, "the wait ran on after the connection closed (%.1f s)" % seconds


def assert_converged(faultd, guest, res: ModuleRun, target, serial):
    assert not res.failed, res.result
    (dev,) = res.result["devices"]
    assert dev["persistent"] == "absent", dev
    assert dev["live"] in ("absent", "removed"), dev
    assert target not in disk_aliases(faultd.live_xml(guest.name))
    assert target not in disk_aliases(faultd.inactive_xml(guest.name))
    guest.console.wait_serials(absent=[serial])


def _args(guest, alias, tmp_path):
    return {"domain": guest.name, "devices": [{"alias": alias}], "timeout": DETACH_TIMEOUT, "attempts": 2,
            "backup_dir": str(tmp_path / "backups")}


def test_daemon_restarted_during_the_live_wait(faultd, guest, start_fault_module, run_fault_module, tmp_path):
    """libvirtd restarted (SIGTERM + start) while the guest is still releasing the disk; the rerun
    follows at once, so it meets the unplug still pending (or already finished) and converges."""
    target, alias, serial = guest.hotplug("restart")
    proc = start_fault_module("virt_detach", _args(guest, alias, tmp_path))
    wait_for_request(faultd, guest, target, proc)
    faultd.restart()
    res = proc.result(timeout=DETACH_TIMEOUT * 3)
    assert_lost_mid_wait(res, alias, proc.seconds)

    again = run_fault_module("virt_detach", _args(guest, alias, tmp_path))
    assert_converged(faultd, guest, again, target, serial)


def test_daemon_killed_during_the_live_wait(faultd, guest, start_fault_module, run_fault_module, tmp_path):
    """libvirtd SIGKILLed mid-wait; the guest finishes the unplug while no daemon runs. The daemon
    started again re-syncs the live devices with QEMU, so the rerun finds the disk gone."""
    target, alias, serial = guest.hotplug("kill")
    proc = start_fault_module("virt_detach", _args(guest, alias, tmp_path))
    wait_for_request(faultd, guest, target, proc)
    faultd.kill()
    res = proc.result(timeout=DETACH_TIMEOUT * 3)
    assert_lost_mid_wait(res, alias, proc.seconds)

    guest.console.wait_serials(absent=[serial])     # the unplug completed with libvirtd down
    faultd.start()
    again = run_fault_module("virt_detach", _args(guest, alias, tmp_path))
    assert_converged(faultd, guest, again, target, serial)
    assert again.result["changed"] is False and again.result["devices"][0]["live"] == "absent", again.result


def test_daemon_down_before_the_run_reports_a_connection_failure(faultd, guest, run_fault_module, tmp_path):
    """With no daemon at all nothing is attempted: ConnectionFailed, changed false."""
    target, alias, _serial = guest.hotplug("down")
    faultd.kill()
    try:
        res = run_fault_module("virt_detach", _args(guest, alias, tmp_path))
    finally:
        faultd.start()
    assert res.failed and res.result["changed"] is False, res.result
    assert "Cannot connect to libvirt" in res.result["msg"], res.result
    assert target in disk_aliases(faultd.inactive_xml(guest.name))
