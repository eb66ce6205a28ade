"""The fault daemon itself: kill and restart keep a running guest (what every fault test relies on)."""

from __future__ import annotations

import libvirt


def test_guest_survives_kill_and_restart(faultd, fault_guest):
    guest = fault_guest("infra")
    pid = faultd.pid()
    assert pid is not None and faultd.answers()
    conn = faultd.conn
    faultd.kill()
    assert faultd.pid() is None
    assert not faultd.answers()
    # the old connection is dead
    try:
        alive = conn.isAlive()
    except libvirt.libvirtError:
        alive = False
    assert not alive
    faultd.start()
    assert faultd.pid() not in (None, pid)
    assert faultd.lookup(guest.name).isActive()
    faultd.restart()
    assert faultd.lookup(guest.name).isActive()
    assert guest.name in faultd.virsh("list", "--name")
    (target, alias, serial) = guest.hotplug("infra-1")
    assert alias in faultd.live_xml(guest.name)
